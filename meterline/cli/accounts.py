"""``meterline tenants …``, ``keys …`` and ``fx …`` (and ``admin-tokens …``, from its own
module)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from meterline.cli.admin_tokens import admin_tokens
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.events import parse_timestamp
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.services import accounts as account_service
from meterline.services.prices import set_fx
from meterline.store import accounts, pricing


@click.group()
def tenants() -> None:
    """Create and list tenants."""


@tenants.command("create")
@click.argument("name")
@click.option("--currency", default="USD", show_default=True, help="Billing currency.")
@click.option("--timezone", default="UTC", show_default=True, help="Billing-cycle timezone.")
@json_option
@pass_context
@handle_errors
def tenants_create(ctx: Context, name: str, currency: str, timezone: str, as_json: bool) -> None:
    """Create tenant NAME."""
    tenant = account_service.create_tenant(ctx.ready_engine(), name, currency, timezone,
                                           actor=ctx.actor)
    if as_json:
        emit_json(tenant.to_json())
    else:
        click.echo(f"tenant {tenant.id} created ({tenant.currency}, {tenant.timezone})")


@tenants.command("list")
@json_option
@pass_context
@handle_errors
def tenants_list(ctx: Context, as_json: bool) -> None:
    """List tenants."""
    with ctx.ready_engine().connect() as conn:
        found = accounts.list_tenants(conn)
    if as_json:
        emit_json([t.to_json() for t in found])
    else:
        for t in found:
            click.echo(f"{t.id}\t{t.currency}\t{t.timezone}")


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--tenant", required=True)
@click.option("--user", default=None, help="Bind the key to this end user.")
@click.option("--models", default=None, help="Comma list of models the key may use.")
@click.option("--name", default=None)
@click.option("--expires", default=None, help="Expiry, ISO 8601.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="Tokens per minute.")
@json_option
@pass_context
@handle_errors
def keys_create(ctx: Context, tenant: str, user: str | None, models: str | None,
                name: str | None, expires: str | None, rpm: int | None, tpm: int | None,
                as_json: bool) -> None:
    """Create an API key; the key is printed once and stored hashed."""
    expires_at = parse_timestamp(expires, "--expires") if expires else None
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    secret, key = account_service.create_key(ctx.ready_engine(), tenant, actor=ctx.actor,
                                             user=user, models=allowed, name=name,
                                             expires_at=expires_at, rpm=rpm, tpm=tpm)
    if expires_at is not None and not key.usable(datetime.now(UTC)):
        click.echo(f"warning: --expires {expires_at.isoformat()} is in the past: the key is "
                   "created expired and every call with it is refused", err=True)
    if as_json:
        emit_json({"key": secret, "id": key.id, **key.to_json()})
    else:
        click.echo(f"key id: {key.id}\nkey:    {secret}\n(shown once: store it now)")


@keys.command("list")
@click.option("--tenant", default=None)
@json_option
@pass_context
@handle_errors
def keys_list(ctx: Context, tenant: str | None, as_json: bool) -> None:
    """List keys (never the secrets)."""
    with ctx.ready_engine().connect() as conn:
        found = accounts.list_keys(conn, tenant)
    if as_json:
        emit_json([k.to_json() for k in found])
    else:
        now = datetime.now(UTC)
        for k in found:
            state = "revoked" if k.revoked_at else "active" if k.usable(now) else "expired"
            click.echo(f"{k.id}\t{k.tenant_id}\t{k.user_id or '-'}\t{k.prefix}…\t{state}")


@keys.command("revoke")
@click.argument("key_id")
@json_option
@pass_context
@handle_errors
def keys_revoke(ctx: Context, key_id: str, as_json: bool) -> None:
    """Revoke the key KEY_ID."""
    key = account_service.revoke_key(ctx.ready_engine(), key_id, actor=ctx.actor)
    if as_json:
        emit_json(key.to_json())
    else:
        click.echo(f"key {key.id} revoked")


@click.group()
def fx() -> None:
    """Set and list FX rates."""


@fx.command("set", context_settings={"ignore_unknown_options": True})  # `fx set USD CNY -1`
@click.argument("base")
@click.argument("quote")
@click.argument("rate")
@click.option("--effective-from", "effective", default=None,
              help="ISO date or datetime; default now.")
# The name `prices add` uses too; `--from` was this command's first name, kept for scripts.
@click.option("--from", "effective_alias", default=None, hidden=True)
@json_option
@pass_context
@handle_errors
def fx_set(ctx: Context, base: str, quote: str, rate: str, effective: str | None,
           effective_alias: str | None, as_json: bool) -> None:
    """Add a rate: 1 BASE = RATE QUOTE (e.g. `fx set USD CNY 7.1`)."""
    if effective is not None and effective_alias is not None:
        raise InvalidInput("--from: an old name of --effective-from; give one of them",
                           field="effective_from")
    # An error names the option as the user typed it.
    name = "--from" if effective_alias is not None else "--effective-from"
    effective = effective if effective is not None else effective_alias
    when: datetime | None = parse_timestamp(effective, name) if effective else None
    added = set_fx(ctx.ready_engine(), base, quote, rate, when, actor=ctx.actor)
    out = {"base": added.base, "quote": added.quote, "rate": format_decimal(added.rate),
           "effective_from": added.effective_from.isoformat()}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"1 {added.base} = {out['rate']} {added.quote} from {out['effective_from']}")


@fx.command("list")
@json_option
@pass_context
@handle_errors
def fx_list(ctx: Context, as_json: bool) -> None:
    """List FX rates."""
    with ctx.ready_engine().connect() as conn:
        rates = pricing.load_fx(conn).all()
    rows = [{"base": r.base, "quote": r.quote, "rate": format_decimal(r.rate),
             "effective_from": r.effective_from.isoformat()} for r in rates]
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            click.echo(f"{r['base']}->{r['quote']}\t{r['rate']}\t{r['effective_from']}")


def register(cli: click.Group) -> None:
    for group in (tenants, keys, fx, admin_tokens):
        cli.add_command(group)
