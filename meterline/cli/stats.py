"""``meterline stats summary|by|trend|rebuild``: statistics from the daily rollups."""

from __future__ import annotations

import sys

import click

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.services import stats as stats_service
from meterline.services.stats import GROUP_BY, Breakdown, Summary, Trend
from meterline.store import audit, rollups
from meterline.store.accounts import get_tenant

TENANT_HELP = "One tenant, in its currency (default: every tenant, in reporting_currency)."


@click.group()
def stats() -> None:
    """Spend statistics from the daily rollups (docs/stats.md)."""


def _unconverted(found: Summary | Breakdown | Trend) -> None:
    for item in found.unconverted:
        click.echo(f"not converted: {shown(item.amount, item.currency)} {item.currency} "
                   f"({item.calls} calls without an FX rate)")
    if found.unpriced_calls:
        click.echo(f"unpriced: {found.unpriced_calls} calls")


@stats.command("summary")
@click.option("--tenant", default=None, help=TENANT_HELP)
@json_option
@pass_context
@handle_errors
def summary(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """Total, this month, today, calls and success rate."""
    found = stats_service.summary(ctx.ready_engine(), tenant, ctx.config.reporting_currency)
    if as_json:
        emit_json(found.to_json())
        return
    currency = found.currency
    rate = found.success_rate
    click.echo(f"total {shown(found.total, currency)} {currency}\n"
               f"this month {shown(found.month, currency)} {currency}\n"
               f"today {shown(found.today, currency)} {currency}\ncalls {found.calls}"
               + (f" ({rate:.2%} succeeded)" if rate is not None else ""))
    _unconverted(found)


@stats.command("by")
@click.argument("group_by", type=click.Choice(GROUP_BY))
@click.option("--tenant", default=None, help=TENANT_HELP)
@click.option("--start", default=None, help="First day, YYYY-MM-DD (default: 1st of the month).")
@click.option("--end", default=None, help="Last day, included (default: today).")
@json_option
@pass_context
@handle_errors
def by(ctx: Context, group_by: str, tenant: str | None, start: str | None, end: str | None,
       as_json: bool) -> None:
    """Cost, calls and tokens per GROUP_BY over a range of days."""
    found = stats_service.stats(ctx.ready_engine(), tenant, ctx.config.reporting_currency,
                                start=start, end=end, group_by=group_by)
    if as_json:
        emit_json(found.to_json())
        return
    currency = found.currency
    click.echo(f"{found.start} .. {found.end}: {shown(found.total_cost, currency)} "
               f"{currency}, {found.calls} calls")
    for g in found.groups:
        tokens = ("" if g.input_tokens is None
                  else f"\tin {g.input_tokens}\tout {g.output_tokens}")
        click.echo(f"{g.key if g.key is not None else '-'}\t{shown(g.cost, currency)}\t"
                   f"{g.calls} calls{tokens}")
    _unconverted(found)


@stats.command("trend")
@click.option("--tenant", default=None, help=TENANT_HELP)
@click.option("--days", default=30, show_default=True, type=int, help="1 to 3660.")
@json_option
@pass_context
@handle_errors
def trend(ctx: Context, tenant: str | None, days: int, as_json: bool) -> None:
    """Cost and calls per day over the last DAYS days, today included."""
    found = stats_service.trend(ctx.ready_engine(), tenant, ctx.config.reporting_currency, days)
    if as_json:
        emit_json(found.to_json())
        return
    currency = found.currency
    for day in found.days:
        click.echo(f"{day.day}\t{shown(day.cost, currency)}\t{day.calls} calls")
    click.echo(f"total {shown(found.total, currency)} {currency}, average "
               f"{shown(found.average, currency)}, max {shown(found.max, currency)} "
               f"({found.max_date}), min {shown(found.min, currency)} "
               f"({found.min_date})")
    _unconverted(found)


@stats.command("rebuild")
@click.option("--tenant", default=None, help="Only this tenant (default: every tenant).")
@json_option
@pass_context
@handle_errors
def rebuild(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """Recompute the daily rollups from the usage records.

    Needed once after upgrading a database that already held records; otherwise the rollups
    are kept in step with the ledger. Ledger writes wait while this runs.
    """
    engine = ctx.ready_engine()
    with engine.begin() as conn:
        if tenant is not None:
            get_tenant(conn, tenant)
        total = rollups.count_records(conn, tenant)
        with click.progressbar(length=total, label="rebuilding",
                               file=sys.stderr) as bar:
            seen = rollups.rebuild(conn, tenant, progress=bar.update)
        audit.record(conn, ctx.actor, "stats.rebuild", target=tenant, tenant=tenant,
                     details={"records": seen})
    if as_json:
        emit_json({"tenant": tenant, "records": seen})
    else:
        click.echo(f"rollups rebuilt from {seen} records"
                   + (f" of tenant {tenant}" if tenant else ""))


def register(cli: click.Group) -> None:
    cli.add_command(stats)
