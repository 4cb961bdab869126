"""``meterline usage ingest|list``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.events import MAX_BATCH, parse_event, parse_timestamp
from meterline.errors import InvalidInput
from meterline.services.records import record_json
from meterline.store import ledger
from meterline.store.accounts import get_tenant


@click.group()
def usage() -> None:
    """Ingest and list usage records."""


def _read_events(path: Path) -> list[object]:
    """Every event of a JSONL file, checked before anything is written."""
    events: list[object] = []
    seen: dict[str, int] = {}
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})", field="file") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{number}: not valid JSON ({exc})",
                                   field="line") from None
            try:
                parsed = parse_event(event)
            except InvalidInput as exc:
                raise InvalidInput(f"{path}:{number}: {exc.message}", field=exc.field) from None
            if parsed.id in seen:
                raise InvalidInput(f"{path}:{number}: id {parsed.id!r} already used on line "
                                   f"{seen[parsed.id]}", field="id")
            seen[parsed.id] = number
            events.append(event)
    return events


@usage.command("ingest")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", required=True)
@json_option
@pass_context
@handle_errors
def ingest(ctx: Context, file: Path, tenant: str, as_json: bool) -> None:
    """Record the usage events of FILE (JSON Lines, one event per line, as POST /v1/usage).

    The whole file is checked first: a bad line stops the command before anything is written.
    Events already recorded (same id) are not charged again.
    """
    events = _read_events(file)
    metering = ctx.metering
    with metering.engine.connect() as conn:
        get_tenant(conn, tenant)
    recorded = duplicates = unpriced = 0
    refused: list[str] = []
    with click.progressbar(length=len(events), label="ingesting",
                           file=sys.stderr) as bar:
        for start in range(0, len(events), MAX_BATCH):
            chunk = events[start:start + MAX_BATCH]
            for result in metering.ingest(tenant, chunk, source="file"):
                if "error" in result:  # older than the archived period
                    refused.append(f"{result['id']}: {result['error']}")
                elif result.get("duplicate"):
                    duplicates += 1
                else:
                    recorded += 1
                    unpriced += result.get("status") == "unpriced"
            bar.update(len(chunk))
    summary = {"events": len(events), "recorded": recorded, "duplicates": duplicates,
               "unpriced": unpriced, "refused": len(refused)}
    for line in refused:
        click.echo(f"refused: {line}", err=True)
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"{recorded} recorded ({unpriced} unpriced), {duplicates} duplicates skipped"
                   + (f", {len(refused)} refused" if refused else ""))


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
        rows = ledger.list_records(conn, tenant_id=tenant, user_id=user, model=model,
                                   status=status, since=start, until=end, limit=limit,
                                   archived=archived)
    records = [record_json(r) for r in rows]
    if as_json:
        emit_json(records)
        return
    for r in records:
        click.echo(f"{r['timestamp']}\t{r['request_id']}\t{r['model']}\t{r['status']}\t"
                   f"{shown(r['cost'], r['currency'])} {r['currency'] or ''}")


def register(cli: click.Group) -> None:
    cli.add_command(usage)
