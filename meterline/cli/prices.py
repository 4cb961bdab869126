"""``meterline prices …``, ``quote`` and ``rerate``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from sqlalchemy import func, select

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.events import parse_timestamp
from meterline.domain.money import format_decimal
from meterline.domain.prices import Prices
from meterline.domain.usage import Usage
from meterline.errors import InvalidInput
from meterline.services import prices as price_service
from meterline.store import audit
from meterline.store.ledger import UNPRICED
from meterline.store.schema import usage_records


@click.group()
def prices() -> None:
    """List, add, import and update price versions."""


@prices.command("list")
@click.option("--model", default=None, help="One model (provider/model, alias or bare name).")
@click.option("--provider", default=None)
@json_option
@pass_context
@handle_errors
def prices_list(ctx: Context, model: str | None, provider: str | None, as_json: bool) -> None:
    """List price versions (all of them, or one model's history)."""
    book = ctx.metering.book
    models = [book.resolve(model)] if model else book.models()
    if provider:
        models = [name for name in models if name.startswith(f"{provider}/")]
    entries = [entry for name in models for entry in book.entries(name)]
    if as_json:
        emit_json([e.version.to_json() | {"id": e.version.id, "layer": e.layer.label}
                   for e in entries])
        return
    for version, layer in entries:
        shown = ", ".join(f"{m.value} {format_decimal(p.price)}/{p.unit_label(m)}"
                          for m, p in version.prices.items())
        click.echo(f"{version.model}\t{version.effective_from.date()}\t{version.currency}\t"
                   f"{layer.label}\t{shown}")


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})", field="file") from None


@prices.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(price_service.IMPORT_FORMATS),
              default="litellm", show_default=True)
@json_option
@pass_context
@handle_errors
def prices_import(ctx: Context, file: str, fmt: str, as_json: bool) -> None:
    """Import price versions from FILE (LiteLLM's model_prices JSON or meterline's catalog)."""
    summary = price_service.import_file(ctx.ready_engine(), _read(file), fmt, actor=ctx.actor)
    if as_json:
        emit_json(summary.to_json())
    else:
        click.echo(f"{summary.added} price versions added, {summary.already_present} already "
                   f"present, {len(summary.skipped)} entries without prices skipped, "
                   f"{len(summary.duplicates)} duplicate keys dropped")
        for conflict in summary.conflicts:
            click.echo(f"not imported: {conflict}", err=True)
        for skipped in summary.skipped:
            click.echo(f"skipped: {skipped}", err=True)


@prices.command("add")
@click.option("--model", required=True, help="provider/model")
@click.option("--currency", required=True)
@click.option("--unit", default="1M", show_default=True, type=click.Choice(["1", "1K", "10K",
                                                                            "1M"]),
              help="Per how many tokens or characters the prices are; images, seconds and "
                   "requests are always priced per one.")
@click.option("--input", "input_price", default=None, help="Price of plain input tokens.")
@click.option("--cached-input", default=None, help="Price of cache-read input tokens.")
@click.option("--cache-write", default=None, help="Price of cache-write input tokens.")
@click.option("--cache-write-1h", default=None,
              help="Price of cache writes kept an hour (Anthropic), if separate.")
@click.option("--output", "output_price", default=None, help="Price of output tokens.")
@click.option("--reasoning", default=None, help="Price of reasoning tokens, if separate.")
@click.option("--characters", default=None)
@click.option("--images", default=None)
@click.option("--seconds", default=None)
@click.option("--requests", default=None)
@click.option("--minimum-charge", default=None)
@click.option("--effective-from", default=None, help="ISO date or datetime; default now.")
@click.option("--file", "file", default=None, help="A JSON price version instead of options.")
@json_option
@pass_context
@handle_errors
def prices_add(ctx: Context, /, model: str, currency: str, unit: str, effective_from: str | None,
               file: str | None, as_json: bool, **meter_prices: str | None) -> None:
    """Add a price version (a new version never rewrites an older one)."""
    names = {"input_price": "input_tokens", "cached_input": "cached_input_tokens",
             "cache_write": "cache_write_tokens", "cache_write_1h": "cache_write_1h_tokens",
             "output_price": "output_tokens",
             "reasoning": "reasoning_tokens"}
    minimum = meter_prices.pop("minimum_charge")
    data: dict[str, Any]
    if file:
        loaded = orjson.loads(_read(file))
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{file}: must hold one JSON object", field="file")
        data = loaded
        data.setdefault("model", model)
    else:
        given = {names.get(k, k): v for k, v in meter_prices.items() if v is not None}
        if not given:
            raise InvalidInput("give at least one price (--input, --output, --images, …)",
                               field="prices")
        when = (parse_timestamp(effective_from, "--effective-from").isoformat()
                if effective_from else None)
        data = {"model": model, "currency": currency, "unit": unit, "prices": given,
                "effective_from": when or datetime.now(UTC).isoformat(),
                "billing_type": _billing_type(given)}
        per_one = {m: "1" for m in given if m in ("images", "seconds", "requests")}
        if per_one:
            data["units"] = per_one
        if minimum is not None:
            data["minimum_charge"] = minimum
    version = price_service.add_version(ctx.ready_engine(), data, actor=ctx.actor)
    if as_json:
        emit_json(version.to_json() | {"id": version.id})
    else:
        click.echo(f"added {version.id}")


def _billing_type(given: dict[str, str]) -> str:
    for meter, kind in (("characters", "character"), ("images", "count"),
                        ("seconds", "second")):
        if meter in given:
            return kind
    return "token"


@prices.command("update")
@click.option("--from", "source", default=None,
              help="genai-prices' data.json, a LiteLLM file or a meterline price file (a path "
                   "or an http(s) URL); default: the installed genai-prices package.")
@click.option("--dry-run", is_flag=True, help="List what would change; write nothing.")
@json_option
@pass_context
@handle_errors
def prices_update(ctx: Context, source: str | None, dry_run: bool, as_json: bool) -> None:
    """Bring a price layer up to date: new models with their own dates, a version effective
    now for every price that changed (history is kept; higher layers are never replaced)."""
    now = datetime.now(UTC)
    if source is None:
        update = price_service.installed_genai_source()
    elif source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InvalidInput(f"--from: cannot fetch {source}: {exc}", field="from") from exc
        update = price_service.read_update_source(response.content, now)
    else:
        update = price_service.read_update_source(_read(source), now)
    result = price_service.update_from(ctx.ready_engine(), update, now, dry_run=dry_run,
                                       actor=ctx.actor)
    if as_json:
        emit_json(result.to_json())
        return
    verb = "would be added" if dry_run else "added"
    click.echo(f"{update.label} ({update.layer.label} layer): {result.added_versions} "
               f"versions {verb}: {len(result.new_models)} new models, "
               f"{len(result.changed_models)} changed, {result.unchanged} unchanged")
    for version in result.versions:  # listed on a dry run only
        click.echo(f"  {version.model}\t{version.effective_from.isoformat()}\t"
                   f"{version.currency}\t{_shown_prices(version.prices)}")
    for conflict in result.conflicts:
        click.echo(f"not updated: {conflict}", err=True)
    for skipped in result.skipped or []:
        click.echo(f"skipped: {skipped}", err=True)


@prices.command("sources")
@click.option("--model", default=None, help="One model (provider/model, alias or bare name).")
@click.option("--provider", default=None, help="Only this provider's models.")
@click.option("--disagree", is_flag=True, help="Only models whose layers charge differently.")
@json_option
@pass_context
@handle_errors
def prices_sources(ctx: Context, model: str | None, provider: str | None, disagree: bool,
                   as_json: bool) -> None:
    """Which layer prices each model now (operator > curated > genai-prices > litellm), and
    where the layers disagree."""
    rows = price_service.sources(ctx.metering.book, datetime.now(UTC), model=model,
                                 provider=provider, disagreeing=disagree)
    if as_json:
        emit_json([row.to_json() for row in rows])
        return
    for row in rows:
        click.echo(f"{row.model}\tpriced by {', '.join(row.priced_by)}"
                   + ("\tlayers DISAGREE" if row.disagree else ""))
        for entry in row.layers:
            mark = "*" if entry.in_force else ("=" if entry.agrees else "≠")
            version = entry.version
            click.echo(f"  {mark} {entry.layer.label}\t{version.currency}\t{version.id}"
                       f"\t{version.source}")


def _shown_prices(prices: Prices) -> str:
    return ", ".join(f"{meter.value} {format_decimal(price.price)}"
                     for meter, price in prices.items())


@click.command()
@click.option("--model", required=True)
@click.option("--input-tokens", type=click.IntRange(min=0), default=0)
@click.option("--cached-input-tokens", type=click.IntRange(min=0), default=0)
@click.option("--cache-write-tokens", type=click.IntRange(min=0), default=0)
@click.option("--output-tokens", type=click.IntRange(min=0), default=0)
@click.option("--reasoning-tokens", type=click.IntRange(min=0), default=0)
@click.option("--characters", type=click.IntRange(min=0), default=0)
@click.option("--images", type=click.IntRange(min=0), default=0)
@click.option("--seconds", default="0", help="Seconds (may be fractional).")
@click.option("--attribute", "attributes", multiple=True, help="key=value, e.g. size=1024x1024.")
@click.option("--at", default=None, help="Price in force at this time (ISO); default now.")
@json_option
@pass_context
@handle_errors
def quote(ctx: Context, /, model: str, seconds: str, attributes: tuple[str, ...], at: str | None,
          as_json: bool, **counts: int) -> None:
    """Price a call without recording it."""
    try:
        seconds_value = Decimal(seconds)
    except ArithmeticError:
        raise InvalidInput(f"--seconds: {seconds!r} is not a number", field="seconds") from None
    usage = Usage.parse({**{k: v for k, v in counts.items() if v}, "seconds": str(seconds_value)})
    attrs = {}
    for item in attributes:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--attribute: {item!r} is not key=value", field="attribute")
        attrs[key] = value
    when = parse_timestamp(at, "--at") if at else None
    rating = ctx.metering.quote(model, usage, when, attrs)
    if as_json:
        emit_json(rating.to_json())
        return
    for line in rating.lines:
        click.echo(f"{line.meter:<20} {format_decimal(line.quantity)} × "
                   f"{format_decimal(line.unit_price)}/{line.unit} = "
                   f"{format_decimal(line.amount)}")
    click.echo(f"total {rating.total}  ({rating.price_version.id})")


@click.command()
@json_option
@pass_context
@handle_errors
def rerate(ctx: Context, as_json: bool) -> None:
    """Price records stored as unpriced, and convert those stored without an FX rate, now
    that prices and rates exist."""
    metering = ctx.metering
    c = usage_records.c
    with metering.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(usage_records)
                             .where((c.pricing == UNPRICED) | c.fx_missing.is_(True))
                             ).scalar_one()
    with click.progressbar(length=total, label="rerating", file=sys.stderr
                           ) as bar:
        priced, left = metering.rerate(progress=bar.update)
        converted, unconverted = metering.convert_missing_fx(progress=bar.update)
    found = {"priced": priced, "still_unpriced": left, "converted": converted,
             "still_fx_missing": unconverted}
    audit.record_done(metering.engine, ctx.actor, "usage.rerate", details=found)
    if as_json:
        emit_json(found)
    else:
        click.echo(f"{priced} records priced, {left} still without a price; {converted} "
                   f"converted to the tenant's currency, {unconverted} still without an FX rate")


def register(cli: click.Group) -> None:
    cli.add_command(prices)
    cli.add_command(quote)
    cli.add_command(rerate)
