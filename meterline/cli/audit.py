"""``meterline audit list``: the audit log of admin actions (docs/audit.md)."""

from __future__ import annotations

import click
import orjson

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.services import audit as audit_service


@click.group()
def audit() -> None:
    """Read the audit log: who issued, paid or voided bills, made or revoked keys and admin
    tokens, set prices, budgets and quotas."""


@audit.command("list")
@click.option("--since", default=None, help="From this time (ISO 8601, included).")
@click.option("--until", default=None, help="Until this time (ISO 8601, excluded).")
@click.option("--action", default=None,
              help="An action (bill.issue) or a family of them (bill).")
@click.option("--actor", default=None, help="An admin token's name, session:NAME or cli.")
@click.option("--tenant", default=None)
@click.option("--limit", type=click.IntRange(1, audit_service.MAX_LIMIT),
              default=audit_service.DEFAULT_LIMIT, show_default=True)
@click.option("--before", type=click.IntRange(min=1), default=None,
              help="Entries older than this id (the next page).")
@json_option
@pass_context
@handle_errors
def list_(ctx: Context, since: str | None, until: str | None, action: str | None,
          actor: str | None, tenant: str | None, limit: int, before: int | None,
          as_json: bool) -> None:
    """List audit entries, newest first (--json: a list of them). When there are more than
    --limit, the command to read the next page is printed to stderr."""
    found = audit_service.entries(ctx.ready_engine(), since=since, until=until, action=action,
                                  actor=actor, tenant=tenant, limit=limit, before=before)
    if as_json:
        emit_json([entry.to_json() for entry in found.entries])
    else:
        for entry in found.entries:
            details = orjson.dumps(entry.details).decode() if entry.details else ""
            click.echo(f"{entry.id}\t{entry.at.isoformat()}\t{entry.actor}\t{entry.action}\t"
                       f"{entry.tenant or '-'}\t{entry.target or '-'}\t{details}")
    if found.next_before is not None:
        click.echo(f"(more: --before {found.next_before})", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(audit)
