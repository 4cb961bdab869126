"""``meterline sync`` (fetch or import a provider's bill, list the syncs) and ``meterline
reconcile`` (metered against billed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from meterline.billing import runs
from meterline.cli.amounts import shown
from meterline.cli.main import Context, emit_json, handle_errors, json_option, pass_context
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.providers.bill_files import FORMATS
from meterline.services import reconciliation


@click.command()
@click.option("--provider", default=None,
              help="With the API: the [[bill_sources]] provider to fetch (aliyun, tencent, "
                   "volcano, baidu, deepseek, openai, anthropic). With --file: meterline's name "
                   "of the provider (wins over the file's name for it).")
@click.option("--cycle", default=None,
              help="YYYY-MM to fetch (default: the month of the provider's yesterday).")
@click.option("--account", default=None,
              help="The [[bill_sources]] account, where a provider has several.")
@click.option("--file", "file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Import a bill file exported from the provider's console instead.")
@click.option("--format", "file_format", default="focus", show_default=True,
              type=click.Choice(FORMATS), help="The bill file's format (with --file).")
@click.option("--history", is_flag=True,
              help="List the syncs made (newest first; --provider and --account filter).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500),
              help="How many syncs --history lists.")
@json_option
@pass_context
@handle_errors
def sync(ctx: Context, provider: str | None, cycle: str | None, account: str | None,
         file: Path | None, file_format: str, history: bool, limit: int,
         as_json: bool) -> None:
    """Fetch a provider's bill lines and balance, or import a bill file; list the syncs.

    \b
    meterline sync --provider aliyun [--cycle 2026-10] [--account main]
    meterline sync --file bill.csv --format aliyun [--provider qwen]
    meterline sync --history [--provider aliyun] [--json]

    Either way the lines replace what was stored for their provider and days: syncing a period
    twice changes nothing. Credentials come from the environment variables the [[bill_sources]]
    entry names; the provider's billing API is called with them and nothing else. Each fetch is
    recorded as a run (with the server's API and daily syncs), listed by --history.
    """
    if history:
        _history(ctx, provider, account, limit, as_json)
        return
    if file is not None:
        _import(ctx, file, file_format, provider, cycle, as_json)
        return
    if provider is None:
        raise InvalidInput("give --provider P to fetch a provider's bill from its API, or "
                           "--file F --format FORMAT to import a bill file", field="provider")
    found = runs.run_now(ctx.ready_engine(), ctx.config, provider, cycle, account,
                         trigger="cli", actor=ctx.actor, now=lambda: datetime.now(UTC))
    if as_json:
        emit_json(found)
        return
    totals = ", ".join(f"{amount} {code}" for code, amount in found["totals"].items())
    click.echo(f"run {found['run']}: {found['provider']} account {found['account']}: "
               f"{found['cycle']} from "
               f"{found['from']} until {found['until']}: {found['rows']} rows of "
               f"{found['models']} models ({totals or 'nothing billed'}) stored as "
               f"{found['lines']} lines ({found['requests']} requests)")
    for balance in found["balances"]:
        click.echo(f"balance: {shown(balance['amount'], balance['currency'])} "
                   f"{balance['currency']} at {balance['at']}")
    if not found["balances"]:
        click.echo("balance: the provider has no balance API")
    if found.get("below_low_balance"):
        click.echo(f"warning: the balance is below low_balance ({found['low_balance']})")
    for alert in found["alerts"]:
        click.echo(f"alert raised: {alert} (meterline alerts list)")


def _history(ctx: Context, provider: str | None, account: str | None, limit: int,
             as_json: bool) -> None:
    found = runs.history(ctx.ready_engine(), provider=provider, account=account, limit=limit)
    if as_json:
        emit_json([run.to_json() for run in found])
        return
    if not found:
        click.echo("no syncs yet")
    for run in found:
        error = f"  {run.error}" if run.error else ""
        trigger = run.kind + (f" #{run.attempt}" if run.attempt > 1 else "")
        click.echo(f"{run.id:>6}  {run.started_at.isoformat()}  {trigger:<11}  "
                   f"{run.provider}:{run.account:<16}  {run.cycle}  "
                   f"{run.status:<7}  {run.lines} lines{error}")


def _import(ctx: Context, file: Path, file_format: str, provider: str | None,
            cycle: str | None, as_json: bool) -> None:
    if cycle is not None:
        raise InvalidInput("--cycle: a bill file covers its own days; --cycle goes with "
                           "--provider (fetching from the API)", field="cycle")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file: cannot read {file}: {exc}", field="file") from None
    found = reconciliation.import_bill(ctx.ready_engine(), text, file_format, provider,
                                       actor=ctx.actor)
    if as_json:
        emit_json(found.to_json())
        return
    totals = ", ".join(f"{shown(amount, code)} {code}" for code, amount in found.totals.items())
    click.echo(f"{found.rows} rows of {', '.join(found.providers)} from {found.first} "
               f"until {found.until} ({totals}) stored as {found.lines} lines")


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
        emit_json(found.to_json())
        return
    currency = found.currency
    click.echo(f"{found.cycle} in {currency} (tolerance {format_decimal(found.tolerance)})")
    for row in found.rows:
        pct = row.difference_pct
        share = f" ({format_decimal(pct)} %)" if pct is not None else ""
        click.echo(f"{row.status:<13} {row.provider:<12} {row.model:<40} "
                   f"{row.start}..{row.end}  metered {shown(row.metered, currency)}  "
                   f"billed {shown(row.billed, currency)}  difference "
                   f"{shown(row.difference, currency)}{share}")
        for cause in row.causes:
            click.echo(f"    likely: {cause.message}")
    for item in found.unconverted:
        click.echo(f"not converted ({item.side}): {shown(item.amount, item.currency)} "
                   f"{item.currency} on {item.day}")


def register(cli: click.Group) -> None:
    cli.add_command(sync)
    cli.add_command(reconcile)
