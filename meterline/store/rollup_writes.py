"""Writing rollup deltas, straight to the driver like the ledger's bulk writer: a batch is one
statement per table.

PostgreSQL adds in SQL (``ON CONFLICT DO UPDATE SET x = x + excluded.x`` over ``unnest`` arrays):
NUMERIC arithmetic is exact, and concurrent writers queue on the rows, which every writer takes in
key order, so they cannot deadlock. SQLite keeps money as TEXT, where SQL arithmetic would go
through floats, so there the stored rows are read, added to in Python with Decimal and written
back; the ledger write that came first holds SQLite's single write lock, so nothing changes them
in between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Any, Final

import psycopg
from sqlalchemy import Boolean, Connection, Date, String, Table, delete, tuple_
from sqlalchemy.exc import OperationalError

from meterline.domain.money import CONVERTED_PLACES, format_decimal
from meterline.errors import StoreError
from meterline.store.schema import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
)
from meterline.store.types import Money

#: Sums of many amounts, and line amounts times FX rates (up to 28 digits), stay exact here; the
#: Inexact trap makes anything that would not raise instead of rounding.
SUM_CONTEXT = Context(prec=200, rounding=ROUND_HALF_UP,
                      traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
ZERO = Decimal(0)

DAILY_KEY = ("tenant_id", "day", "user_id", "key_id", "provider", "model", "status", "currency",
             "billed_currency")
#: ``usage_daily_models``: the daily key without the user and key (their positions in it).
MODEL_KEY = tuple(n for n in DAILY_KEY if n not in ("user_id", "key_id"))
_MODEL_POSITIONS = tuple(DAILY_KEY.index(n) for n in MODEL_KEY)
#: ``usage_daily_people``: who spent, per day and currency pair (docs/stats.md).
PEOPLE_KEY = ("tenant_id", "day", "user_id", "key_id", "currency", "billed_currency")
_PEOPLE_POSITIONS = tuple(DAILY_KEY.index(n) for n in PEOPLE_KEY)
_STATUS = DAILY_KEY.index("status")
PEOPLE_COUNTS = ("records", "calls", "successes", "input_tokens", "output_tokens",
                 "unpriced_calls")
PEOPLE_MONEY = ("cost", "billed_cost")
QUANTITIES = ("input_tokens", "cached_input_tokens", "cache_write_tokens",
              "cache_write_1h_tokens", "output_tokens",
              "reasoning_tokens", "characters", "images", "requests")
DAILY_COUNTS = ("calls", *QUANTITIES, "unpriced_calls", "estimated_calls", "reported_calls",
                "latency_count",
                "latency_ms_total", *LATENCY_BUCKETS)
DAILY_MONEY = ("seconds", "cost", "billed_cost")
METER_KEY = ("tenant_id", "day", "user_id", "model", "currency", "billed_currency", "meter",
             "unit", "unit_price", "per", "refund")
METER_COUNTS = ("lines",)
METER_MONEY = ("quantity", "amount", "billed_amount")

#: The ``source`` of refund records (services/refunds.py): their lines are rolled up apart.
REFUND_SOURCE = "refund"
#: Records of calls that passed the gateway, and refunds (which net out a gateway call): every
#: other source (``/v1/usage``, ``usage ingest`` files, the demo) was reported from elsewhere.
GATEWAY_SOURCES: Final = ("gateway", REFUND_SOURCE)

Key = tuple[Any, ...]
#: Per key: integer sums, then money sums (in the column order above).
Values = list[Any]


@dataclass(frozen=True, slots=True)
class _Shape:
    table: Table
    key: tuple[str, ...]
    counts: tuple[str, ...]
    money: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + self.counts + self.money

    def postgresql(self) -> str:
        cast = {Date: "date", Money: "numeric", String: "text", Boolean: "boolean"}
        arrays = ", ".join(f"%s::{cast.get(type(self.table.c[n].type), 'bigint')}[]"
                           for n in self.columns)
        names, keys = ", ".join(self.columns), ", ".join(self.key)
        added = ", ".join(f"{n} = {self.table.name}.{n} + excluded.{n}"
                          for n in self.counts + self.money)
        # ORDER BY: every writer locks the rows it adds to in one order, so none deadlock.
        return (f"INSERT INTO {self.table.name} ({names}) SELECT {names} FROM unnest({arrays}) "
                f"AS s({names}) ORDER BY {keys} ON CONFLICT ({keys}) DO UPDATE SET {added}")

    def sqlite_read(self, keys: int) -> str:
        row = f"({', '.join('?' for _ in self.key)})"
        return (f"SELECT {', '.join(self.columns)} FROM {self.table.name} WHERE "
                f"({', '.join(self.key)}) IN (VALUES {', '.join([row] * keys)})")

    def sqlite_write(self) -> str:
        stored = ", ".join(f"{n} = excluded.{n}" for n in self.counts + self.money)
        return (f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) VALUES "
                f"({', '.join('?' for _ in self.columns)}) ON CONFLICT ({', '.join(self.key)}) "
                f"DO UPDATE SET {stored}")


    def postgresql_upsert(self, select_sql: str) -> str:
        """Add the rows that ``select_sql`` yields (this shape's columns, in order)."""
        keys = ", ".join(self.key)
        added = ", ".join(f"{n} = {self.table.name}.{n} + excluded.{n}"
                          for n in self.counts + self.money)
        return (f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) {select_sql} "
                f"ON CONFLICT ({keys}) DO UPDATE SET {added}")


DAILY = _Shape(usage_daily, DAILY_KEY, DAILY_COUNTS, DAILY_MONEY)
MODELS = _Shape(usage_daily_models, MODEL_KEY, DAILY_COUNTS, DAILY_MONEY)
PEOPLE = _Shape(usage_daily_people, PEOPLE_KEY, PEOPLE_COUNTS, PEOPLE_MONEY)
METERS = _Shape(usage_daily_meters, METER_KEY, METER_COUNTS, METER_MONEY)
_READ_CHUNK = 300


def by_model(daily: Mapping[Key, Values]) -> dict[Key, Values]:
    """``usage_daily_models`` deltas: the daily deltas summed over users and keys."""
    out: dict[Key, Values] = {}
    counts = len(DAILY_COUNTS)
    for key, values in daily.items():
        coarse = tuple(key[i] for i in _MODEL_POSITIONS)
        found = out.get(coarse)
        if found is None:
            out[coarse] = list(values)
        else:
            out[coarse] = [a + b if i < counts else SUM_CONTEXT.add(a, b)
                           for i, (a, b) in enumerate(zip(found, values, strict=True))]
    return out


_DAILY_AT = {name: i for i, name in enumerate((*DAILY_COUNTS, *DAILY_MONEY))}


def by_person(daily: Mapping[Key, Values]) -> dict[Key, Values]:
    """``usage_daily_people`` deltas from the daily deltas (a refund is a record, not a
    call)."""
    out: dict[Key, Values] = {}
    at = _DAILY_AT
    for key, v in daily.items():
        status = key[_STATUS]
        records = v[at["calls"]]
        values = [records, 0 if status == "refunded" else records,
                  records if status == "success" else 0, v[at["input_tokens"]],
                  v[at["output_tokens"]], v[at["unpriced_calls"]], v[at["cost"]],
                  v[at["billed_cost"]]]
        coarse = tuple(key[i] for i in _PEOPLE_POSITIONS)
        found = out.get(coarse)
        out[coarse] = values if found is None else [
            a + b if i < len(PEOPLE_COUNTS) else SUM_CONTEXT.add(a, b)
            for i, (a, b) in enumerate(zip(found, values, strict=True))]
    return out


def write(conn: Connection, daily: Mapping[Key, Values], meters: Mapping[Key, Values],
          removed: bool = False) -> None:
    """Add the deltas to the stored rollups (in this transaction; ``usage_daily_models`` and
    ``usage_daily_people`` from the daily deltas). ``removed``: some deltas take records out,
    so keys may be left empty."""
    try:
        for shape, deltas in ((DAILY, daily), (MODELS, by_model(daily)),
                              (PEOPLE, by_person(daily)), (METERS, meters)):
            if not deltas:
                continue
            ordered = sorted(deltas.items())
            if conn.dialect.name == "postgresql":
                _add_postgresql(conn, shape, ordered)
            else:
                _add_sqlite(conn, shape, ordered)
            if removed:
                # A key left without calls holds nothing (its sums are all 0), and a rebuild
                # would not have it.
                table = shape.table
                conn.execute(delete(table).where(
                    table.c[shape.counts[0]] == 0,
                    tuple_(*(table.c[n] for n in shape.key)).in_([k for k, _ in ordered])))
    except (OperationalError, psycopg.Error, sqlite3.Error) as exc:
        # Like the ledger write: a lock conflict is worth retrying the whole transaction.
        cause = exc.orig if isinstance(exc, OperationalError) else exc
        retryable = isinstance(cause, psycopg.errors.DeadlockDetected
                               | psycopg.errors.SerializationFailure) or (
            isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause))
        raise StoreError(f"rollup write failed: {cause}", retryable=retryable) from exc


def _add_postgresql(conn: Connection, shape: _Shape,
                    ordered: list[tuple[Key, Values]]) -> None:
    """NUMERIC arithmetic is exact, so PostgreSQL adds (concurrent writers queue on rows)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = [list(keys) for keys in zip(*(k for k, _ in ordered), strict=True)]
    columns += [list(values) for values in zip(*(v for _, v in ordered), strict=True)]
    with raw.cursor() as cur:
        cur.execute(shape.postgresql(), columns)


def _add_sqlite(conn: Connection, shape: _Shape, ordered: list[tuple[Key, Values]]) -> None:
    """Money is TEXT on SQLite: the stored sums are read and added to in Python. The ledger
    write before this holds SQLite's one write lock, so nobody changes them in between."""
    raw = conn.connection.driver_connection
    assert raw is not None
    dates = [i for i, n in enumerate(shape.columns) if isinstance(shape.table.c[n].type, Date)]
    money = [i for i, n in enumerate(shape.columns) if isinstance(shape.table.c[n].type, Money)]
    width, first_money = len(shape.key), len(shape.key) + len(shape.counts)

    def bind(row: Sequence[Any]) -> list[Any]:
        """Dates and money as SQLAlchemy stores them on SQLite (a key, or a whole row)."""
        out = list(row)
        for i in dates:
            if i < len(out):
                out[i] = out[i].isoformat()
        for i in money:
            if i < len(out):
                out[i] = format_decimal(out[i])
        return out

    stored: dict[Key, list[Any]] = {}
    for start in range(0, len(ordered), _READ_CHUNK):
        chunk = ordered[start:start + _READ_CHUNK]
        params = [p for k, _ in chunk for p in bind(k)]
        for found in raw.execute(shape.sqlite_read(len(chunk)), params):
            row = list(found)
            for i in dates:
                row[i] = date.fromisoformat(row[i])
            for i in money:
                row[i] = Decimal(row[i])
            stored[tuple(row[:width])] = row[width:]
    rows = []
    for k, delta in ordered:
        before = stored.get(k)
        if before is not None:
            delta = [b + d if i < first_money - width else SUM_CONTEXT.add(b, d)
                     for i, (b, d) in enumerate(zip(before, delta, strict=True))]
        rows.append(bind((*k, *delta)))
    raw.executemany(shape.sqlite_write(), rows)


def _latency_buckets(column: str) -> list[str]:
    """Per bucket of LATENCY_BUCKETS, the count of latencies in it (as ``bisect_left`` places
    them in ``rollups.Sums``: a bound belongs to the bucket it closes)."""
    out, lower = [], None
    for upper in (*LATENCY_BOUNDS_MS, None):
        conditions = [f"{column} > {lower}" if lower is not None else "",
                      f"{column} <= {upper}" if upper is not None else ""]
        out.append(f"count(*) FILTER (WHERE {' AND '.join(c for c in conditions if c)})")
        lower = upper
    return out


def converted_sql(amount: str, rate: str) -> str:
    """SQL for ``money.convert_at(amount, rate)``: the exact NUMERIC product rounded half-even
    to CONVERTED_PLACES (PostgreSQL's own ``round`` takes halves away from zero, so the ledger
    and the rollups would differ on a tie)."""
    scale = 10 ** CONVERTED_PLACES
    scaled = f"(({amount}) * ({rate}) * {scale})"
    down = f"floor{scaled}"
    up = (f"{scaled} - {down} > 0.5 OR ({scaled} - {down} = 0.5 AND mod({down}, 2) <> 0)")
    # Times 10^-places, not divided by 10^places: NUMERIC division picks its own scale.
    unit = format_decimal(Decimal(1).scaleb(-CONVERTED_PLACES))
    return f"(CASE WHEN {up} THEN {down} + 1 ELSE {down} END * {unit})"


#: The columns of written records that ``staged_postgresql`` reads.
STAGED_RECORD_COLUMNS = ("request_id", "tenant_id", "rollup_day", "user_id", "key_id", "provider",
                         "model", "status", "currency", "billed_currency", *QUANTITIES, "seconds",
                         "cost", "billed_cost", "fx_rate", "estimated", "latency_ms", "source")


def staged_postgresql(records: str, lines: str) -> tuple[str, str, str, str]:
    """The four statements (to run as CTEs of the ledger's insert) that add to the rollups
    (daily, by model, by person, meters) the records just written and their charge lines,
    summed by PostgreSQL itself (exact NUMERIC).

    ``records`` names a relation of ``usage_records`` columns plus ``rollup_day`` (the record's
    day in its tenant's timezone, computed by the writer); ``lines`` one of ``charge_lines``
    columns of those records. The sums are the ones ``rollups.Sums`` makes in Python.
    """
    quantities = [f"sum({n})" for n in QUANTITIES]
    daily_key = ["tenant_id", "rollup_day", "coalesce(user_id, '')", "coalesce(key_id, '')",
                 "provider", "model", "status", "coalesce(currency, '')",
                 "coalesce(billed_currency, '')"]
    reported = ", ".join(f"'{source}'" for source in GATEWAY_SOURCES)
    daily_values = ["count(*)", *quantities, "count(*) FILTER (WHERE cost IS NULL)",
                    "count(*) FILTER (WHERE estimated)",
                    f"count(*) FILTER (WHERE source NOT IN ({reported}))", "count(latency_ms)",
                    "coalesce(sum(latency_ms), 0)", *_latency_buckets("latency_ms"),
                    "sum(seconds)", "coalesce(sum(cost), 0)", "coalesce(sum(billed_cost), 0)"]
    assert len(daily_key) + len(daily_values) == len(DAILY.columns)
    # ORDER BY the key: every writer takes the rows it adds to in one order, so none deadlock.
    positions = ", ".join(str(i) for i in range(1, len(daily_key) + 1))
    daily = DAILY.postgresql_upsert(
        f"SELECT {', '.join(daily_key + daily_values)} FROM {records} "
        f"GROUP BY {positions} ORDER BY {positions}")
    model_key = [daily_key[i] for i in _MODEL_POSITIONS]
    positions = ", ".join(str(i) for i in range(1, len(model_key) + 1))
    by_models = MODELS.postgresql_upsert(
        f"SELECT {', '.join(model_key + daily_values)} FROM {records} "
        f"GROUP BY {positions} ORDER BY {positions}")
    person_key = [daily_key[i] for i in _PEOPLE_POSITIONS]
    person_values = ["count(*)", "count(*) FILTER (WHERE status <> 'refunded')",
                     "count(*) FILTER (WHERE status = 'success')", "sum(input_tokens)",
                     "sum(output_tokens)", "count(*) FILTER (WHERE cost IS NULL)",
                     "coalesce(sum(cost), 0)", "coalesce(sum(billed_cost), 0)"]
    assert len(person_key) + len(person_values) == len(PEOPLE.columns)
    positions = ", ".join(str(i) for i in range(1, len(person_key) + 1))
    by_people = PEOPLE.postgresql_upsert(
        f"SELECT {', '.join(person_key + person_values)} FROM {records} "
        f"GROUP BY {positions} ORDER BY {positions}")
    meter_key = ["r.tenant_id", "r.rollup_day", "coalesce(r.user_id, '')", "r.model",
                 "coalesce(r.currency, '')", "coalesce(r.billed_currency, '')", "l.meter",
                 "l.unit", "l.unit_price", "l.per", f"r.source = '{REFUND_SOURCE}'"]
    billed = ("CASE WHEN coalesce(r.billed_currency, '') = coalesce(r.currency, '') THEN l.amount"
              " WHEN r.billed_currency IS NOT NULL AND r.fx_rate IS NOT NULL"
              f" THEN {converted_sql('l.amount', 'r.fx_rate')} ELSE 0 END")
    meter_values = ["count(*)", "sum(l.quantity)", "sum(l.amount)", f"sum({billed})"]
    assert len(meter_key) + len(meter_values) == len(METERS.columns)
    positions = ", ".join(str(i) for i in range(1, len(meter_key) + 1))
    meters = METERS.postgresql_upsert(
        f"SELECT {', '.join(meter_key + meter_values)} FROM {lines} l "
        f"JOIN {records} r USING (request_id) GROUP BY {positions} ORDER BY {positions}")
    return daily, by_models, by_people, meters
