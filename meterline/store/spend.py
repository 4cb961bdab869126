"""Reading spend from the ledger's usage records: per local day (forecasts and budget
projections, :mod:`meterline.services.projection`), and per model, user and key (optimisation
hints, :mod:`meterline.services.hints`).

Amounts in different currencies are never added in SQL: every sum is grouped by its currencies,
and the services convert. Money is summed with ``money_sum`` (exact on both databases).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, case, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from meterline.domain.budgets import Scope
from meterline.store.schema import api_keys, usage_records
from meterline.store.types import money_sum

#: The token columns hints look at, summed per model.
TOKENS: Final = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                 "reasoning_tokens")


class DayGroup(NamedTuple):
    """The records of one local day in one pair of currencies."""

    day: date
    currency: str | None
    billed_currency: str | None
    cost: Decimal | None
    billed: Decimal | None
    records: int
    priced: int


class ModelTotals(NamedTuple):
    model: str
    calls: int
    tokens: dict[str, int]
    max_prompt: int


class KeyUse(NamedTuple):
    """A live key and the time of its last call (None: never used)."""

    id: str
    name: str | None
    prefix: str
    user_id: str | None
    created_at: datetime
    last_used: datetime | None


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


def local_day(conn: Connection, zone: ZoneInfo, start: datetime,
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


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _in_scope(scope: Scope, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    c = usage_records.c
    conditions = [c.occurred_at >= start, c.occurred_at < end]
    for column, value in ((c.tenant_id, scope.tenant), (c.user_id, scope.user),
                          (c.key_id, scope.key), (c.provider, scope.provider),
                          (c.model, scope.model)):
        if value is not None:
            conditions.append(column == value)
    return conditions


def day_groups(conn: Connection, scope: Scope, zone: ZoneInfo, start: datetime,
               end: datetime) -> list[DayGroup]:
    """Cost and billed cost per local day and currencies of the records in ``scope`` with
    start ≤ occurred_at < end; ``priced`` counts the records that have a cost."""
    c = usage_records.c
    day = local_day(conn, zone, start, end).label("day")
    rows = conn.execute(
        select(day, c.currency, c.billed_currency, money_sum(c.cost).label("cost"),
               money_sum(c.billed_cost).label("billed"), func.count().label("records"),
               func.count(c.cost).label("priced"))
        .where(*_in_scope(scope, start, end)).group_by(day, c.currency, c.billed_currency))
    return [DayGroup(as_date(r.day), r.currency, r.billed_currency, r.cost, r.billed,
                     r.records, r.priced) for r in rows]


def foreign_records(conn: Connection, scope: Scope, start: datetime, end: datetime,
                    currency: str) -> list[Any]:
    """The priced records in ``scope`` neither priced nor billed in ``currency`` (to convert
    call by call): request_id, occurred_at, cost, currency, billed_cost, billed_currency."""
    c = usage_records.c
    return list(conn.execute(select(c.request_id, c.occurred_at, c.cost, c.currency,
                                    c.billed_cost, c.billed_currency).where(
        *_in_scope(scope, start, end), c.cost.is_not(None), c.currency != currency,
        or_(c.billed_currency.is_(None), c.billed_currency != currency))))


def model_totals(conn: Connection, tenant: str, since: datetime,
                 until: datetime) -> list[ModelTotals]:
    """Calls, tokens and the longest prompt per model of a tenant, both ends included."""
    c = usage_records.c
    sums = [func.coalesce(func.sum(getattr(c, name)), 0).label(name) for name in TOKENS]
    rows = conn.execute(select(c.model, func.count().label("calls"), *sums,
                               func.coalesce(func.max(c.input_tokens), 0).label("max_prompt"))
                        .where(c.tenant_id == tenant, c.occurred_at >= since,
                               c.occurred_at <= until)
                        .group_by(c.model).order_by(c.model))
    # int(): PostgreSQL sums bigints as NUMERIC.
    return [ModelTotals(r.model, int(r.calls), {n: int(getattr(r, n)) for n in TOKENS},
                        int(r.max_prompt)) for r in rows]


def live_keys_created_before(conn: Connection, tenant: str, cutoff: datetime,
                             now: datetime) -> list[KeyUse]:
    """A tenant's keys created by ``cutoff``, neither revoked nor expired at ``now``, oldest
    first, each with its last call."""
    k, c = api_keys.c, usage_records.c
    last_used = (select(func.max(c.occurred_at)).where(c.tenant_id == tenant, c.key_id == k.id)
                 .scalar_subquery())
    rows = conn.execute(select(k.id, k.name, k.prefix, k.user_id, k.created_at,
                               last_used.label("last_used"))
                        .where(k.tenant_id == tenant, k.revoked_at.is_(None),
                               k.created_at <= cutoff,
                               (k.expires_at.is_(None)) | (k.expires_at > now))
                        .order_by(k.created_at, k.id))
    return [KeyUse(r.id, r.name, r.prefix, r.user_id, r.created_at, r.last_used) for r in rows]


def billed_by_user(conn: Connection, tenant: str, currency: str, since: datetime,
                   until: datetime) -> dict[str | None, Decimal]:
    """A tenant's billed spend in ``currency`` per user (None: calls without one), both ends
    included; users with nothing billed are left out."""
    c = usage_records.c
    rows = conn.execute(select(c.user_id, money_sum(c.billed_cost).label("billed"))
                        .where(c.tenant_id == tenant, c.occurred_at >= since,
                               c.occurred_at <= until, c.billed_currency == currency)
                        .group_by(c.user_id))
    return {r.user_id: r.billed for r in rows if r.billed}
