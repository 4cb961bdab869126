"""``meterline budgets …`` and ``meterline alerts …``."""

from __future__ import annotations

import click

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.services import alerts as alert_service
from meterline.services import budgets as budget_service


@click.group()
def budgets() -> None:
    """Set and list budgets (money limits per scope and period)."""


@budgets.command("set")
@click.option("--tenant", default=None, help="Limit this tenant (default: every tenant).")
@click.option("--user", default=None, help="Limit this end user of the tenant.")
@click.option("--key", "key", default=None, help="Limit this API key (its id).")
@click.option("--provider", default=None, help="Limit calls to this provider.")
@click.option("--model", default=None, help="Limit calls to this model (provider/model).")
@click.option("--amount", required=True, help="The limit, e.g. 10 or 12.50.")
@click.option("--currency", default=None,
              help="Default: the tenant's currency, else the reporting currency.")
@click.option("--period", type=click.Choice(["day", "month", "total"]), default="month",
              show_default=True)
@click.option("--mode", type=click.Choice(["block", "alert"]), default="block",
              show_default=True, help="block refuses calls that do not fit; alert only warns.")
@click.option("--thresholds", default=None, help="Alert at these fractions [0.5,0.8,1].")
@click.option("--timezone", default=None, help="Periods' timezone (default: the tenant's).")
@json_option
@pass_context
@handle_errors
def budgets_set(ctx: Context, tenant: str | None, user: str | None, key: str | None,
                provider: str | None, model: str | None, amount: str, currency: str | None,
                period: str, mode: str, thresholds: str | None, timezone: str | None,
                as_json: bool) -> None:
    """Create the budget of a scope and period, or change it."""
    found = budget_service.set_budget(ctx.ready_engine(), {
        "tenant": tenant, "user": user, "key": key, "provider": provider, "model": model,
        "amount": amount, "currency": currency, "period": period, "mode": mode,
        "thresholds": thresholds, "timezone": timezone}, ctx.config.reporting_currency)
    if as_json:
        emit_json(found)
    else:
        click.echo(f"budget {found['id']} ({found['scope']}): {found['amount']} "
                   f"{found['currency']} per {found['period']}, {found['mode']}; "
                   f"spent {found['spent']}")


@budgets.command("list")
@click.option("--tenant", default=None)
@json_option
@pass_context
@handle_errors
def budgets_list(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """List budgets with spent, reserved, remaining and the period-end projection."""
    found = budget_service.list_state(ctx.ready_engine(), tenant)
    if as_json:
        emit_json(found)
        return
    for b in found:
        click.echo(f"{b['id']}\t{b['scope']}\t{b['period']}\t{b['mode']}\tlimit {b['amount']} "
                   f"{b['currency']}\tspent {b['spent']}\treserved {b['reserved']}\t"
                   f"remaining {b['remaining']}\tprojected {b['projected']}")


@budgets.command("delete")
@click.argument("budget_id")
@pass_context
@handle_errors
def budgets_delete(ctx: Context, budget_id: str) -> None:
    """Delete budget BUDGET_ID."""
    budget_service.delete(ctx.ready_engine(), budget_id)
    click.echo(f"budget {budget_id} deleted")


@click.group()
def alerts() -> None:
    """List and resolve budget alerts."""


@alerts.command("list")
@click.option("--tenant", default=None)
@click.option("--open", "only_open", is_flag=True, help="Only unresolved alerts.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_context
@handle_errors
def alerts_list(ctx: Context, tenant: str | None, only_open: bool, limit: int,
                as_json: bool) -> None:
    """List alerts, newest first."""
    found = alert_service.list_json(ctx.ready_engine(), tenant,
                                    False if only_open else None, limit)
    if as_json:
        emit_json(found)
        return
    for a in found:
        state = "resolved" if a["resolved"] else "open"
        click.echo(f"{a['id']}\t{a['level']}\t{state}\t{a['created_at']}\t{a['message']}")


@alerts.command("resolve")
@click.argument("alert_ids", nargs=-1, required=True)
@pass_context
@handle_errors
def alerts_resolve(ctx: Context, alert_ids: tuple[str, ...]) -> None:
    """Mark ALERT_IDS resolved."""
    count = alert_service.resolve(ctx.ready_engine(), list(alert_ids))
    click.echo(f"{count} alert(s) resolved")


def register(cli: click.Group) -> None:
    cli.add_command(budgets)
    cli.add_command(alerts)
