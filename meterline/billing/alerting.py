"""The alerts a bill sync raises, through the alert channels budgets use (``alerts`` rows, sent
by the server's alert loop to the configured webhooks):

- ``low_balance``: a balance read below the source's ``low_balance``; once per account and day
  (the day in UTC), however often it is synced;
- ``bill_difference``: the cycle's reconciliation, over the days the sync fetched, has rows
  whose difference is beyond ``[sync] tolerance``; once per account, cycle and tolerance.

Once-only is the alerts table's own rule (a unique row per account, period, kind and
threshold), so concurrent syncs and processes raise each alert once.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from meterline.billing.connectors import CONNECTORS
from meterline.billing.sync import Fetched, filed_as
from meterline.config import Config
from meterline.domain.alerts import display_money, display_percentage
from meterline.domain.money import MONEY_CONTEXT, ZERO, format_decimal
from meterline.services import reconciliation
from meterline.store import alerts as alert_store

#: Statuses that are a difference (``match`` is within the tolerance).


def _scope(fetched: Fetched) -> str:
    source = fetched.source
    return f"{source.provider} account {source.account!r} ({filed_as(source)})"


def _source(fetched: Fetched) -> str:
    return f"{fetched.source.provider}:{fetched.source.account}"


def low_balance(fetched: Fetched, now: datetime) -> dict[str, Any] | None:
    """The alert row for the balances below the source's ``low_balance``, if any is."""
    limit = fetched.source.low_balance
    low = [b for b in fetched.balances if limit is not None and b.amount < limit]
    if limit is None or not low:
        return None
    first = low[0]
    shown = ", ".join(f"{display_money(b.amount, b.currency)} {b.currency}" for b in low)
    day = now.astimezone(UTC).date()
    message = (f"The balance of {_scope(fetched)} is {shown}, below its low_balance of "
               f"{format_decimal(limit)}")
    share = alert_store.percentage(first.amount, limit) if limit > 0 else Decimal(0)
    return alert_store.account_alert(
        _source(fetched), _scope(fetched), alert_store.LOW_BALANCE,
        level="critical" if first.amount <= 0 else "warning", threshold=limit,
        percentage=share, amount=first.amount, limit=limit, currency=first.currency,
        period=day.isoformat(), period_start=datetime.combine(day, time(), UTC),
        message=message, now=now)


def bill_difference(engine: Engine, config: Config, fetched: Fetched,
                    now: datetime) -> dict[str, Any] | None:
    """The alert row for the rows of the synced days that differ beyond the tolerance."""
    if not CONNECTORS[fetched.source.provider].has_bills:
        return None
    period = fetched.period
    tolerance = config.sync.tolerance
    found = reconciliation.report(engine, str(period.cycle), provider=filed_as(fetched.source),
                                  tolerance=tolerance,
                                  reporting_currency=config.reporting_currency)
    rows = [row for row in found.differing() if period.first <= row.start < period.until]
    if not rows:
        return None
    code = found.currency
    billed = metered = ZERO
    for row in rows:  # in the money context: a plain sum would round past 28 digits
        billed = MONEY_CONTEXT.add(billed, row.billed or ZERO)
        metered = MONEY_CONTEXT.add(metered, row.metered or ZERO)
    net = MONEY_CONTEXT.subtract(billed, metered)
    share = (alert_store.percentage(abs(net), metered) if metered else Decimal(100))
    largest = max(rows, key=lambda row: abs(row.difference))
    causes = "; ".join(dict.fromkeys(cause.message for cause in largest.causes))

    def money(value: Decimal) -> str:
        return f"{display_money(value, code)} {code}"

    message = (f"The {period.cycle} bill of {_scope(fetched)} differs from what meterline "
               f"metered beyond the {display_percentage(tolerance * 100)}% tolerance in "
               f"{len(rows)} row{'s' if len(rows) > 1 else ''}: billed {money(billed)} against "
               f"{money(metered)} metered; the largest: {largest.model} on "
               f"{largest.start} ({largest.status}, difference "
               f"{money(largest.difference)})" + (f"; likely: {causes}" if causes else ""))
    first_day = datetime.combine(period.first.replace(day=1), time(), UTC)
    return alert_store.account_alert(
        _source(fetched), _scope(fetched), alert_store.BILL_DIFFERENCE, level="warning",
        threshold=tolerance, percentage=share, amount=billed, limit=metered, currency=code,
        period=str(period.cycle), period_start=first_day, message=message, now=now)


def raise_alerts(engine: Engine, config: Config, fetched: Fetched, now: datetime) -> list[str]:
    """Store the sync's alerts (each once); returns the ids of those new."""
    rows = [row for row in (low_balance(fetched, now),
                            bill_difference(engine, config, fetched, now)) if row is not None]
    with engine.begin() as conn:
        return [row["id"] for row in rows if alert_store.add(conn, row)]
