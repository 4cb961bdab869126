"""Fetch a configured provider account's bill lines for a cycle and its balance, and store
them: the lines as a bill file's are (``provider_bill_lines``, each with the provider's rows),
the balances appended to ``provider_balances``. Runs (``meterline.billing.runs``) call these.

Storing is the file import's: the lines of an account replace, in one transaction, what was
stored for the same provider over the days they cover, so syncing a period twice changes
nothing, and a provider's correction replaces what it corrects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Connection

from meterline.billing.connectors import CONNECTORS, Period, period_of
from meterline.billing.http import Backoff, BillingClient
from meterline.billing.lines import Balance, BilledLine
from meterline.config import BILL_SOURCE_PROVIDERS, BillSourceConfig, Config
from meterline.domain.bills import Cycle, parse_cycle
from meterline.domain.money import MONEY_CONTEXT, ZERO, format_decimal
from meterline.errors import InvalidInput
from meterline.store import audit, provider_bills
from meterline.store.audit import Actor

#: ``(phase, requests so far)``: "lines", then "balances".
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Fetched:
    source: BillSourceConfig
    period: Period
    lines: list[BilledLine]
    balances: list[Balance]
    requests: int


def find_source(config: Config, provider: str, account: str | None = None) -> BillSourceConfig:
    """The ``[[bill_sources]]`` entry of ``provider`` (and ``account``, where several are)."""
    if provider not in BILL_SOURCE_PROVIDERS:
        raise InvalidInput(f"--provider: meterline cannot sync {provider!r}; one of "
                           f"{', '.join(BILL_SOURCE_PROVIDERS)}", field="provider")
    found = [s for s in config.bill_sources if s.provider == provider]
    if not found:
        raise InvalidInput(f"--provider: {provider} is not configured; add a [[bill_sources]] "
                           f'entry with provider = "{provider}" to the config file '
                           "(docs/reconcile.md, \"Syncing bills from the providers\")",
                           field="provider")
    names = ", ".join(s.account for s in found)
    if account is not None:
        for source in found:
            if source.account == account:
                return source
        raise InvalidInput(f"--account: {provider} has no account {account!r} configured "
                           f"(configured: {names})", field="account")
    if len(found) > 1:
        raise InvalidInput(f"--account: {len(found)} {provider} accounts are configured "
                           f"({names}); name one with --account", field="account")
    return found[0]


def check_credentials(source: BillSourceConfig) -> list[str]:
    """The credentials' texts, or InvalidInput naming the environment variable that is unset."""
    texts = []
    for credential, variable in source.credential_env.items():
        value = getattr(source, credential)
        if value is None:
            raise InvalidInput(f"{source.provider} account {source.account!r}: the environment "
                               f"variable {variable} (its {credential.replace('_', ' ')}) is "
                               "not set", field=f"{credential}_env")
        texts.append(value.reveal())
    return texts


def filed_as(source: BillSourceConfig) -> str:
    """meterline's provider the source's lines are filed under (``qwen`` for Alibaba's)."""
    return source.name or CONNECTORS[source.provider].default_name


def period_for(source: BillSourceConfig, cycle: object, now: datetime) -> Period:
    """The days of ``cycle`` the provider has billed by ``now`` (default cycle: the month of
    the provider's yesterday, the last day it has billed)."""
    today = now.astimezone(CONNECTORS[source.provider].timezone).date()
    if cycle is None:
        yesterday = today - timedelta(days=1)
        month = Cycle(yesterday.year, yesterday.month)
    else:
        month = parse_cycle(cycle)
    return period_of(month, today)


def fetch(source: BillSourceConfig, cycle: object = None, *,
          now: Callable[[], datetime] | None = None,
          transport: httpx.BaseTransport | None = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          backoff: Backoff | None = None, progress: Progress | None = None) -> Fetched:
    """The account's bill lines for ``cycle`` (see ``period_for``) and its balances."""
    secrets = check_credentials(source)
    clock_now = now or (lambda: datetime.now(UTC))
    label = f"{source.provider} account {source.account!r}"
    hint = "the credentials in " + ", ".join(source.credential_env.values())
    phase = "lines"

    def on_request(count: int) -> None:
        if progress is not None:
            progress(phase, count)

    with BillingClient(label, secrets=secrets, hint=hint, rate=source.requests_per_second,
                       timeout=source.timeout_seconds, transport=transport, clock=clock,
                       sleep=sleep, backoff=backoff, on_request=on_request) as client:
        connector = CONNECTORS[source.provider](source, client, clock_now)
        period = period_for(source, cycle, clock_now())
        on_request(0)
        lines = connector.lines(period)
        phase = "balances"
        on_request(client.requests)
        balances = connector.balances()
        return Fetched(source, period, lines, balances, client.requests)


def summary_of(fetched: Fetched) -> dict[str, Any]:
    """What was fetched: rows, models, totals per currency, balances, requests."""
    source = fetched.source
    totals: dict[str, Decimal] = {}
    for line in fetched.lines:
        totals[line.currency] = MONEY_CONTEXT.add(totals.get(line.currency, ZERO),
                                                  line.period.amount)
    summary: dict[str, Any] = {
        "provider": source.provider, "account": source.account, "cycle": str(fetched.period.cycle),
        "from": fetched.period.first.isoformat(), "until": fetched.period.until.isoformat(),
        "rows": len(fetched.lines), "lines": 0,
        "models": len({line.period.model for line in fetched.lines}),
        "totals": {code: format_decimal(total) for code, total in sorted(totals.items())},
        "balances": [balance.to_json() for balance in fetched.balances],
        "requests": fetched.requests,
    }
    if source.low_balance is not None:
        summary["low_balance"] = format_decimal(source.low_balance)
        summary["below_low_balance"] = any(b.amount < source.low_balance
                                           for b in fetched.balances)
    return summary


def store(conn: Connection, fetched: Fetched, *, actor: Actor | None,
          run_id: int | None = None) -> dict[str, Any]:
    """In ``conn``'s transaction: store the fetched lines (replacing the provider's over their
    days) and append the balances; returns the summary (``summary_of``, ``lines`` stored)."""
    source = fetched.source
    summary = summary_of(fetched)
    summary["lines"] = provider_bills.replace(
        conn, [(line.period, line.currency, line.raw) for line in fetched.lines],
        f"api-{source.provider}")
    if fetched.balances:
        # One time for what one sync read, so "the latest balances" are one sync's.
        at = max(balance.at for balance in fetched.balances)
        provider_bills.add_balances(conn, source.provider, source.account,
                                    [(b.amount, b.currency) for b in fetched.balances], at,
                                    run_id)
    audit.record(conn, actor, "provider_bill.sync",
                 target=f"{source.provider}:{source.account}",
                 details={**summary, **({"run": run_id} if run_id is not None else {})})
    return summary
