"""``meterline admin-tokens create|list|revoke``: named admin tokens (services/admins.py)."""

from __future__ import annotations

import click

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.services import admins


@click.group("admin-tokens")
def admin_tokens() -> None:
    """Create, list and revoke admin tokens (the admin API's and the dashboard's)."""


@admin_tokens.command("create")
@click.argument("name")
@json_option
@pass_context
@handle_errors
def create(ctx: Context, name: str, as_json: bool) -> None:
    """Create an admin token named NAME; the token is printed once and stored hashed."""
    token, stored = admins.create_token(ctx.ready_engine(), name, actor=ctx.actor)
    if as_json:
        emit_json({"token": token, **stored.to_json()})
    else:
        click.echo(f"admin token id: {stored.id} ({stored.name})\nadmin token:    {token}\n"
                   "(shown once: store it now)")


@admin_tokens.command("list")
@json_option
@pass_context
@handle_errors
def list_(ctx: Context, as_json: bool) -> None:
    """List admin tokens with their last use (never the tokens)."""
    found = admins.list_tokens(ctx.ready_engine())
    if as_json:
        emit_json([t.to_json() for t in found])
        return
    for t in found:
        state = f"revoked {t.revoked_at.isoformat()}" if t.revoked_at else "active"
        used = t.last_used_at.isoformat() if t.last_used_at else "never used"
        click.echo(f"{t.id}\t{t.name}\t{state}\tcreated {t.created_at.isoformat()}\t"
                   f"last used: {used}")


@admin_tokens.command("revoke")
@click.argument("token")
@json_option
@pass_context
@handle_errors
def revoke(ctx: Context, token: str, as_json: bool) -> None:
    """Revoke the admin token TOKEN (its id, or the name of one active token): it and the
    dashboard sessions it signed in are refused from now on, in every process."""
    stored = admins.revoke_token(ctx.ready_engine(), token, actor=ctx.actor)
    if as_json:
        emit_json(stored.to_json())
    else:
        click.echo(f"admin token {stored.id} ({stored.name}) revoked")


def register(cli: click.Group) -> None:
    cli.add_command(admin_tokens)
