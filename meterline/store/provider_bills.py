"""Provider bill lines (table ``provider_bill_lines``): stored, replaced, read back; and the
balances read from the providers (table ``provider_balances``).

An import is the provider's word for the days it covers: it replaces, in one transaction, every
stored line of its providers whose period overlaps the import's days, so importing a corrected
or the same file again never counts anything twice. Amounts are summed exactly per provider,
model, period and currency; on SQLite money is text, so the sums are made in Python. Each line
keeps the provider's rows it sums (``raw``, as JSON: exact numbers as their text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, delete, func, insert, select

from meterline.domain.money import MONEY_CONTEXT, ZERO, format_decimal
from meterline.domain.reconcile import BilledPeriod
from meterline.store.schema import provider_balances, provider_bill_lines

Key = tuple[str, str, date, date, str]


def jsonable(value: Any) -> Any:
    """A provider's row as JSON can hold it: exact numbers (Decimal) as their text, days and
    times in ISO 8601."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return value


def replace(conn: Connection, lines: Sequence[tuple[BilledPeriod, str]
                                              | tuple[BilledPeriod, str, Any]],
            source: str, now: datetime | None = None) -> int:
    """Store ``(period, currency[, raw])`` lines instead of what their providers' stored lines
    say about the same days; returns how many lines are stored. Lines that sum into one keep
    all their rows."""
    sums: dict[Key, Decimal] = {}
    rows: dict[Key, list[Any]] = {}
    for line in lines:
        period, currency = line[0], line[1]
        key = (period.provider, period.model, period.start, period.end, currency)
        sums[key] = MONEY_CONTEXT.add(sums.get(key, ZERO), period.amount)
        if len(line) > 2 and line[2] is not None:
            rows.setdefault(key, []).append(jsonable(line[2]))
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
         "currency": currency, "amount": amount, "source": source, "imported_at": at,
         "raw": rows.get((provider, model, start, end, currency))}
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


class StoredBalance(NamedTuple):
    provider: str
    account: str
    at: datetime
    amount: Decimal
    currency: str
    run_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "account": self.account, "at": self.at.isoformat(),
                "amount": format_decimal(self.amount), "currency": self.currency,
                "run": self.run_id}


def add_balances(conn: Connection, provider: str, account: str,
                 balances: Sequence[tuple[Decimal, str]], at: datetime,
                 run_id: int | None = None) -> int:
    """Append what an account held at ``at`` (one row a currency)."""
    if not balances:
        return 0
    conn.execute(insert(provider_balances), [
        {"provider": provider, "account": account, "at": at, "amount": amount,
         "currency": currency, "run_id": run_id} for amount, currency in balances])
    return len(balances)


def latest_balances(conn: Connection) -> list[StoredBalance]:
    """Each provider account's balances as its latest sync read them (every currency)."""
    b = provider_balances.c
    last = (select(b.provider, b.account, func.max(b.at).label("at"))
            .group_by(b.provider, b.account).subquery())
    query = (select(provider_balances)
             .join(last, and_(b.provider == last.c.provider, b.account == last.c.account,
                              b.at == last.c.at))
             .order_by(b.provider, b.account, b.currency, b.id))
    rows = list(conn.execute(query))
    # Two syncs may read at the same instant (a clock's resolution): the later run's win.
    newest: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r.provider, r.account)
        newest[key] = max(newest.get(key, 0), r.run_id or 0)
    found = {(r.provider, r.account, r.currency): r for r in rows
             if (r.run_id or 0) == newest[(r.provider, r.account)]}
    return [StoredBalance(r.provider, r.account, r.at, r.amount, r.currency, r.run_id)
            for r in found.values()]
