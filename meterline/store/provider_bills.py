"""Provider bill lines (table ``provider_bill_lines``): stored, replaced, read back.

An import is the provider's word for the days it covers: it replaces, in one transaction, every
stored line of its providers whose period overlaps the import's days, so importing a corrected
or the same file again never counts anything twice. Amounts are summed exactly per provider,
model, period and currency; on SQLite money is text, so the sums are made in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select

from meterline.domain.money import MONEY_CONTEXT, ZERO
from meterline.domain.reconcile import BilledPeriod
from meterline.store.schema import provider_bill_lines

Key = tuple[str, str, date, date, str]


def replace(conn: Connection, lines: Sequence[tuple[BilledPeriod, str]], source: str,
            now: datetime | None = None) -> int:
    """Store ``(period, currency)`` lines instead of what their providers' stored lines say
    about the same days; returns how many lines are stored."""
    sums: dict[Key, Decimal] = {}
    for period, currency in lines:
        key = (period.provider, period.model, period.start, period.end, currency)
        sums[key] = MONEY_CONTEXT.add(sums.get(key, ZERO), period.amount)
    if not sums:
        return 0
    first = min(key[2] for key in sums)
    last = max(key[3] for key in sums)
    c = provider_bill_lines.c
    conn.execute(delete(provider_bill_lines).where(
        c.provider.in_(sorted({key[0] for key in sums})), c.period_start < last,
        c.period_end > first))
    at = now or datetime.now(UTC)
    conn.execute(insert(provider_bill_lines), [
        {"provider": provider, "model": model, "period_start": start, "period_end": end,
         "currency": currency, "amount": amount, "source": source, "imported_at": at}
        for (provider, model, start, end, currency), amount in sorted(sums.items())])
    return len(sums)


def overlapping(conn: Connection, first: date, last: date,
                provider: str | None = None) -> list[tuple[BilledPeriod, str]]:
    """Stored lines whose period overlaps ``first`` to ``last`` (exclusive)."""
    c = provider_bill_lines.c
    query = select(provider_bill_lines).where(c.period_start < last, c.period_end > first)
    if provider is not None:
        query = query.where(c.provider == provider)
    return [(BilledPeriod(r.provider, r.model, r.period_start, r.period_end, r.amount),
             r.currency) for r in conn.execute(query.order_by(c.provider, c.model,
                                                                c.period_start))]
