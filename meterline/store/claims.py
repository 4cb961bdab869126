"""Idempotency-Key claims: which call holds a tenant's key (``gateway/idempotency.py``).

A claim is taken in one transaction with the ledger lookup, by an insert that the primary key
(tenant, key) lets only one writer make, so of two processes receiving the same key at once
exactly one calls the provider. A claim whose call failed is deleted (the client may retry with
the key); one whose call succeeded stays until it expires, by which time the call's record is in
the ledger and answers for the key from then on. The claims of a process that died expire too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select, union_all, update

from meterline.store.schema import idempotency_claims, usage_records, usage_records_archive
from meterline.store.upsert import insert_ignore


def recorded(conn: Connection, tenant_id: str, key: str) -> str | None:
    """The request id of the ledger record (hot or archived) under this key, if any."""
    found = union_all(*(select(t.c.request_id).where(t.c.tenant_id == tenant_id,
                                                     t.c.event_id == key)
                        for t in (usage_records, usage_records_archive)))
    row = conn.execute(found.limit(1)).first()
    return row.request_id if row is not None else None


def claim(conn: Connection, tenant_id: str, key: str, request_id: str, now: datetime,
          expires_at: datetime) -> str | None:
    """Take the key for ``request_id`` (None), or return the request that has it: the ledger's
    record under the key, or an unexpired claim of another call."""
    holder = recorded(conn, tenant_id, key)
    if holder is not None:
        return holder
    c = idempotency_claims.c
    mine = (c.tenant_id == tenant_id) & (c.key == key)
    values = {"tenant_id": tenant_id, "key": key, "request_id": request_id,
              "expires_at": expires_at}
    for _ in range(CLAIM_ATTEMPTS):
        # RETURNING says whether a row was written (psycopg's rowcount may be -1 here).
        if conn.execute(insert_ignore(conn, idempotency_claims, ["tenant_id", "key"])
                        .values(values).returning(c.request_id)).first() is not None:
            return None
        if conn.execute(update(idempotency_claims).where(mine, c.expires_at < now)
                        .values(request_id=request_id, expires_at=expires_at)
                        .returning(c.request_id)).first() is not None:
            return None  # its holder's process died
        found = conn.execute(select(c.request_id).where(mine)).first()
        if found is not None:
            return str(found.request_id)
        # Given back between the insert and the read: try again.
    return "another call in flight"


CLAIM_ATTEMPTS = 3


def release(conn: Connection, tenant_id: str, key: str, request_id: str) -> None:
    """Give the key back (the call failed), unless another call has taken it since."""
    c = idempotency_claims.c
    conn.execute(delete(idempotency_claims).where(
        c.tenant_id == tenant_id, c.key == key, c.request_id == request_id))


def release_calls(conn: Connection, request_ids: Sequence[str]) -> None:
    """Give back the keys held by these calls (recorded as interrupted: they will not end)."""
    if request_ids:
        conn.execute(delete(idempotency_claims).where(
            idempotency_claims.c.request_id.in_(list(request_ids))))


def delete_expired(conn: Connection, now: datetime) -> None:
    conn.execute(delete(idempotency_claims).where(idempotency_claims.c.expires_at < now))
