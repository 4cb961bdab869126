"""Daily spend from the ledger, and the one projection of a period's spend to its end.

Daily costs are summed by the *local* day of each call (the tenant's timezone, or the budget's;
UTC for the whole deployment), in one currency: a record's ``cost`` where it was priced in that
currency, its ``billed_cost`` where it was billed in it, else its cost converted at the FX rate in
force at the call's time (``money.convert_at``). Records no rate converts are listed, never
guessed; unpriced records are counted. Sums are exact (``money_sum``; Decimal in Python).

:func:`budget_projection` is what every view of a budget shows as its projection — the budget
list (API, CLI, dashboard), the forecast and the projected-overrun alert — so they never
disagree (docs/forecast.md, "Budgets").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, case, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from meterline.domain import forecast as method
from meterline.domain.budgets import Budget, Scope, period_bounds, projection
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, format_decimal
from meterline.errors import FxRateMissing
from meterline.store.schema import usage_records
from meterline.store.types import money_sum

#: Request ids listed per currency that could not be converted (the count is always complete).
LISTED_IDS = 20


@dataclass
class DailyCosts:
    """Cost per local day in one currency, and what could not be counted."""

    currency: str
    days: dict[date, Decimal] = field(default_factory=dict)
    unpriced_records: int = 0
    #: currency -> [cost, records, first request ids]
    unconverted: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, day: date, amount: Decimal) -> None:
        with localcontext(MONEY_CONTEXT):
            self.days[day] = self.days.get(day, Decimal(0)) + amount

    def skip(self, currency: str, cost: Decimal, records: int, request_id: str | None) -> None:
        entry = self.unconverted.setdefault(currency, [Decimal(0), 0, []])
        with localcontext(MONEY_CONTEXT):
            entry[0] += cost
        entry[1] += records
        if request_id is not None and len(entry[2]) < LISTED_IDS:
            entry[2].append(request_id)

    def unconverted_json(self) -> list[dict[str, Any]]:
        return [{"currency": cur, "cost": format_decimal(cost), "records": count,
                 "request_ids": ids}
                for cur, (cost, count, ids) in sorted(self.unconverted.items())]


def _offset_spans(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """(from, UTC offset in minutes) for each stretch of constant offset in [start, end]."""

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds() // 60) if delta is not None else 0

    spans = [(start, offset(start))]
    at = start
    while at < end:
        step = min(at + timedelta(hours=1), end)
        if offset(step) != spans[-1][1]:
            low, high = at, step  # the change lies in (low, high]: narrow it to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle) != spans[-1][1] else (middle, high)
            spans.append((high, offset(high)))
        at = step
    return spans


def _local_day(conn: Connection, zone: ZoneInfo, start: datetime,
               end: datetime) -> ColumnElement[Any]:
    """SQL for the local date of ``occurred_at``: PostgreSQL knows timezones; SQLite shifts
    the UTC time by the offset in force, which changes only at the DST transitions."""
    at = usage_records.c.occurred_at
    if conn.dialect.name == "postgresql":
        return cast(func.timezone(zone.key, at), Date)
    spans = _offset_spans(zone, start, end)
    shifts = [f"{minutes:+d} minutes" for _, minutes in spans]
    if len(spans) == 1:
        return func.date(at, shifts[0])
    whens = [(at < spans[i + 1][0], shifts[i]) for i in range(len(spans) - 1)]
    return func.date(at, case(*whens, else_=shifts[-1]))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def daily_costs(conn: Connection, scope: Scope, currency: str, zone: ZoneInfo, start: datetime,
                end: datetime, fx: FxTable) -> DailyCosts:
    """Cost per local day of the records in ``scope`` with start ≤ occurred_at < end."""
    c = usage_records.c
    conditions = [c.occurred_at >= start, c.occurred_at < end]
    for column, value in ((c.tenant_id, scope.tenant), (c.user_id, scope.user),
                          (c.key_id, scope.key), (c.provider, scope.provider),
                          (c.model, scope.model)):
        if value is not None:
            conditions.append(column == value)
    day = _local_day(conn, zone, start, end).label("day")
    out = DailyCosts(currency)
    needs_fx = False
    for group in conn.execute(
            select(day, c.currency, c.billed_currency, money_sum(c.cost).label("cost"),
                   money_sum(c.billed_cost).label("billed"), func.count().label("records"),
                   func.count(c.cost).label("priced"))
            .where(*conditions).group_by(day, c.currency, c.billed_currency)):
        out.unpriced_records += group.records - group.priced
        if not group.priced:
            continue
        if group.currency == currency:
            out.add(_as_date(group.day), group.cost)
        elif group.billed_currency == currency and group.billed is not None:
            out.add(_as_date(group.day), group.billed)
        else:
            needs_fx = True
    if needs_fx:
        # Converted call by call, at the rate in force at each call's time.
        rows = conn.execute(select(c.request_id, c.occurred_at, c.cost, c.currency,
                                   c.billed_cost, c.billed_currency).where(
            *conditions, c.cost.is_not(None), c.currency != currency,
            or_(c.billed_currency.is_(None), c.billed_currency != currency)))
        for row in rows:
            converted = _convert(row, currency, fx)
            if converted is None:
                out.skip(row.currency, row.cost, 1, row.request_id)
            else:
                out.add(row.occurred_at.astimezone(zone).date(), converted)
    return out


def _convert(row: Any, currency: str, fx: FxTable) -> Decimal | None:
    """The record's cost in ``currency`` from its price currency, else from its billed one."""
    for amount, source in ((row.cost, row.currency), (row.billed_cost, row.billed_currency)):
        if amount is None or source is None:
            continue
        try:
            return fx.converted(amount, source, currency, row.occurred_at)
        except FxRateMissing:
            continue
    return None


def _elapsed(now: datetime, zone: ZoneInfo) -> tuple[date, Decimal]:
    """Today's local date and the fraction of it gone (by the clock: 23 or 25 hours on DST
    days), from integer microseconds so no float is involved."""
    today = now.astimezone(zone).date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(UTC)
    following = today + timedelta(days=1)
    day_end = datetime(following.year, following.month, following.day,
                       tzinfo=zone).astimezone(UTC)
    gone = max((now - day_start) // timedelta(microseconds=1), 1)
    length = (day_end - day_start) // timedelta(microseconds=1)
    with localcontext(method.FORECAST_CONTEXT):
        return today, min(Decimal(gone) / Decimal(length), Decimal(1))


def _project(conn: Connection, scope: Scope, currency: str, zone: ZoneInfo, now: datetime,
             fx: FxTable) -> tuple[method.Projection, DailyCosts]:
    month_start, _ = period_bounds("month", now, zone)
    local_start = month_start.astimezone(zone).date() - timedelta(days=method.LONG_DAYS)
    history_start = datetime(local_start.year, local_start.month, local_start.day,
                             tzinfo=zone).astimezone(UTC)
    # Up to now only: a forecast "as of" a past moment must not see what came after it.
    costs = daily_costs(conn, scope, currency, zone, history_start,
                        now + timedelta(microseconds=1), fx)
    today, elapsed = _elapsed(now, zone)
    return method.project(costs.days, today, elapsed), costs


def project_scope(conn: Connection, scope: Scope, currency: str, zone: ZoneInfo, now: datetime,
                  fx: FxTable) -> tuple[method.Projection, DailyCosts]:
    """This month's forecast of a scope (docs/forecast.md, the method)."""
    return _project(conn, scope, currency, zone, now, fx)


def budget_projection(conn: Connection, budget: Budget, spent: Decimal, now: datetime,
                      fx: FxTable) -> tuple[Decimal, str]:
    """The projected spend of a budget's current period and the method that made it.

    A monthly budget: its own counter ``spent`` (what it is held to) plus the forecast's
    remainder for its scope, currency and timezone (recent pace with a weekday profile). A day
    budget: the linear pace of the day so far (a day has no weekday profile to learn from). A
    ``total`` budget: what was spent (it has no end)."""
    if budget.period == "month":
        made, _ = _project(conn, budget.scope, budget.currency, budget.zone, now, fx)
        with localcontext(MONEY_CONTEXT):
            return spent + (made.projected - made.spent), made.method
    start, end = budget.bounds(now)
    return projection(spent, start, end, now), "linear" if budget.period == "day" else "spent"
