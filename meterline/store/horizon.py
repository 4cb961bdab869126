"""The archive's horizon, and the check every ledger writer makes against it.

Idempotency across the archive (SPEC §7.2): ``archive_state`` holds the archive's cutoff (the
horizon; store/archive.py moves the records before it). Every ledger writer calls :func:`guard`
in its transaction before writing: an event older than the horizon is a duplicate when its
(tenant, event id) is stored — archived or still hot — and is refused otherwise; any event whose
id is in the archive is a duplicate. The guard's read locks the state row (PostgreSQL: ``FOR
SHARE``; SQLite: a no-op write takes the one write lock), and the archive raises the horizon, in
its own transaction, before moving anything, so no writer can slip an old event past a move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, String, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from meterline.store.schema import archive_state, usage_records, usage_records_archive


def horizon(conn: Connection, *, lock: bool = False) -> datetime | None:
    """The archive's cutoff (None before the first archive). ``lock``: hold it against a
    concurrent archive until this transaction ends (for ledger writers)."""
    s = archive_state.c
    if lock and conn.dialect.name == "sqlite":
        # pysqlite begins a transaction only at a write; this one takes the write lock first.
        return conn.execute(update(archive_state).where(s.id == 1).values(cutoff=s.cutoff)
                            .returning(s.cutoff)).scalar_one_or_none()
    query = select(s.cutoff).where(s.id == 1)
    if lock:
        query = query.with_for_update(read=True)
    return conn.execute(query).scalar_one_or_none()


def refusal(cutoff: datetime) -> str:
    return (f"timestamp: older than the archived period (before {cutoff.isoformat()}); "
            "the ledger takes no new events from it")


# -- the writers' guard -----------------------------------------------------------------------

class HasRow(Protocol):
    @property
    def row(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=HasRow)


@dataclass(frozen=True, slots=True)
class Known:
    """A stored record an incoming event duplicates (hot or archived)."""

    request_id: str
    cost: Decimal | None
    currency: str | None
    status: str
    pricing: str


@dataclass(slots=True)
class Guarded(Generic[R]):
    cutoff: datetime | None
    fresh: list[R] = field(default_factory=list)
    #: (tenant, event id) → the stored record it duplicates
    known: dict[tuple[str, str], Known] = field(default_factory=dict)
    refused: list[R] = field(default_factory=list)


def _find(conn: Connection, table: Table, tenant_id: str,
          event_ids: Sequence[str]) -> dict[tuple[str, str], Known]:
    c = table.c
    if conn.dialect.name == "postgresql":
        # One array parameter: planned and bound faster than a thousand IN parameters.
        wanted = c.event_id == any_(bindparam("ids", list(event_ids), type_=ARRAY(String)))
    else:
        wanted = c.event_id.in_(list(event_ids))
    rows = conn.execute(select(c.event_id, c.request_id, c.cost, c.currency, c.status,
                               c.pricing).where(c.tenant_id == tenant_id, wanted))
    return {(tenant_id, r.event_id): Known(r.request_id, r.cost, r.currency, r.status,
                                           r.pricing) for r in rows}


def guard(conn: Connection, records: Sequence[R]) -> Guarded[R]:
    """Split records about to be written (call in the writing transaction, first): ``fresh``
    go to the ledger, ``known`` are duplicates of archived (or old hot) records, ``refused``
    are older than the horizon and not stored anywhere."""
    cutoff = horizon(conn, lock=True)
    if cutoff is None or not records:
        return Guarded(cutoff, list(records))
    out: Guarded[R] = Guarded(cutoff)
    by_tenant: dict[str, list[str]] = {}
    old: dict[str, list[str]] = {}
    for record in records:
        row = record.row
        by_tenant.setdefault(row["tenant_id"], []).append(row["event_id"])
        if row["occurred_at"] < cutoff:
            old.setdefault(row["tenant_id"], []).append(row["event_id"])
    for tenant_id, event_ids in by_tenant.items():
        out.known.update(_find(conn, usage_records_archive, tenant_id, event_ids))
        # Old records may still be hot: unpriced ones, or an archive that was interrupted.
        left = [e for e in old.get(tenant_id, ()) if (tenant_id, e) not in out.known]
        if left:
            out.known.update(_find(conn, usage_records, tenant_id, left))
    for record in records:
        row = record.row
        if (row["tenant_id"], row["event_id"]) in out.known:
            continue
        (out.refused if row["occurred_at"] < cutoff else out.fresh).append(record)
    return out
