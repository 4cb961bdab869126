"""``meterline sync`` (import a provider's bill) and ``meterline reconcile`` (metered against
billed)."""

from __future__ import annotations

from pathlib import Path

import click

from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.errors import InvalidInput
from meterline.providers.bill_files import FORMATS, PLANNED_FORMATS
from meterline.services import reconciliation


@click.command()
@click.option("--file", "file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A bill file exported from the provider's console.")
@click.option("--format", "file_format", default="focus", show_default=True,
              type=click.Choice([*FORMATS, *PLANNED_FORMATS]))
@click.option("--provider", default=None,
              help="meterline's name of the provider (wins over the file's name for it).")
@click.option("--cycle", default=None, help="YYYY-MM (with the provider's API).")
@json_option
@pass_context
@handle_errors
def sync(ctx: Context, file: Path | None, file_format: str, provider: str | None,
         cycle: str | None, as_json: bool) -> None:
    """Import a provider's bill: it replaces what was stored for its provider and days."""
    if file is None:
        raise InvalidInput("fetching bills from the providers' APIs is not built yet; export "
                           "the bill from the provider's console and import it with --file "
                           "F --format focus", field="file")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file: cannot read {file}: {exc}", field="file") from None
    found = reconciliation.import_bill(ctx.ready_engine(), text, file_format, provider)
    if as_json:
        emit_json(found)
        return
    totals = ", ".join(f"{amount} {code}" for code, amount in found["totals"].items())
    click.echo(f"{found['rows']} rows of {', '.join(found['providers'])} from {found['from']} "
               f"until {found['until']} ({totals}) stored as {found['lines']} lines")


@click.command()
@click.option("--cycle", required=True, help="YYYY-MM")
@click.option("--provider", default=None)
@click.option("--tolerance", default="0.01", show_default=True,
              help="A share of the metered amount that still matches (0.01 is 1 %).")
@click.option("--currency", default=None,
              help="The report's currency (default: the one both sides share, else "
                   "reporting_currency).")
@json_option
@pass_context
@handle_errors
def reconcile(ctx: Context, cycle: str, provider: str | None, tolerance: str,
              currency: str | None, as_json: bool) -> None:
    """Metered cost against the providers' bills, per provider, model and billed period."""
    found = reconciliation.report(ctx.ready_engine(), cycle, provider=provider,
                                  tolerance=tolerance, currency=currency,
                                  reporting_currency=ctx.config.reporting_currency)
    if as_json:
        emit_json(found)
        return
    currency = found["currency"]
    click.echo(f"{found['cycle']} in {currency} (tolerance {found['tolerance']})")
    for row in found["rows"]:
        pct = f" ({row['difference_pct']} %)" if row["difference_pct"] is not None else ""
        click.echo(f"{row['status']:<13} {row['provider']:<12} {row['model']:<40} "
                   f"{row['date']}..{row['until']}  metered {shown(row['metered'], currency)}  "
                   f"billed {shown(row['billed'], currency)}  difference "
                   f"{shown(row['difference'], currency)}{pct}")
    for item in found["unconverted"]:
        click.echo(f"not converted ({item['side']}): {shown(item['amount'], item['currency'])} "
                   f"{item['currency']} on "
                   f"{item['date']}")


def register(cli: click.Group) -> None:
    cli.add_command(sync)
    cli.add_command(reconcile)
