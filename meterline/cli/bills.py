"""``meterline bill``, ``export`` and ``refund`` (docs/bills.md)."""

from __future__ import annotations

from pathlib import Path

import click

from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.services import bill_exports
from meterline.services import bills as bill_service
from meterline.services import refunds as refund_service
from meterline.services.bills import BillView


def _print_bill(found: BillView) -> None:
    bill, currency = found.bill, found.bill.currency
    who = bill.tenant + (f"/{bill.user}" if bill.user else "")
    click.echo(f"bill {who} {bill.cycle}: {bill.status.value}, {currency}")
    for line in bill.lines:
        price = format_decimal(line.unit_price) + (
            f" {line.price_currency}" if line.price_currency not in (None, currency) else "")
        notes = [note for note in (
            "refund" if line.status == "refunded" else None,
            f"late usage of {line.adjustment_of}" if line.adjustment_of else None) if note]
        click.echo(f"{line.model}\t{line.meter}\t{format_decimal(line.quantity)}\t{price} per "
                   f"{line.unit}\t{format_decimal(line.amount)}"
                   + (f"\t({', '.join(notes)})" if notes else ""))
    click.echo(f"total {format_decimal(bill.total)} {currency}")
    for item in found.unconverted:
        click.echo(f"not billed, no FX rate: {format_decimal(item.amount)} {item.currency} of "
                   f"{item.model}" + (f" (of {item.adjustment_of})"
                                      if item.adjustment_of else ""))
    if found.unpriced_calls:
        click.echo(f"not billed, unpriced: {found.unpriced_calls} calls "
                   "(`meterline rerate` once a price exists)")


@click.command("bill")
@click.option("--tenant", required=True)
@click.option("--cycle", required=True, help="A month in the tenant's timezone, YYYY-MM.")
@click.option("--user", default=None, help="One user's bill (default: the tenant's own).")
@click.option("--issue", is_flag=True,
              help="Issue the bill: round it once and keep it as it is.")
@click.option("--pay", is_flag=True, help="Mark an issued bill paid.")
@click.option("--void", is_flag=True, help="Void an open or issued bill.")
@json_option
@pass_context
@handle_errors
def bill(ctx: Context, tenant: str, cycle: str, user: str | None, issue: bool, pay: bool,
         void: bool, as_json: bool) -> None:
    """Show a bill (an open one is computed now), or change its status."""
    # Separate flags, not one shared destination: with that, the last flag given won silently.
    chosen = [(flag, status) for flag, status, given in (
        ("--issue", "issued", issue), ("--pay", "paid", pay), ("--void", "void", void))
        if given]
    if len(chosen) > 1:
        raise InvalidInput(f"{' and '.join(f for f, _ in chosen)} cannot be given together: a "
                           "bill changes status one step at a time (issue it, then pay it)",
                           field="status")
    action = chosen[0][1] if chosen else None
    engine = ctx.ready_engine()
    if action is None:
        found = bill_service.get_bill(engine, tenant, cycle, user)
    else:
        found = bill_service.set_status(engine, tenant, cycle, action, user, actor=ctx.actor)
    if as_json:
        emit_json(found.to_json())
    else:
        _print_bill(found)


@click.command("export")
@click.option("--tenant", required=True)
@click.option("--cycle", required=True, help="A month in the tenant's timezone, YYYY-MM.")
@click.option("--format", "fmt", required=True, type=click.Choice(bill_exports.FORMATS))
@click.option("--lang", default="en", show_default=True, type=click.Choice(["en", "zh"]),
              help="Headers and labels of CSV and XLSX.")
@click.option("--user", default=None, help="One user's bill (default: the tenant's own).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write.")
@pass_context
@handle_errors
def export(ctx: Context, tenant: str, cycle: str, fmt: str, lang: str, user: str | None,
           output: Path) -> None:
    """Write a bill as a CSV, XLSX or FOCUS file."""
    found = bill_exports.export(ctx.ready_engine(), tenant, cycle, fmt, lang, user)
    try:
        output.write_bytes(found.content)
    except OSError as exc:
        raise InvalidInput(f"{output}: cannot write ({exc.strerror})", field="output") from None
    click.echo(f"wrote {output} ({fmt}, {found.status} bill, total {found.total})")


@click.command("refund")
@click.argument("request_id")
@click.option("--reason", default=None, help="Why (kept in the refund's metadata).")
@json_option
@pass_context
@handle_errors
def refund(ctx: Context, request_id: str, reason: str | None, as_json: bool) -> None:
    """Refund usage record REQUEST_ID with a new, negative record (at most once)."""
    found = refund_service.refund(ctx.ready_engine(), request_id, reason, actor=ctx.actor)
    if as_json:
        emit_json(found.to_json())
        return
    record = found.refund
    if found.duplicate:
        click.echo(f"{request_id} was already refunded by {record.request_id}; "
                   "nothing changed")
    else:
        cost = "-" if record.cost is None else format_decimal(record.cost)
        click.echo(f"refunded {request_id} by {record.request_id}: {cost} "
                   f"{record.currency}")


def register(cli: click.Group) -> None:
    for command in (bill, export, refund):
        cli.add_command(command)
