"""The archive: usage records older than a cutoff, moved out of the hot tables.

``archive`` moves the records whose ``occurred_at`` is before the cutoff, and their charge
lines, from ``usage_records`` / ``charge_lines`` to ``usage_records_archive`` /
``charge_lines_archive`` in batches: each batch is one transaction (copy, then delete, checked
to match), so a crash mid-way loses nothing and duplicates nothing, and running it again
resumes. The cutoff is a month boundary in UTC (a cycle ``YYYY-MM`` stands for its first
instant, the same for every tenant); the current and the previous month always stay hot.

What archiving never changes:

* the daily rollups (``usage_daily``, ``usage_daily_meters``) — statistics and bills read them,
  so they stay identical; ``rollups.rebuild`` reads both tables;
* which records exist: reads that list records take ``archived=True`` to see the archive too;
* records not yet complete: ``unpriced`` and ``fx_missing`` records stay hot for ``rerate``
  (they are moved by a later archive, once completed). So every archived record is immutable.

Idempotency across the archive (SPEC §7.2): the archive raises the horizon (``archive_state``)
in its own transaction before moving anything, and every ledger writer checks it first
(:mod:`meterline.store.horizon`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Subquery,
    and_,
    case,
    delete,
    func,
    insert,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from meterline.errors import InvalidInput, StoreError
from meterline.store.horizon import horizon
from meterline.store.schema import (
    archive_state,
    charge_lines,
    charge_lines_archive,
    usage_records,
    usage_records_archive,
)

#: Records moved per transaction.
BATCH = 5000
#: Serialises archive runs on PostgreSQL (pg_advisory_xact_lock); any constant will do.
_LOCK_KEY = 0x6D6C6172  # "mlar"
_CYCLE = re.compile(r"^(\d{4})-(\d{2})$")
_RECORD_COLUMNS = [c.name for c in usage_records.columns]
_LINE_COLUMNS = [c.name for c in charge_lines.columns]


# -- the cutoff -------------------------------------------------------------------------------

def _month_start(year: int, month: int) -> datetime:
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


def older_than(months: int, now: datetime | None = None) -> datetime:
    """The cutoff of ``--older-than N``: the first instant of (this UTC month − N)."""
    if months < 1:
        raise InvalidInput("older_than: must be at least 1 month (the current and the previous "
                           "month stay in the hot table)", field="older_than")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return _month_start(now.year, now.month - months)


def cutoff_of(before: datetime | str, now: datetime | None = None) -> datetime:
    """The cutoff for ``before``: a cycle ``YYYY-MM`` or an aware datetime at a UTC month start;
    refused when it is later than the start of the previous month."""
    if isinstance(before, str):
        found = _CYCLE.match(before.strip())
        if found is None or not 1 <= int(found[2]) <= 12:
            raise InvalidInput(f"before: {before!r} is not a cycle YYYY-MM", field="before")
        cutoff = _month_start(int(found[1]), int(found[2]))
    else:
        if before.tzinfo is None:
            raise InvalidInput("before: needs a timezone", field="before")
        cutoff = before.astimezone(UTC)
        if cutoff != _month_start(cutoff.year, cutoff.month):
            raise InvalidInput(f"before: {before.isoformat()} is not the start of a UTC month",
                               field="before")
    latest = older_than(1, now)
    if cutoff > latest:
        raise InvalidInput(f"before: {cutoff:%Y-%m} is too recent; the current and the previous "
                           f"month stay in the hot table (the latest is {latest:%Y-%m})",
                           field="before")
    return cutoff


# -- reading hot and archived records together ------------------------------------------------

def all_records(*names: str) -> Subquery:
    """Hot and archived usage records (``names``: only these columns), as one subquery."""
    wanted = names or tuple(_RECORD_COLUMNS)
    return union_all(select(*(usage_records.c[n] for n in wanted)),
                     select(*(usage_records_archive.c[n] for n in wanted))
                     ).subquery("all_usage_records")


def all_lines() -> Subquery:
    """Hot and archived charge lines, as one subquery."""
    return union_all(select(charge_lines), select(charge_lines_archive)
                     ).subquery("all_charge_lines")


# -- moving ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Counts:
    cutoff: datetime
    #: records and charge lines moved (with ``dry_run``: that would move)
    records: int
    lines: int
    #: records before the cutoff left hot: unpriced or not converted (run ``rerate``)
    kept: int
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"before": f"{self.cutoff:%Y-%m}", "cutoff": self.cutoff.isoformat(),
                "records": self.records, "lines": self.lines, "kept_incomplete": self.kept,
                "dry_run": self.dry_run}


def _movable(cutoff: datetime) -> list[ColumnElement[bool]]:
    c = usage_records.c
    return [c.occurred_at < cutoff, c.pricing == "priced", c.fx_missing.is_(False)]


def pending(conn: Connection, cutoff: datetime) -> Counts:
    """What archiving before ``cutoff`` would move now (nothing is changed)."""
    c = usage_records.c
    movable = _movable(cutoff)
    counted = conn.execute(select(
        func.count(case((and_(*movable[1:]), 1))).label("records"),
        func.count().label("all")).where(movable[0])).one()
    lines = conn.execute(select(func.count()).select_from(charge_lines).where(
        charge_lines.c.request_id.in_(select(c.request_id).where(*movable)))).scalar_one()
    return Counts(cutoff, int(counted.records), int(lines), int(counted.all - counted.records),
                  dry_run=True)


def _serialise(conn: Connection) -> None:
    """One archive batch at a time (two runs must not copy the same records)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    else:
        horizon(conn, lock=True)


def raise_horizon(conn: Connection, cutoff: datetime, now: datetime | None = None) -> datetime:
    """Move the horizon up to ``cutoff`` (never down); returns the horizon. Commit this before
    moving records, so writers see it first."""
    s = archive_state.c
    stamp = now or datetime.now(UTC)
    if conn.execute(select(s.id).where(s.id == 1)).first() is None:
        conn.execute(insert(archive_state).values(id=1, cutoff=None, updated_at=stamp))
    conn.execute(update(archive_state).where(s.id == 1, (s.cutoff.is_(None)) | (s.cutoff < cutoff))
                 .values(cutoff=cutoff, updated_at=stamp))
    found = horizon(conn)
    assert found is not None
    return found


def move_batch(conn: Connection, cutoff: datetime, after: str = "",
               size: int = BATCH) -> tuple[int, int, str]:
    """Move up to ``size`` records before ``cutoff`` (request id > ``after``) and their lines,
    in the caller's transaction: (records, lines, last request id moved)."""
    _serialise(conn)
    c, lc = usage_records.c, charge_lines.c
    ids = list(conn.execute(select(c.request_id).where(c.request_id > after, *_movable(cutoff))
                            .order_by(c.request_id).limit(size)).scalars())
    if not ids:
        return 0, 0, after
    try:
        # RETURNING counts what went in (psycopg reports no rowcount for INSERT … SELECT).
        copied = len(conn.execute(insert(usage_records_archive).from_select(
            _RECORD_COLUMNS, select(usage_records).where(c.request_id.in_(ids)))
            .returning(usage_records_archive.c.request_id)).all())
        lines = len(conn.execute(insert(charge_lines_archive).from_select(
            _LINE_COLUMNS, select(charge_lines).where(lc.request_id.in_(ids)))
            .returning(charge_lines_archive.c.line_no)).all())
    except IntegrityError as exc:
        raise StoreError(f"archive: a record of this batch is already archived ({exc.orig}); "
                         "nothing of the batch was moved") from exc
    dropped = conn.execute(delete(charge_lines).where(lc.request_id.in_(ids))).rowcount
    deleted = conn.execute(delete(usage_records).where(c.request_id.in_(ids),
                                                       *_movable(cutoff))).rowcount
    if not copied == deleted == len(ids) or lines != dropped:
        raise StoreError("archive: records changed while being moved; the batch was rolled "
                         "back, run the archive again", retryable=True)
    return len(ids), lines, ids[-1]


def archive(target: Engine | Connection, before: datetime | str,
            progress: Callable[[int], None] | None = None, *, dry_run: bool = False,
            now: datetime | None = None, batch: int = BATCH) -> Counts:
    """Archive the records before ``before`` (a cycle ``YYYY-MM`` or a UTC month start).

    Given an engine (or a connection outside a transaction), every batch commits on its own;
    given a connection inside a transaction, everything happens in it. ``progress`` gets the
    records of each batch moved.
    """
    cutoff = cutoff_of(before, now)
    if isinstance(target, Engine):
        with target.connect() as conn:
            return _archive(conn, cutoff, progress, dry_run, now, batch)
    return _archive(target, cutoff, progress, dry_run, now, batch)


def _archive(conn: Connection, cutoff: datetime, progress: Callable[[int], None] | None,
             dry_run: bool, now: datetime | None, batch: int) -> Counts:
    own = not conn.in_transaction()

    def transaction() -> AbstractContextManager[Any]:
        return conn.begin() if own else nullcontext()

    if dry_run:
        with transaction():
            return pending(conn, cutoff)
    with transaction():
        raise_horizon(conn, cutoff, now)
    records = lines = 0
    after = ""
    while True:
        with transaction():
            moved, moved_lines, after = move_batch(conn, cutoff, after, batch)
        if not moved:
            break
        records += moved
        lines += moved_lines
        if progress is not None:
            progress(moved)
    with transaction():
        if records and conn.dialect.name == "postgresql":
            # Fresh statistics, so the writers' duplicate check is planned on the index at once.
            conn.execute(text("ANALYZE usage_records_archive, charge_lines_archive"))
        kept = pending(conn, cutoff).kept
    return Counts(cutoff, records, lines, kept)
