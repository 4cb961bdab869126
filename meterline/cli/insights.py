"""``meterline forecast`` and ``meterline hints``."""

from __future__ import annotations

import click

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.money import format_decimal
from meterline.services import hints as hint_service
from meterline.services import insights


@click.command("forecast")
@click.option("--tenant", default=None,
              help="Forecast this tenant (default: every tenant, in the reporting currency).")
@json_option
@pass_context
@handle_errors
def forecast(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """Project this month's spend to the month's end, and each monthly budget's."""
    found = insights.forecast(ctx.ready_engine(), tenant,
                              reporting_currency=ctx.config.reporting_currency)
    if as_json:
        emit_json(found.to_json())
        return
    who = f"tenant {tenant}" if tenant else "all tenants"
    currency, made = found.currency, found.made
    click.echo(f"{who}, {made.month} (day {made.as_of.day} of "
               f"{made.days_in_month}, {found.timezone}): spent "
               f"{shown(made.spent, currency)} {currency}, projected "
               f"{shown(made.projected, currency)} {currency} ({made.method}; linear "
               f"pace: {shown(made.naive, currency)})")
    for skipped in found.unconverted:
        click.echo(f"  not counted: {skipped.records} records costing "
                   f"{shown(skipped.cost, skipped.currency)} "
                   f"{skipped.currency} (no FX rate to {currency})")
    if found.unpriced_records:
        click.echo(f"  not counted: {found.unpriced_records} unpriced records")
    for budget in found.budgets:
        flag = "  OVER" if budget.projected_overrun else ""
        limit, cur = budget.budget, budget.budget.currency
        click.echo(f"  budget {budget.id} ({budget.scope}, {limit.period}): "
                   f"limit {format_decimal(limit.limit)} {cur}, spent "
                   f"{shown(budget.spent, cur)}, projected "
                   f"{shown(budget.projected, cur)} ({budget.method}){flag}")


@click.command("hints")
@click.option("--tenant", required=True, help="The tenant to look at.")
@click.option("--days", default=str(hint_service.DEFAULT_DAYS), show_default=True,
              help=f"The window in days (1 to {hint_service.MAX_DAYS}).")
@json_option
@pass_context
@handle_errors
def hints(ctx: Context, tenant: str, days: str, as_json: bool) -> None:
    """Optimisation hints: prompt caching, cheaper models, unused keys, spend concentration."""
    window = hint_service.window_days(days)
    found = hint_service.hints(ctx.ready_engine(), tenant, days=window)
    if as_json:
        emit_json({"tenant": tenant, "days": window, "hints": [h.to_json() for h in found]})
        return
    if not found:
        click.echo(f"no hints for tenant {tenant} over the last {window} days")
    for hint in found:
        click.echo(f"[{hint.severity}] {hint.kind}: {hint.message}")


def register(cli: click.Group) -> None:
    cli.add_command(forecast)
    cli.add_command(hints)
