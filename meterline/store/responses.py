"""Responses API objects created through the gateway (table ``upstream_responses``): whose
each one is, and the call a background response still has to bill (gateway/responses.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from meterline.store.schema import upstream_responses


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response_id: str
    tenant_id: str
    key_id: str
    user_id: str | None
    provider: str
    request_id: str
    created_at: datetime
    #: The call to bill when the response completes; None once billed, or when nothing was
    #: left to bill (its creating call was billed whole).
    pending: Mapping[str, Any] | None
    billed_at: datetime | None


def remember(conn: Connection, response: StoredResponse) -> None:
    """Keep a response the gateway created; one already known is left as it is (a retried
    write must not make a billed response pending again)."""
    if conn.execute(select(upstream_responses.c.response_id).where(
            upstream_responses.c.response_id == response.response_id)).first() is not None:
        return
    conn.execute(upstream_responses.insert().values(
        response_id=response.response_id, tenant_id=response.tenant_id,
        key_id=response.key_id, user_id=response.user_id, provider=response.provider,
        request_id=response.request_id, created_at=response.created_at,
        pending=dict(response.pending) if response.pending is not None else None,
        billed_at=response.billed_at))


def find(conn: Connection, response_id: str) -> StoredResponse | None:
    row = conn.execute(select(upstream_responses).where(
        upstream_responses.c.response_id == response_id)).first()
    if row is None:
        return None
    return StoredResponse(row.response_id, row.tenant_id, row.key_id, row.user_id, row.provider,
                          row.request_id, row.created_at, row.pending, row.billed_at)


def claim_billing(conn: Connection, response_id: str, now: datetime) -> bool:
    """Take the pending bill of a response: True for exactly one caller, in whichever
    process, however many poll at once."""
    claimed = conn.execute(update(upstream_responses).where(
        upstream_responses.c.response_id == response_id,
        upstream_responses.c.billed_at.is_(None),
        upstream_responses.c.pending.is_not(None)).values(billed_at=now))
    return claimed.rowcount == 1
