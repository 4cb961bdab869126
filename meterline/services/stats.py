"""Statistics — summary, breakdowns and daily trend — read from the daily rollups.

Two views (docs/stats.md):

* one tenant: amounts in the tenant's currency, exactly as the ledger billed them
  (``billed_cost``); records the ledger could not convert (no FX rate at the call's time) are
  listed under ``unconverted`` in their price currency, never guessed;
* all tenants: amounts in the config's ``reporting_currency``. A rollup row already in that
  currency (billed or priced) is taken as it is; any other is converted at the FX rate in force
  at the end of its day (in its tenant's timezone); rows no stored rate converts are listed
  under ``unconverted``.

Days are calendar days in each tenant's timezone; "today" for all tenants is the latest date
any tenant has reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.services.reporting import (
    Group,
    Tally,
    Unconverted,
    View,
    load_view,
    parse_day,
    parse_days,
    rounded_average,
)
from meterline.store import stats as store
from meterline.store.rollup_writes import SUM_CONTEXT, ZERO

GROUP_BY = (*store.DAILY_GROUPS, *store.METER_GROUPS, *store.RAW_GROUPS)
DEFAULT_TREND_DAYS = 30


def _unconverted_json(found: list[Unconverted]) -> list[dict[str, Any]]:
    return [item.to_json() for item in found]


@dataclass(frozen=True, slots=True)
class Summary:
    """All-time total, this month and today in ``currency``; calls and the share that
    succeeded (None without calls); what could not be priced or converted."""

    tenant: str | None
    currency: str
    total: Decimal
    month: Decimal
    today: Decimal
    calls: int
    success_rate: float | None
    unpriced_calls: int
    unconverted: list[Unconverted]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "currency": self.currency,
            "total": format_decimal(self.total), "month": format_decimal(self.month),
            "today": format_decimal(self.today), "calls": self.calls,
            "success_rate": self.success_rate, "unpriced_calls": self.unpriced_calls,
            "unconverted": _unconverted_json(self.unconverted),
        }


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Cost, calls and tokens per group over the days ``start`` to ``end`` (both included),
    biggest cost first."""

    tenant: str | None
    currency: str
    start: date
    end: date
    group_by: str
    total_cost: Decimal
    calls: int
    unpriced_calls: int
    unconverted: list[Unconverted]
    groups: list[Group]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "currency": self.currency, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "group_by": self.group_by,
            "total_cost": format_decimal(self.total_cost), "calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "unconverted": _unconverted_json(self.unconverted),
            "groups": [g.to_json() for g in self.groups],
        }


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    cost: Decimal
    calls: int


@dataclass(frozen=True, slots=True)
class Trend:
    """Cost and calls of each day of the window (zero-filled), with its total, average (the
    one rounded figure), and the dearest and cheapest days."""

    tenant: str | None
    currency: str
    days: list[Day]
    total: Decimal
    average: Decimal
    max: Decimal
    min: Decimal
    max_date: date
    min_date: date
    unpriced_calls: int
    unconverted: list[Unconverted]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "currency": self.currency,
            "days": [{"date": d.day.isoformat(), "cost": format_decimal(d.cost),
                      "calls": d.calls} for d in self.days],
            "total": format_decimal(self.total), "average": format_decimal(self.average),
            "max": format_decimal(self.max), "min": format_decimal(self.min),
            "max_date": self.max_date.isoformat(), "min_date": self.min_date.isoformat(),
            "unpriced_calls": self.unpriced_calls,
            "unconverted": _unconverted_json(self.unconverted),
        }


def summary(engine: Engine, tenant: str | None, reporting_currency: str,
            now: datetime | None = None) -> Summary:
    """All-time total, this month and today, calls and the share that succeeded."""
    with engine.connect() as conn:
        view = load_view(conn, tenant, reporting_currency, now)
        # Days of this month (in the earliest timezone) kept apart; earlier ones only where
        # they are converted.
        month_start = min([view.today_of(t) for t in view.zones] or [view.today]).replace(day=1)
        rows = store.daily(conn, tenant=view.tenant_id, first=None, last=None, group=None,
                           per_day=True, convert_to=view.currency, days_from=month_start)
    tally = Tally(view)
    month = today = ZERO
    calls = successes = 0
    for row in rows:
        amount = tally.add(row, row.calls)
        calls += row.calls
        successes += row.successes
        if row.day is None:
            continue  # before this month
        local_today = view.today_of(row.tenant_id)
        if row.day.replace(day=1) == local_today.replace(day=1) and row.day <= local_today:
            month = SUM_CONTEXT.add(month, amount)
            if row.day == local_today:
                today = SUM_CONTEXT.add(today, amount)
    return Summary(view.tenant_id, view.currency, tally.total, month, today, calls,
                   round(successes / calls, 4) if calls else None, tally.unpriced,
                   tally.unconverted())


def stats(engine: Engine, tenant: str | None, reporting_currency: str, *,
          start: str | None = None, end: str | None = None, group_by: str | None = None,
          now: datetime | None = None) -> Breakdown:
    """Cost, calls and tokens per group over a range of days (both ends included)."""
    return breakdowns(engine, tenant, reporting_currency, start=start, end=end,
                      group_by=[group_by or "model"], now=now)[0]


def breakdowns(engine: Engine, tenant: str | None, reporting_currency: str, *,
               start: str | None = None, end: str | None = None,
               group_by: Sequence[str] = ("model",),
               now: datetime | None = None, latency: bool = True) -> list[Breakdown]:
    """:func:`stats` for each of ``group_by`` over the same range: the range's totals are read
    once, users and keys together (the overview shows four breakdowns). Without ``latency``
    the groups' latencies are left unread (the overview does not show them)."""
    _check_groups(group_by)
    with engine.connect() as conn:
        view = load_view(conn, tenant, reporting_currency, now)
        last = parse_day(end, "end", view, end=True) if end else view.today
        first = parse_day(start, "start", view) if start else last.replace(day=1)
        if last < first:
            raise InvalidInput(f"end: {last} is before start {first}", field="end")
        return _breakdowns(conn, view, first, last, group_by, latency)


def overview(engine: Engine, tenant: str | None, reporting_currency: str, days: object = None,
             *, start: str | None = None, end: str | None = None,
             group_by: Sequence[str] = ("provider", "model", "user", "key"),
             now: datetime | None = None) -> tuple[Trend, list[Breakdown]]:
    """:func:`trend` (``days``, or ``start`` to ``end``) and the breakdowns of its days by
    ``group_by`` (latencies left out), from one read per grouping: the trend is the breakdown
    by day, whose rows are the range's totals too (figures equal to :func:`trend` and
    :func:`breakdowns`: both convert per tenant and day)."""
    _check_groups(group_by)
    with engine.connect() as conn:
        view = load_view(conn, tenant, reporting_currency, now)
        first, count = _window(view, days, start, end)
        last = first + timedelta(days=count - 1)
        by_day, *found = _breakdowns(conn, view, first, last, ("day", *group_by), False)
    costs = {date.fromisoformat(g.key): g.cost for g in by_day.groups}
    calls = {date.fromisoformat(g.key): g.calls for g in by_day.groups}
    return _trend(view, first, count, costs, calls, by_day.total_cost, by_day.unpriced_calls,
                  by_day.unconverted), found


def _check_groups(group_by: Sequence[str]) -> None:
    for name in group_by:
        if name not in GROUP_BY:
            raise InvalidInput(f"group_by: {name!r} is not one of {', '.join(GROUP_BY)}",
                               field="group_by")


def _breakdowns(conn: Connection, view: View, first: date, last: date,
                group_by: Sequence[str], latency: bool) -> list[Breakdown]:
    per_day = view.converts
    # The rows by day are the totals' rows too: both keep the tenant and day of every row
    # that is converted, and the others are exact.
    by_day = store.daily(conn, tenant=view.tenant_id, first=first, last=last, group="day",
                         per_day=per_day, convert_to=view.currency, latency=latency) \
        if "day" in group_by else None
    totals = by_day if by_day is not None else store.daily(
        conn, tenant=view.tenant_id, first=first, last=last, group=None, per_day=per_day,
        convert_to=view.currency, latency=False)
    by_person = _by_user_and_key(conn, view, first, last, latency) \
        if {"user", "key"} <= set(group_by) else {}
    grouped = [by_person[name] if name in by_person
               else _groups(view, by_day, "calls") if name == "day" and by_day is not None
               else _grouped(conn, view, name, first, last, latency) for name in group_by]
    tally = Tally(view)
    calls = 0
    for row in totals:
        tally.add(row, row.calls)
        calls += row.calls
    return [Breakdown(view.tenant_id, view.currency, first, last, name, tally.total, calls,
                      tally.unpriced, tally.unconverted(),
                      sorted(groups.values(),
                             key=lambda g: (g.cost.copy_negate(), -g.calls, str(g.key))))
            for name, groups in zip(group_by, grouped, strict=True)]


def _by_user_and_key(conn: Connection, view: View, first: date, last: date,
                     latency: bool) -> dict[str, dict[Any, Group]]:
    """The user and the key breakdowns from one read of the rollup grouped by both (a key
    seldom serves many users, so the pairs are hardly more than the users)."""
    rows = store.daily(conn, tenant=view.tenant_id, first=first, last=last, group="user_id",
                       also="key_id", per_day=view.converts, convert_to=view.currency,
                       latency=latency)
    return {"user": _groups(view, rows, "calls"),
            "key": _groups(view, rows, "calls", key=lambda row: row.also)}


def _grouped(conn: Connection, view: View, group_by: str, first: date,
             last: date, latency: bool = True) -> dict[Any, Group]:
    per_day = view.converts
    if group_by in store.RAW_GROUPS:
        since, until = view.bounds(first, last)
        return _raw_groups(view, group_by, first, last, store.raw_records(
            conn, tenant=view.tenant_id, since=since, until=until))
    if group_by in store.METER_GROUPS:
        return _groups(view, store.meters(conn, tenant=view.tenant_id, first=first, last=last,
                                          per_day=per_day, convert_to=view.currency), "lines")
    return _groups(view, store.daily(conn, tenant=view.tenant_id, first=first, last=last,
                                     group=store.DAILY_GROUPS[group_by], per_day=per_day,
                                     convert_to=view.currency, latency=latency), "calls")


def _group_of(row: Any) -> Any:
    return row.group


def _groups(view: View, rows: Iterable[Any], count: str,
            key: Callable[[Any], Any] = _group_of) -> dict[Any, Group]:
    tally = Tally(view)
    groups: dict[Any, Group] = {}
    for row in rows:
        value = key(row)
        name = value.isoformat() if isinstance(value, date) else (value or None)
        group = groups.get(name) or groups.setdefault(name, Group(name))
        group.add_rollup(row, tally.add(row, getattr(row, count)))
    return groups


def _raw_groups(view: View, group_by: str, first: date, last: date,
                records: Iterable[Any]) -> dict[Any, Group]:
    tally = Tally(view)
    groups: dict[Any, Group] = {}
    for record in records:
        day = record.occurred_at.astimezone(view.zone_of(record.tenant_id)).date()
        if not first <= day <= last:
            continue  # inside the widest bounds, outside this tenant's days
        amount = tally.add_values(record.currency or "", record.billed_currency or "",
                                  record.cost or ZERO, record.billed_cost or ZERO,
                                  record.tenant_id, day, 1)
        if group_by == "tag":
            keys: list[str | None] = sorted(set(record.tags or [])) or [None]
        else:
            purpose = (record.metadata or {}).get("purpose")
            keys = [purpose if isinstance(purpose, str) else None]
        for key in keys:
            group = groups.get(key) or groups.setdefault(key, Group(key))
            group.add_record(record, amount)
    return groups


def trend(engine: Engine, tenant: str | None, reporting_currency: str,
          days: object = None, now: datetime | None = None, *, start: str | None = None,
          end: str | None = None) -> Trend:
    """Cost and calls of each of the last ``days`` days (today included), zero-filled; or,
    with ``start``, of each day from ``start`` to ``end`` (default today), both included."""
    with engine.connect() as conn:
        view = load_view(conn, tenant, reporting_currency, now)
        first, count = _window(view, days, start, end)
        rows = store.daily(conn, tenant=view.tenant_id, first=first,
                           last=first + timedelta(days=count - 1), group="day",
                           per_day=view.converts, convert_to=view.currency)
    tally = Tally(view)
    costs: dict[date, Decimal] = {}
    calls: dict[date, int] = {}
    for row in rows:
        amount = tally.add(row, row.calls)
        costs[row.group] = SUM_CONTEXT.add(costs.get(row.group, ZERO), amount)
        calls[row.group] = calls.get(row.group, 0) + row.calls
    return _trend(view, first, count, costs, calls, tally.total, tally.unpriced,
                  tally.unconverted())


def _window(view: View, days: object, start: str | None, end: str | None) -> tuple[date, int]:
    """The first day and the number of days of a trend: the last ``days`` (today included),
    or ``start`` to ``end`` (default today)."""
    if not start:
        count = parse_days(days if days is not None else DEFAULT_TREND_DAYS)
        return view.today - timedelta(days=count - 1), count
    last = parse_day(end, "end", view, end=True) if end else view.today
    first = parse_day(start, "start", view)
    if last < first:
        raise InvalidInput(f"end: {last} is before start {first}", field="end")
    return first, parse_days((last - first).days + 1)


def _trend(view: View, first: date, count: int, costs: dict[date, Decimal],
           calls: dict[date, int], total: Decimal, unpriced: int,
           unconverted: list[Unconverted]) -> Trend:
    """The zero-filled days of the window with their total, average, dearest and cheapest."""
    series = [(first + timedelta(days=n)) for n in range(count)]
    values = [costs.get(day, ZERO) for day in series]
    highest, lowest = max(values), min(values)
    return Trend(view.tenant_id, view.currency,
                 [Day(day, costs.get(day, ZERO), calls.get(day, 0)) for day in series],
                 total, rounded_average(total, count), highest, lowest,
                 series[values.index(highest)], series[values.index(lowest)], unpriced,
                 unconverted)
