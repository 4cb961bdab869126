"""Daily rollups of the ledger, kept in step with it: ``usage_daily``, the same without users and
keys (``usage_daily_models``), who spent (``usage_daily_people``) and ``usage_daily_meters``.

A record counts on the calendar day of its ``occurred_at`` in its tenant's timezone. The rollups
change exactly where the ledger does, in the same transaction:

* :func:`apply_records` — records newly written by ``ledger.write_records``;
* :func:`replace_record` — a record completed once (``price_unpriced``, ``fill_fx``): its old
  state is taken out and its new state put in, which moves it between keys (its currency, and
  for a rerated record perhaps its model, are part of the key).

A batch is summed in Python first, then written with one statement per table
(:mod:`meterline.store.rollup_writes`).

:func:`rebuild` recomputes the rollups from the records; incremental and rebuilt rollups are
equal row by row (tests/store/test_rollups.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import reduce
from operator import itemgetter
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import URL, Connection, Table, bindparam, delete, func, select, text, union_all

from meterline.domain.money import convert_at
from meterline.store.rollup_writes import (
    DAILY_KEY,
    GATEWAY_SOURCES,
    METER_KEY,
    MODEL_KEY,
    PEOPLE_KEY,
    QUANTITIES,
    REFUND_SOURCE,
    SUM_CONTEXT,
    ZERO,
    Key,
    Values,
    write,
)
from meterline.store.schema import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    charge_lines,
    charge_lines_archive,
    tenants,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
    usage_records,
    usage_records_archive,
)

#: A usage record's columns: a row dict of ``NewRecord`` or a stored row's mapping.
Record = Mapping[Any, Any]


class LineLike(Protocol):
    """A charge line: a ``ChargeLine`` or a ``charge_lines`` row."""

    @property
    def meter(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def unit(self) -> str: ...
    @property
    def unit_price(self) -> Decimal: ...
    @property
    def per(self) -> int: ...
    @property
    def amount(self) -> Decimal: ...


_QUANTITY = [itemgetter(name) for name in QUANTITIES]
_LATENCY = itemgetter("latency_ms")


def _money_sum(values: Iterable[Decimal]) -> Decimal:
    return reduce(SUM_CONTEXT.add, values, ZERO)


class Sums:
    """The rollup deltas of sets of records (``sign=-1``: records taken out)."""

    def __init__(self) -> None:
        self.daily: dict[Key, Values] = {}
        self.meters: dict[Key, Values] = {}
        self.removed = False

    def add(self, records: Iterable[tuple[Record, Iterable[LineLike]]],
            zone_of: Mapping[str, ZoneInfo], sign: int = 1) -> None:
        # Grouped first, then each group summed column by column: most of the work happens
        # in C (sum, map, reduce), which keeps the ledger write fast.
        groups: dict[Key, list[Record]] = {}
        line_groups: dict[Key, list[tuple[LineLike, Decimal]]] = {}
        for record, lines in records:
            tenant_id = record["tenant_id"]
            day = record["occurred_at"].astimezone(zone_of[tenant_id]).date()
            user_id = record["user_id"] or ""
            currency = record["currency"] or ""
            billed_currency = record["billed_currency"] or ""
            key = (tenant_id, day, user_id, record["key_id"] or "", record["provider"],
                   record["model"], record["status"], currency, billed_currency)
            found = groups.get(key)
            if found is None:
                groups[key] = [record]
            else:
                found.append(record)
            rate = record["fx_rate"]
            same = billed_currency == currency
            # A refund's lines are kept apart from the charges they refund (bills show them
            # as their own lines); from the record itself, so a rebuild finds the same.
            refund = record.get("source") == REFUND_SOURCE
            prefix = (tenant_id, day, user_id, record["model"], currency, billed_currency)
            for line in lines:
                if same:
                    billed = line.amount
                elif billed_currency and rate is not None:
                    billed = convert_at(line.amount, rate)
                else:
                    billed = ZERO  # not converted (yet): no FX rate covered the call
                line_key = (*prefix, line.meter, line.unit, line.unit_price, line.per, refund)
                pairs = line_groups.get(line_key)
                if pairs is None:
                    line_groups[line_key] = [(line, billed)]
                else:
                    pairs.append((line, billed))
        for key, group in groups.items():
            latencies = [v for v in map(_LATENCY, group) if v is not None]
            buckets = [0] * len(LATENCY_BUCKETS)
            for latency in latencies:
                buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, latency)] += 1
            _merge(self.daily, key, [
                len(group), *(sum(map(get, group)) for get in _QUANTITY),
                sum(r["cost"] is None for r in group), sum(bool(r["estimated"]) for r in group),
                sum(r["source"] not in GATEWAY_SOURCES for r in group),
                len(latencies), sum(latencies), *buckets,
                _money_sum(Decimal(r["seconds"]) for r in group),
                _money_sum(r["cost"] for r in group if r["cost"] is not None),
                _money_sum(r["billed_cost"] for r in group if r["billed_cost"] is not None),
            ], sign)
        for key, pairs in line_groups.items():
            _merge(self.meters, key, [
                len(pairs), _money_sum(line.quantity for line, _ in pairs),
                _money_sum(line.amount for line, _ in pairs), _money_sum(b for _, b in pairs),
            ], sign)
        self.removed = self.removed or (sign < 0 and bool(groups))


def _merge(into: dict[Key, Values], key: Key, values: Values, sign: int) -> None:
    if sign < 0:
        values = [v.copy_negate() if isinstance(v, Decimal) else -v for v in values]
    found = into.get(key)
    if found is None:
        into[key] = values
    else:
        into[key] = [SUM_CONTEXT.add(a, b) if isinstance(a, Decimal) else a + b
                     for a, b in zip(found, values, strict=True)]


def zones(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, ZoneInfo]:
    """Each tenant's timezone (UTC for a tenant that is not stored). A tenant's timezone never
    changes once stored, so the answers are kept for the process, per database (every ledger
    write asks)."""
    database = conn.engine.url
    found: dict[str, ZoneInfo] = {}
    missing = []
    for tenant_id in set(tenant_ids):
        zone = _known_zones.get((database, tenant_id))
        if zone is None:
            missing.append(tenant_id)
        else:
            found[tenant_id] = zone
    missing.sort()
    if missing:
        if len(_known_zones) > MAX_KNOWN_ZONES:
            _known_zones.clear()
        for row in conn.execute(_ZONES, {"ids": missing}):
            found[row.id] = _known_zones[database, row.id] = ZoneInfo(row.timezone)
        found.update((t, UTC_ZONE) for t in missing if t not in found)
    return found


MAX_KNOWN_ZONES = 100_000
UTC_ZONE = ZoneInfo("UTC")
_known_zones: dict[tuple[URL, str], ZoneInfo] = {}


# Built once: every ledger write asks (building the statement anew cost more than running it).
_ZONES = select(tenants.c.id, tenants.c.timezone).where(
    tenants.c.id.in_(bindparam("ids", expanding=True)))


def days(conn: Connection, records: Sequence[Record]) -> list[date]:
    """Each record's calendar day in its tenant's timezone (the day it counts on)."""
    zone_of = zones(conn, {r["tenant_id"] for r in records})
    return [r["occurred_at"].astimezone(zone_of[r["tenant_id"]]).date() for r in records]


def apply_records(conn: Connection, records: Sequence[Record],
                  lines: Sequence[Iterable[LineLike]]) -> None:
    """Add newly written records (``lines[i]`` are the charge lines of ``records[i]``)."""
    if not records:
        return
    sums = Sums()
    sums.add(zip(records, lines, strict=True), zones(conn, (r["tenant_id"] for r in records)))
    write(conn, sums.daily, sums.meters, sums.removed)


def replace_record(conn: Connection, old: Record, old_lines: Iterable[LineLike],
                   new: Record, new_lines: Iterable[LineLike]) -> None:
    """A record changed from ``old`` to ``new`` (a rerate, a late FX conversion)."""
    zone_of = zones(conn, [old["tenant_id"], new["tenant_id"]])
    sums = Sums()
    sums.add([(old, old_lines)], zone_of, sign=-1)
    sums.add([(new, new_lines)], zone_of)
    write(conn, sums.daily, sums.meters, sums.removed)


# -- rebuilding ----------------------------------------------------------------------------------

REBUILD_PAGE = 2000


def count_records(conn: Connection, tenant: str | None = None) -> int:
    """Records a rebuild reads: hot and archived."""
    total = 0
    for table in (usage_records, usage_records_archive):
        query = select(func.count()).select_from(table)
        if tenant is not None:
            query = query.where(table.c.tenant_id == tenant)
        total += int(conn.execute(query).scalar_one())
    return total


def _page(conn: Connection, tenant: str | None, after: str) -> list[Any]:
    """The next records by request id, hot and archived (archiving never changes the rollups,
    so a rebuild counts both): each table's page first, then the first of the two."""
    pages = []
    for table in (usage_records, usage_records_archive):
        query = select(table).where(table.c.request_id > after)
        if tenant is not None:
            query = query.where(table.c.tenant_id == tenant)
        pages.append(query.order_by(table.c.request_id).limit(REBUILD_PAGE).subquery())
    both = union_all(*(select(page) for page in pages)).subquery()
    return list(conn.execute(select(both).order_by(both.c.request_id).limit(REBUILD_PAGE)))


def _lines(conn: Connection, request_ids: list[str]) -> dict[str, list[Any]]:
    lines: dict[str, list[Any]] = {r: [] for r in request_ids}
    both = union_all(*(select(table).where(table.c.request_id.in_(request_ids))
                       for table in (charge_lines, charge_lines_archive))).subquery()
    for line in conn.execute(select(both).order_by(both.c.request_id, both.c.line_no)):
        lines[line.request_id].append(line)
    return lines


def rebuild(conn: Connection, tenant: str | None = None,
            progress: Callable[[int], None] | None = None) -> int:
    """Recompute the rollups (of one tenant, or all) from the records, hot and archived;
    returns records read.

    Call inside a transaction. Writers of the ledger wait until it commits: on PostgreSQL the
    rollup tables are locked against writes first; on SQLite the first delete takes the write
    lock. So every record is counted once, by the rebuild or by its writer after it.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE usage_daily, usage_daily_models, usage_daily_people, "
                          "usage_daily_meters IN EXCLUSIVE MODE"))
    for table in (usage_daily, usage_daily_models, usage_daily_people, usage_daily_meters):
        clear = delete(table)
        if tenant is not None:
            clear = clear.where(table.c.tenant_id == tenant)
        conn.execute(clear)
    by_tenant: dict[str, ZoneInfo] = {}
    sums = Sums()
    seen = 0
    after = ""
    while True:
        page = _page(conn, tenant, after)
        if not page:
            break
        after = page[-1].request_id
        lines = _lines(conn, [r.request_id for r in page])
        missing = {r.tenant_id for r in page} - set(by_tenant)
        if missing:
            by_tenant.update(zones(conn, missing))
        sums.add(((r._mapping, lines[r.request_id]) for r in page), by_tenant)
        seen += len(page)
        if progress is not None:
            progress(len(page))
    write(conn, sums.daily, sums.meters, sums.removed)
    return seen


def all_rows(conn: Connection, table: Table, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every rollup row, in key order (for checks and tests)."""
    key = {usage_daily: DAILY_KEY, usage_daily_models: MODEL_KEY,
           usage_daily_people: PEOPLE_KEY}.get(table, METER_KEY)
    query = select(table).order_by(*(table.c[n] for n in key))
    if tenant is not None:
        query = query.where(table.c.tenant_id == tenant)
    return [dict(row._mapping) for row in conn.execute(query)]

