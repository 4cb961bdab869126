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
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from meterline.domain import forecast as method
from meterline.domain.budgets import Budget, Scope, period_bounds, projection
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, format_decimal
from meterline.errors import FxRateMissing
from meterline.store import spend

#: Request ids listed per currency that could not be converted (the count is always complete).
LISTED_IDS = 20


class Skipped(NamedTuple):
    """Records of one currency that no FX rate converts: their cost, count and first ids."""

    currency: str
    cost: Decimal
    records: int
    request_ids: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "cost": format_decimal(self.cost),
                "records": self.records, "request_ids": self.request_ids}


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

    def skipped(self) -> list[Skipped]:
        return [Skipped(cur, cost, count, list(ids))
                for cur, (cost, count, ids) in sorted(self.unconverted.items())]


def daily_costs(conn: Connection, scope: Scope, currency: str, zone: ZoneInfo, start: datetime,
                end: datetime, fx: FxTable) -> DailyCosts:
    """Cost per local day of the records in ``scope`` with start ≤ occurred_at < end."""
    out = DailyCosts(currency)
    needs_fx = False
    for group in spend.day_groups(conn, scope, zone, start, end):
        out.unpriced_records += group.records - group.priced
        if not group.priced:
            continue
        if group.currency == currency and group.cost is not None:
            out.add(group.day, group.cost)
        elif group.billed_currency == currency and group.billed is not None:
            out.add(group.day, group.billed)
        else:
            needs_fx = True
    if needs_fx:
        # Converted call by call, at the rate in force at each call's time.
        for row in spend.foreign_records(conn, scope, start, end, currency):
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
