"""Reading the daily rollups (and, for tags and purposes only, the raw records of a range):
``usage_daily_models`` where no user or key is asked for, ``usage_daily_people`` where one is and
no latency, ``usage_daily`` otherwise.

Every query groups by the currencies of the rows (price currency, billed currency), because
amounts in different currencies are never added in SQL; ``per_day`` also keeps the tenant and
day apart, for conversion at each day's FX rate (see :mod:`meterline.services.stats`) — with
``convert_to``, only for the rows that need it (priced, and neither currency is ``convert_to``):
the others are taken as they are, so they are summed over tenants and days in SQL and the
answer has about one row per group and currency pair, not per tenant and day. Money is summed
with ``money_sum``: NUMERIC on PostgreSQL, the exact Decimal aggregate on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
)

from meterline.store.archive import all_records
from meterline.store.schema import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
)
from meterline.store.types import money_sum

# The latency histogram's buckets are re-exported: services read rollup rows through here.
__all__ = ["DAILY_GROUPS", "LATENCY_BOUNDS_MS", "LATENCY_BUCKETS", "METER_GROUPS", "RAW_GROUPS",
           "daily", "meters", "raw_records"]

#: What ``group_by`` names, as the rollup column it groups on.
DAILY_GROUPS: Final = {"provider": "provider", "model": "model", "user": "user_id",
                       "key": "key_id", "status": "status", "tenant": "tenant_id", "day": "day"}
#: The groups only ``usage_daily`` has (the others read the smaller ``usage_daily_models``).
BY_PERSON: Final = frozenset({"user_id", "key_id"})
#: What ``usage_daily_people`` can group by (None: no second group).
PEOPLE_GROUPS: Final = frozenset({"user_id", "key_id", None})
METER_GROUPS: Final = {"meter": "meter"}
#: Computed over the raw records of the range: a record has any number of tags, and metadata is
#: free-form, so neither fits a rollup key.
RAW_GROUPS: Final = ("tag", "purpose")


def _int_sum(column: Any) -> Any:
    """SUM of integers as an integer (PostgreSQL's sum(bigint) is NUMERIC)."""
    return cast(func.sum(column), BigInteger)


def _range(table: Any, tenant: str | None, first: date | None,
           last: date | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if tenant is not None:
        conditions.append(table.c.tenant_id == tenant)
    if first is not None:
        conditions.append(table.c.day >= first)
    if last is not None:
        conditions.append(table.c.day <= last)
    return conditions


def _tenant_day(table: Any, convert_to: str | None, days_from: date | None) -> list[Any]:
    """The tenant and day keys: as they are, or (``convert_to``) only where the row must be
    converted or its day is on or after ``days_from`` — NULL elsewhere, so those rows are summed
    across tenants and days."""
    c = table.c
    if convert_to is None:
        return [c.tenant_id, c.day]
    kept: ColumnElement[bool] = and_(c.currency != "", c.billed_currency != convert_to,
                                     c.currency != convert_to)
    if days_from is not None:
        kept = or_(kept, c.day >= days_from)
    return [case((kept, c.tenant_id), else_=null()).label("tenant_id"),
            case((kept, c.day), else_=null()).label("day")]


#: Memory for the grouping of one statistics query (PostgreSQL, this transaction only). The
#: planner takes the number of groups for the product of the distinct values of each key, and
#: the tenant and day keys of ``convert_to`` are mostly NULL: it expects thousands of groups
#: where there are a handful, and at the default 4 MB sorts the range's rows on disk instead of
#: hashing them (half the time of a 90-day breakdown, measured: docs/dashboard.md).
WORK_MEM: Final = "32MB"
#: The same misestimate makes a parallel aggregation look like it would ship every row from
#: the workers, and the planner scans alone: at 0.01 (default 0.1) per row it shares the scan
#: with its workers (a 90-day top-users read on 10 million records: 214 ms → 135 ms).
PARALLEL_TUPLE_COST: Final = "0.01"


def _roomy(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'; "
                          f"SET LOCAL parallel_tuple_cost = {PARALLEL_TUPLE_COST}"))


def daily(conn: Connection, *, tenant: str | None, first: date | None, last: date | None,
          group: str | None, per_day: bool, convert_to: str | None = None,
          days_from: date | None = None, also: str | None = None,
          latency: bool = True) -> list[Any]:
    """Sums of the daily rollups per group (a column name of DAILY_GROUPS, or None for one
    group labelled ``None``; ``also``: a second one, labelled ``also``), per currency pair, and
    per tenant and day when ``per_day`` (with ``convert_to``: only where needed, see
    :func:`_tenant_day`). Read from ``usage_daily_models`` unless a group is the user or the
    key; then, without ``latency`` (its sums left out), from ``usage_daily_people`` where the
    groups are only users and keys."""
    table = _rollup_for({group, also}, latency)
    c = table.c
    group_column = c[group].label("group") if group else literal(None).label("group")
    keys: list[Any] = [group_column, c.currency, c.billed_currency]
    if also is not None:
        keys.append(c[also].label("also"))
    if per_day:
        keys += _tenant_day(table, convert_to, days_from)
    # A refund is a correction record, not a call: its (negative) cost counts, it does not.
    # (usage_daily_people counts calls and successes as it is written.)
    people = table is usage_daily_people
    calls = c.calls if people else case((c.status == "refunded", 0), else_=c.calls)
    successes = c.successes if people else case((c.status == "success", c.calls), else_=0)
    sums = [_int_sum(calls).label("calls"), _int_sum(successes).label("successes"),
            _int_sum(c.input_tokens).label("input_tokens"),
            _int_sum(c.output_tokens).label("output_tokens"),
            _int_sum(c.unpriced_calls).label("unpriced_calls"),
            money_sum(c.cost).label("cost"), money_sum(c.billed_cost).label("billed_cost")]
    if latency:
        sums += [_int_sum(c.latency_count).label("latency_count"),
                 _int_sum(c.latency_ms_total).label("latency_ms_total"),
                 *(_int_sum(c[name]).label(name) for name in LATENCY_BUCKETS)]
    group_keys = keys if group else keys[1:]
    _roomy(conn)
    return list(conn.execute(select(*keys, *sums)
                             .where(*_range(table, tenant, first, last))
                             .group_by(*group_keys)))


def _rollup_for(groups: set[str | None], latency: bool) -> Any:
    """The smallest rollup that holds ``groups`` (and the latencies, if asked for)."""
    if not groups & BY_PERSON:
        return usage_daily_models
    if not latency and groups <= PEOPLE_GROUPS:
        return usage_daily_people
    return usage_daily


def meters(conn: Connection, *, tenant: str | None, first: date | None, last: date | None,
           per_day: bool, convert_to: str | None = None) -> list[Any]:
    """Sums of ``usage_daily_meters`` per meter and currency pair (and tenant and day)."""
    c = usage_daily_meters.c
    keys: list[Any] = [c.meter.label("group"), c.currency, c.billed_currency]
    if per_day:
        keys += _tenant_day(usage_daily_meters, convert_to, None)
    _roomy(conn)
    return list(conn.execute(
        select(*keys, _int_sum(c.lines).label("lines"), money_sum(c.quantity).label("quantity"),
               money_sum(c.amount).label("cost"), money_sum(c.billed_amount).label("billed_cost"))
        .where(*_range(usage_daily_meters, tenant, first, last)).group_by(*keys)))


def raw_records(conn: Connection, *, tenant: str | None, since: datetime,
                until: datetime) -> Iterator[Any]:
    """The records of a time range with what tag and purpose groups need, streamed (a
    server-side cursor on PostgreSQL) so a long range does not sit in memory at once. Archived
    records count too: archiving changes no statistic."""
    names = ("tenant_id", "occurred_at", "tags", "metadata", "input_tokens", "output_tokens",
             "latency_ms", "cost", "currency", "billed_cost", "billed_currency")
    c = all_records(*names).c
    query = select(*(c[n] for n in names)).where(c.occurred_at >= since, c.occurred_at < until)
    if tenant is not None:
        query = query.where(c.tenant_id == tenant)
    yield from conn.execution_options(yield_per=5000).execute(query)
