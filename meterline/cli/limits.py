"""``meterline budgets …``, ``alerts …``, ``quota …`` and ``plans …``."""

from __future__ import annotations

import click

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.services import alerts as alert_service
from meterline.services import budgets as budget_service
from meterline.services import quotas as quota_service


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
        "thresholds": thresholds, "timezone": timezone}, ctx.config.reporting_currency,
        actor=ctx.actor)
    if as_json:
        emit_json(found.to_json())
    else:
        budget = found.budget
        click.echo(f"budget {found.id} ({found.scope}): {format_decimal(budget.limit)} "
                   f"{budget.currency} per {budget.period}, {budget.mode}; "
                   f"spent {shown(found.spent, budget.currency)}")


@budgets.command("list")
@click.option("--tenant", default=None)
@json_option
@pass_context
@handle_errors
def budgets_list(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """List budgets with spent, reserved, remaining and the period-end projection."""
    found = budget_service.list_state(ctx.ready_engine(), tenant)
    if as_json:
        emit_json([b.to_json() for b in found])
        return
    for b in found:
        currency = b.budget.currency
        click.echo(f"{b.id}\t{b.scope}\t{b.budget.period}\t{b.budget.mode}\tlimit "
                   f"{format_decimal(b.budget.limit)} {currency}\tspent "
                   f"{shown(b.spent, currency)}\treserved {shown(b.reserved, currency)}\t"
                   f"remaining {shown(b.remaining, currency)}\tprojected "
                   f"{shown(b.projected, currency)}")


@budgets.command("delete")
@click.argument("budget_id")
@pass_context
@handle_errors
def budgets_delete(ctx: Context, budget_id: str) -> None:
    """Delete budget BUDGET_ID."""
    budget_service.delete(ctx.ready_engine(), budget_id, actor=ctx.actor)
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
    found = alert_service.list_alerts(ctx.ready_engine(), tenant,
                                      False if only_open else None, limit)
    if as_json:
        emit_json([stored.to_json() for stored in found])
        return
    for stored in found:
        a = stored.alert
        state = "resolved" if a.resolved else "open"
        click.echo(f"{a.id}\t{a.level}\t{state}\t{a.created_at.isoformat()}\t{a.message}")


@alerts.command("resolve")
@click.argument("alert_ids", nargs=-1, required=True)
@pass_context
@handle_errors
def alerts_resolve(ctx: Context, alert_ids: tuple[str, ...]) -> None:
    """Mark ALERT_IDS resolved."""
    count = alert_service.resolve(ctx.ready_engine(), list(alert_ids), actor=ctx.actor)
    click.echo(f"{count} alert(s) resolved")


@click.group()
def quota() -> None:
    """Grant and show prepaid quotas (text tokens, images, TTS characters, video seconds)."""


@quota.command("grant")
@click.option("--tenant", required=True)
@click.option("--user", default=None, help="Grant to this end user only.")
@click.option("--type", "quota_type", required=True,
              type=click.Choice(["text_token", "image", "tts_character", "video_second"]))
@click.option("--amount", required=True, help="Whole units.")
@click.option("--bonus", default=None, help="Extra units of a package.")
@click.option("--source", type=click.Choice(["plan", "package", "admin_grant"]),
              default="admin_grant", show_default=True)
@click.option("--ref", "reference", default=None, help="Reference id (order, ticket).")
@click.option("--reason", default=None)
@click.option("--expires", "expires_at", default=None, help="ISO time the grant expires.")
@json_option
@pass_context
@handle_errors
def quota_grant(ctx: Context, tenant: str, user: str | None, quota_type: str, amount: str,
                bonus: str | None, source: str, reference: str | None, reason: str | None,
                expires_at: str | None, as_json: bool) -> None:
    """Credit a tenant with quota units."""
    found = quota_service.grant(ctx.ready_engine(), {
        "tenant": tenant, "user": user, "type": quota_type, "amount": amount, "bonus": bonus,
        "source": source, "reference": reference, "reason": reason, "expires_at": expires_at},
        actor=ctx.actor)
    if as_json:
        emit_json(found.to_json())
    else:
        made = found.grant
        click.echo(f"grant {made.id}: {made.credited} {made.type} units to "
                   f"{made.tenant} ({made.source})")


@quota.command("show")
@click.option("--tenant", required=True)
@click.option("--history", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="How many ledger entries to show.")
@json_option
@pass_context
@handle_errors
def quota_show(ctx: Context, tenant: str, history: int, as_json: bool) -> None:
    """Show a tenant's quota balance by type and source, and its recent ledger."""
    found = quota_service.show(ctx.ready_engine(), tenant, history)
    if as_json:
        emit_json(found.to_json())
        return
    balance = found.balance
    click.echo(f"tenant {found.tenant}, cycle {balance.cycle} (plan allowances reset "
               f"{balance.resets_at.isoformat()})")
    for name, b in balance.types.items():
        sources = ", ".join(f"{s} {n}" for s, n in b.by_source.items() if n)
        click.echo(f"{name}	available {b.available}	reserved {found.reserved.get(name, 0)}"
                   + (f"	({sources})" if sources else ""))
    for entry in found.history:
        click.echo(f"{entry.at.isoformat()}	{entry.kind}	{entry.type}	{entry.delta:+d}	"
                   f"{entry.request_id or entry.note or ''}")


@click.group()
def plans() -> None:
    """Subscription plans: monthly quota allowances that reset each cycle."""


@plans.command("set")
@click.argument("plan_id")
@click.option("--allow", "allowances", multiple=True, required=True, metavar="TYPE=UNITS",
              help="An allowance per cycle, e.g. text_token=1000000 (repeatable).")
@pass_context
@handle_errors
def plans_set(ctx: Context, plan_id: str, allowances: tuple[str, ...]) -> None:
    """Create or change plan PLAN_ID."""
    parsed = {}
    for item in allowances:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--allow {item!r}: expected TYPE=UNITS", field="allow")
        parsed[name.strip()] = value.strip()
    found = quota_service.set_plan(ctx.ready_engine(), plan_id, parsed, actor=ctx.actor)
    click.echo(f"plan {found.id}: " + ", ".join(f"{t} {n}" for t, n in
                                                found.allowances.items()))


@plans.command("list")
@json_option
@pass_context
@handle_errors
def plans_list(ctx: Context, as_json: bool) -> None:
    """List plans."""
    found = quota_service.list_plans(ctx.ready_engine())
    if as_json:
        emit_json([plan.to_json() for plan in found])
        return
    for plan in found:
        click.echo(f"{plan.id}	" + ", ".join(f"{t} {n}" for t, n in plan.allowances.items()))


@plans.command("subscribe")
@click.option("--tenant", required=True)
@click.option("--plan", "plan_id", required=True)
@pass_context
@handle_errors
def plans_subscribe(ctx: Context, tenant: str, plan_id: str) -> None:
    """Put a tenant on a plan (its allowances are granted from the current cycle)."""
    found = quota_service.subscribe(ctx.ready_engine(), tenant, plan_id, actor=ctx.actor)
    click.echo(f"tenant {found.tenant} is on plan {found.plan}")


def register(cli: click.Group) -> None:
    for group in (budgets, alerts, quota, plans):
        cli.add_command(group)
