"""``meterline usage ingest|list``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

import click
import orjson

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.events import MAX_BATCH, parse_event, parse_timestamp
from meterline.errors import BatchRefused, InvalidInput
from meterline.services.metering import RefusedEvent
from meterline.services.records import UsageRecordView
from meterline.store import audit, ledger
from meterline.store.accounts import get_tenant
from meterline.store.ledger import UNPRICED


@click.group()
def usage() -> None:
    """Ingest and list usage records."""


#: Bad lines listed one by one; past this many, a file is more likely of the wrong kind.
MAX_LISTED: Final = 50


def _read_events(path: Path) -> list[object]:
    """Every event of a JSONL file, checked before anything is written: a file with bad lines
    is refused whole (BatchRefused), its ``refusals`` the first MAX_LISTED of them as
    ``FILE:LINE: reason``, as a compiler lists errors."""
    events: list[object] = []
    seen: dict[str, int] = {}
    bad: list[str] = []
    count = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})", field="file") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            problem = None
            try:
                event = orjson.loads(line)
                parsed = parse_event(event)
            except orjson.JSONDecodeError as exc:
                problem = f"not valid JSON ({exc})"
            except InvalidInput as exc:
                problem = exc.message
            else:
                if parsed.id in seen:
                    problem = f"id {parsed.id!r} already used on line {seen[parsed.id]}"
                else:
                    seen[parsed.id] = number
                    events.append(event)
            if problem is not None:
                count += 1
                if len(bad) < MAX_LISTED:
                    bad.append(f"{path}:{number}: {problem}")
    if count == 1:
        raise InvalidInput(bad[0], field="file")
    if count:
        listed = f"the first {len(bad)} listed above" if count > len(bad) else "listed above"
        raise BatchRefused(f"{path}: {count} bad lines ({listed}); nothing was recorded",
                           field="file", refusals=bad, count=count)
    return events


@usage.command("ingest")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", required=True)
@json_option
@pass_context
@handle_errors
def ingest(ctx: Context, file: Path, tenant: str, as_json: bool) -> None:
    """Record the usage events of FILE (JSON Lines, one event per line, as POST /v1/usage).

    The whole file is checked first: every bad line is listed (FILE:LINE: reason, the first
    50), and a file with any is refused before anything is written (exit 2). Events already
    recorded (same id) are not charged again. Events priced in another currency than the
    tenant's, with no FX rate stored for them, are counted as fx_missing (`meterline rerate`
    converts them once a rate is set).
    """
    try:
        events = _read_events(file)
    except BatchRefused as exc:
        for refusal in exc.context["refusals"]:
            click.echo(refusal, err=True)
        raise
    metering = ctx.metering
    with metering.engine.connect() as conn:
        get_tenant(conn, tenant)
    recorded = duplicates = unpriced = fx_missing = 0
    refused: list[str] = []
    with click.progressbar(length=len(events), label="ingesting",
                           file=sys.stderr) as bar:
        for start in range(0, len(events), MAX_BATCH):
            chunk = events[start:start + MAX_BATCH]
            for result in metering.ingest(tenant, chunk, source="file"):
                if isinstance(result, RefusedEvent):  # older than the archived period
                    refused.append(f"{result.id}: {result.error}")
                elif result.duplicate:
                    duplicates += 1
                else:
                    recorded += 1
                    unpriced += result.pricing == UNPRICED
                    fx_missing += result.fx_missing
            bar.update(len(chunk))
    summary = {"events": len(events), "recorded": recorded, "duplicates": duplicates,
               "unpriced": unpriced, "fx_missing": fx_missing, "refused": len(refused)}
    audit.record_done(metering.engine, ctx.actor, "usage.ingest", target=file.name,
                      tenant=tenant, details={"file": str(file), **summary})
    for line in refused:
        click.echo(f"refused: {line}", err=True)
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"{recorded} recorded ({unpriced} unpriced, {fx_missing} without an FX "
                   f"rate), {duplicates} duplicates skipped"
                   + (f", {len(refused)} refused" if refused else ""))
        if fx_missing:
            click.echo(f"{fx_missing} records are not converted to the tenant's currency: "
                       "set the rate (meterline fx set), then run meterline rerate", err=True)


@usage.command("list")
@click.option("--tenant", default=None)
@click.option("--user", default=None)
@click.option("--model", default=None)
@click.option("--status", default=None)
@click.option("--since", default=None, help="ISO 8601, inclusive.")
@click.option("--until", default=None, help="ISO 8601, exclusive.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--archived", is_flag=True, help="Include archived records (meterline archive).")
@json_option
@pass_context
@handle_errors
def list_usage(ctx: Context, tenant: str | None, user: str | None, model: str | None,
               status: str | None, since: str | None, until: str | None, limit: int,
               archived: bool, as_json: bool) -> None:
    """List usage records, newest first (the hot table; --archived: the archive too)."""
    start = parse_timestamp(since, "--since") if since else None
    end = parse_timestamp(until, "--until") if until else None
    if start and end and end < start:
        raise InvalidInput("--until: must not be before --since", field="until")
    with ctx.ready_engine().connect() as conn:
        if tenant is not None:
            get_tenant(conn, tenant)  # an unknown tenant is an error, as in the API
        rows = ledger.list_records(conn, tenant_id=tenant, user_id=user, model=model,
                                   status=status, since=start, until=end, limit=limit,
                                   archived=archived)
    records = [UsageRecordView.of_row(r) for r in rows]
    if as_json:
        emit_json([record.to_json() for record in records])
        return
    for r in records:
        click.echo(f"{r.occurred_at.isoformat()}\t{r.request_id}\t{r.model}\t{r.status}\t"
                   f"{shown(r.cost, r.currency)} {r.currency or ''}")


def register(cli: click.Group) -> None:
    cli.add_command(usage)
