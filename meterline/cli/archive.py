"""``meterline archive``: move old usage records out of the hot tables (store/archive.py)."""

from __future__ import annotations

import sys

import click

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.errors import InvalidInput
from meterline.store import archive as archive_store
from meterline.store import audit


@click.command("archive")
@click.option("--older-than", "older", type=int, default=None, metavar="N",
              help="Records before the first day of (this month - N), UTC; N >= 1.")
@click.option("--before", default=None, metavar="YYYY-MM",
              help="Records before the first day of this month (UTC).")
@click.option("--dry-run", is_flag=True, help="Count what would move; change nothing.")
@json_option
@pass_context
@handle_errors
def archive(ctx: Context, older: int | None, before: str | None, dry_run: bool,
            as_json: bool) -> None:
    """Move usage records older than a month boundary, with their charge lines, to the archive
    tables, in batches (an interrupted run resumes when run again).

    Statistics, bills and exports do not change (they read the daily rollups, which archiving
    never touches). `usage list --archived` and `GET /api/usage?archived=true` still show the
    records. Events older than the boundary are afterwards refused at ingestion, or reported as
    duplicates when already recorded. Unpriced records, and records not yet converted to the
    tenant's currency, stay hot for `meterline rerate`. The current and the previous month
    always stay hot.
    """
    if (older is None) == (before is None):
        raise InvalidInput("give one of --older-than N or --before YYYY-MM", field="older_than")
    try:
        cutoff = (archive_store.older_than(older) if older is not None
                  else archive_store.cutoff_of(str(before)))
    except InvalidInput as exc:
        raise InvalidInput(f"--{exc.message.replace('_', '-')}", field=exc.field) from None
    engine = ctx.ready_engine()
    with engine.connect() as conn:
        counts = archive_store.pending(conn, cutoff)
    if not dry_run:
        with click.progressbar(length=counts.records, label="archiving",
                               file=sys.stderr) as bar:
            counts = archive_store.archive(engine, cutoff, progress=bar.update)
        audit.record_done(engine, ctx.actor, "usage.archive", target=cutoff.isoformat(),
                          details=counts.to_json())
    if as_json:
        emit_json(counts.to_json())
        return
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} {counts.records} records and {counts.lines} charge lines from before "
               f"{cutoff:%Y-%m} ({cutoff.isoformat()}) to the archive")
    if counts.kept:
        click.echo(f"{counts.kept} records before it stay hot (unpriced or not converted): run "
                   "`meterline rerate`, then archive again")


def register(cli: click.Group) -> None:
    cli.add_command(archive)
