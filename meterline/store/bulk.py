"""Fast, idempotent bulk writes of usage records and charge lines.

Ingestion must reach tens of thousands of events per second, which SQLAlchemy's statement
machinery cannot, so this module talks to the driver directly, with values converted by the
columns' own SQLAlchemy bind processors (money stays exact, times UTC):

* PostgreSQL: rows are COPYed into session-local staging tables, then one statement moves them:
  ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` for records, the charge lines of
  exactly the records that went in, and the daily rollups of those (summed by PostgreSQL:
  ``rollup_writes.staged_postgresql``).
* SQLite: ``INSERT … VALUES (…), (…) … ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING``
  for records, as many rows per statement as SQLite takes parameters; the request ids returned
  are the records that went in, and charge lines follow for those.

Either way the database's unique (tenant, event id) constraint decides what is a duplicate, so
concurrent writers of the same events can never charge twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Connection, Table

from meterline.errors import StoreError
from meterline.store.rollup_writes import STAGED_RECORD_COLUMNS, staged_postgresql
from meterline.store.schema import charge_lines, usage_records
from meterline.store.types import Json

RECORD_COLUMNS = [c.name for c in usage_records.columns]
LINE_COLUMNS = [c.name for c in charge_lines.columns]

_processors: dict[tuple[str, str], list[Callable[[Any], Any] | None]] = {}


def _converters(conn: Connection, table: Table, names: list[str]) -> list[Callable[[Any], Any]
                                                                         | None]:
    """Per column, the function that turns a Python value into what the driver takes.

    psycopg's COPY takes Decimal, aware datetimes, ints and bools as they are, so on PostgreSQL
    only JSON columns need converting; SQLite gets every column's own bind processor.
    """
    key = (conn.dialect.name, table.name)
    found = _processors.get(key)
    if found is None:
        found = []
        for name in names:
            column_type = table.c[name].type
            if conn.dialect.name == "postgresql" and not isinstance(column_type, Json):
                found.append(None)
            else:
                # the dialect's own impl: Money is TEXT on SQLite, not the class-level Numeric
                # (whose processor would turn Decimal into float)
                found.append(column_type.dialect_impl(conn.dialect).bind_processor(conn.dialect))
        _processors[key] = found
    return found


def _tuples(conn: Connection, table: Table, names: list[str], rows: Sequence[dict[str, Any]],
            last: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows' values in ``names`` order, converted for the driver (``last[i]``: one more
    value at the end of row i)."""
    getter = itemgetter(*names)
    if last is None:
        return _converted(conn, table, names, [getter(row) for row in rows])
    return _converted(conn, table, names,
                      [(*getter(row), extra) for row, extra in zip(rows, last, strict=True)])


def _converted(conn: Connection, table: Table, names: list[str],
               rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of values in ``names`` order (and maybe more after them), converted for the
    driver."""
    pairs = [(i, f) for i, f in enumerate(_converters(conn, table, names)) if f is not None]
    if not pairs:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for index, convert in pairs:
            if values[index] is not None:
                values[index] = convert(values[index])
        out.append(tuple(values))
    return out


def keeps_rollups(conn: Connection) -> bool:
    """Whether ``write`` adds to the daily rollups itself (on PostgreSQL); otherwise the
    caller does (``rollups.apply_records``)."""
    return conn.dialect.name == "postgresql"


def write(conn: Connection, records: Sequence[dict[str, Any]],
          lines: list[tuple[Any, ...]], days: Sequence[date]) -> set[str]:
    """Insert new records and the lines of those inserted; returns inserted event ids.

    ``lines`` are tuples of ``charge_lines`` values in column order, each carrying the
    ``request_id`` of its record; ``days[i]`` is the day of
    ``records[i]`` in its tenant's timezone (for the rollups, where ``keeps_rollups``).
    """
    if not records:
        return set()
    if not conn.in_transaction():
        # The driver is used directly: without SQLAlchemy's transaction nothing would commit it.
        raise RuntimeError("bulk.write needs a transaction (conn.begin())")
    postgresql = conn.dialect.name == "postgresql"
    if postgresql and len(days) != len(records):
        raise ValueError("write: one day per record")
    record_rows = _tuples(conn, usage_records, RECORD_COLUMNS, records,
                          days if postgresql else None)
    line_rows = _converted(conn, charge_lines, LINE_COLUMNS, lines)
    # The driver is used directly here, so its errors are translated here too.
    try:
        if postgresql:
            return _write_postgresql(conn, record_rows, line_rows)
        return _write_sqlite(conn, records, record_rows, line_rows)
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
        raise StoreError(f"ledger write conflicted with another writer: {exc}",
                         retryable=True) from exc
    except sqlite3.OperationalError as exc:
        raise StoreError(f"ledger write failed: {exc}",
                         retryable="locked" in str(exc)) from exc
    except (psycopg.Error, sqlite3.Error) as exc:
        raise StoreError(f"ledger write failed: {exc}") from exc


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_usage_records
  (LIKE usage_records INCLUDING DEFAULTS, rollup_day date) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_charge_lines
  (LIKE charge_lines INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""

_DAILY, _MODELS, _PEOPLE, _METERS = staged_postgresql("new_records", "moved")
_MOVE = f"""
WITH inserted AS (
  INSERT INTO usage_records ({", ".join(RECORD_COLUMNS)})
  SELECT {", ".join(RECORD_COLUMNS)} FROM stage_usage_records
  ORDER BY tenant_id, event_id
  ON CONFLICT (tenant_id, event_id) DO NOTHING
  RETURNING request_id, event_id
), moved AS (
  INSERT INTO charge_lines ({", ".join(LINE_COLUMNS)})
  SELECT {", ".join("s." + c for c in LINE_COLUMNS)}
  FROM stage_charge_lines s JOIN inserted USING (request_id)
  RETURNING {", ".join(LINE_COLUMNS)}
), new_records AS (
  SELECT {", ".join("s." + c for c in STAGED_RECORD_COLUMNS)}
  FROM stage_usage_records s JOIN inserted USING (request_id)
), daily AS ({_DAILY}
), models AS ({_MODELS}
), people AS ({_PEOPLE}
), meters AS ({_METERS}
)
SELECT event_id FROM inserted
"""


def _write_postgresql(conn: Connection, records: list[tuple[Any, ...]],
                      lines: list[tuple[Any, ...]]) -> set[str]:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(_STAGE)  # both statements in one round trip (no parameters)
        with cur.copy(f"COPY stage_usage_records ({', '.join(RECORD_COLUMNS)}, rollup_day) "
                      "FROM STDIN") as copy:
            for row in records:
                copy.write_row(row)
        if lines:
            with cur.copy(f"COPY stage_charge_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN"
                          ) as copy:
                for row in lines:
                    copy.write_row(row)
        cur.execute(_MOVE)
        return {row[0] for row in cur.fetchall()}


def _write_sqlite(conn: Connection, records: Sequence[dict[str, Any]],
                  record_rows: list[tuple[Any, ...]], lines: list[tuple[Any, ...]]) -> set[str]:
    raw = conn.connection.driver_connection
    assert raw is not None
    # Only a clash on (tenant, event id) is a duplicate (OR IGNORE would also swallow NOT NULL
    # and request-id clashes). RETURNING says exactly which rows went in: a batch delivered again
    # by the journal carries request ids that are already stored. As many rows per statement as
    # SQLite takes parameters: one statement per row cost more than the inserts themselves.
    per_statement = max(1, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                        // len(RECORD_COLUMNS))
    ours = {r["request_id"]: r["event_id"] for r in records}
    inserted_ids: set[str] = set()
    for start in range(0, len(record_rows), per_statement):
        part = record_rows[start:start + per_statement]
        found = raw.execute(_sqlite_insert(len(part)), [v for row in part for v in row])
        inserted_ids.update(request_id for (request_id,) in found)
    request_index = LINE_COLUMNS.index("request_id")
    new_lines = [row for row in lines if row[request_index] in inserted_ids]
    if new_lines:
        raw.executemany(f"INSERT INTO charge_lines ({', '.join(LINE_COLUMNS)}) VALUES "
                        f"({', '.join('?' for _ in LINE_COLUMNS)})", new_lines)
    return {ours[request_id] for request_id in inserted_ids}


@lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    marks = f"({', '.join('?' for _ in RECORD_COLUMNS)})"
    return (f"INSERT INTO usage_records ({', '.join(RECORD_COLUMNS)}) VALUES "
            f"{', '.join([marks] * rows)} ON CONFLICT (tenant_id, event_id) DO NOTHING "
            "RETURNING request_id")
