"""Batch files and batches created through the gateway (tables ``batch_files`` and
``batches``): whose each one is, what a batch's results are billed as, and the claim that lets
one poller at a time bill them (gateway/batches.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from meterline.store.schema import batch_files, batches
from meterline.store.upsert import insert_ignore


@dataclass(frozen=True, slots=True)
class StoredFile:
    file_id: str
    tenant_id: str
    key_id: str
    user_id: str | None
    provider: str
    purpose: str
    created_at: datetime
    #: custom_id -> the line's model, requested name, endpoint and cost bounds; None for a
    #: file the provider made (a batch's output or errors).
    lines: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredBatch:
    batch_id: str
    api: str
    tenant_id: str
    key_id: str
    user_id: str | None
    provider: str
    input_file_id: str | None
    created_at: datetime
    pending: Mapping[str, Any]
    billed_at: datetime | None = None
    billed_lines: int | None = None


def remember_file(conn: Connection, file: StoredFile) -> None:
    """Keep a file; one already known keeps its first owner (the provider's ids are unique,
    and a retried write must not hand a file to another tenant)."""
    conn.execute(insert_ignore(conn, batch_files, ["file_id"]).values(
        file_id=file.file_id, tenant_id=file.tenant_id, key_id=file.key_id,
        user_id=file.user_id, provider=file.provider, purpose=file.purpose,
        created_at=file.created_at,
        lines=dict(file.lines) if file.lines is not None else None))


def find_file(conn: Connection, file_id: str) -> StoredFile | None:
    row = conn.execute(select(batch_files).where(batch_files.c.file_id == file_id)).first()
    if row is None:
        return None
    return StoredFile(row.file_id, row.tenant_id, row.key_id, row.user_id, row.provider,
                      row.purpose, row.created_at, row.lines)


def remember_batch(conn: Connection, batch: StoredBatch) -> None:
    """Keep a batch; one already known is left as it is (its bill may be under way)."""
    conn.execute(insert_ignore(conn, batches, ["batch_id"]).values(
        batch_id=batch.batch_id, api=batch.api, tenant_id=batch.tenant_id,
        key_id=batch.key_id, user_id=batch.user_id, provider=batch.provider,
        input_file_id=batch.input_file_id, created_at=batch.created_at,
        pending=dict(batch.pending)))


def _batch(row: Any) -> StoredBatch:
    return StoredBatch(row.batch_id, row.api, row.tenant_id, row.key_id, row.user_id,
                       row.provider, row.input_file_id, row.created_at, row.pending,
                       row.billed_at, row.billed_lines)


def find_batch(conn: Connection, batch_id: str) -> StoredBatch | None:
    row = conn.execute(select(batches).where(batches.c.batch_id == batch_id)).first()
    return None if row is None else _batch(row)


def list_batches(conn: Connection, tenant_id: str, api: str, user_id: str | None, *,
                 after: str | None = None, before: str | None = None, limit: int = 20
                 ) -> tuple[list[StoredBatch], bool]:
    """A tenant's batches of one API, newest first, from after ``after`` (older than it) or
    up to ``before`` (newer than it); and whether more follow. ``user_id``: only that user's
    (a key bound to a user sees its own)."""
    query = select(batches).where(batches.c.tenant_id == tenant_id, batches.c.api == api)
    if user_id is not None:
        query = query.where(batches.c.user_id == user_id)
    order = (batches.c.created_at.desc(), batches.c.batch_id.desc())
    cursor = find_batch(conn, after or before or "") if (after or before) else None
    if cursor is not None:
        at, key = cursor.created_at, cursor.batch_id
        if after:
            query = query.where(or_(batches.c.created_at < at,
                                    and_(batches.c.created_at == at, batches.c.batch_id < key)))
        else:
            query = query.where(or_(batches.c.created_at > at,
                                    and_(batches.c.created_at == at, batches.c.batch_id > key)))
            order = (batches.c.created_at.asc(), batches.c.batch_id.asc())
    rows = [_batch(row) for row in conn.execute(query.order_by(*order).limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    if before and cursor is not None:
        rows.reverse()
    return rows, more


def claim_billing(conn: Connection, batch_id: str, now: datetime, until: datetime) -> bool:
    """Take the bill of a batch until ``until``: True for exactly one caller at a time, in
    whichever process, however many poll at once; a claim whose holder died runs out."""
    claimed = conn.execute(update(batches).where(
        batches.c.batch_id == batch_id, batches.c.billed_at.is_(None),
        or_(batches.c.claimed_until.is_(None), batches.c.claimed_until < now))
        .values(claimed_until=until))
    return claimed.rowcount == 1


def release_claim(conn: Connection, batch_id: str) -> None:
    """The claim's holder could not bill (the provider did not give the results): the next
    poll tries again."""
    conn.execute(update(batches).where(batches.c.batch_id == batch_id,
                                       batches.c.billed_at.is_(None))
                 .values(claimed_until=None))


def mark_billed(conn: Connection, batch_id: str, now: datetime, lines: int) -> None:
    conn.execute(update(batches).where(batches.c.batch_id == batch_id)
                 .values(billed_at=now, billed_lines=lines, claimed_until=None))
