"""Gateway calls in flight (table ``calls_started``): a call journaled as started and not yet
recorded. The row carries the record the call gets should its process die first; see
gateway/inflight.py for the whole story."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from meterline.store.schema import calls_started, usage_records, usage_records_archive


def recorded(conn: Connection, request_ids: Collection[str]) -> set[str]:
    """Those of ``request_ids`` that have a ledger record (archived ones included)."""
    if not request_ids:
        return set()
    wanted = list(request_ids)
    found = set(conn.scalars(select(usage_records.c.request_id)
                             .where(usage_records.c.request_id.in_(wanted))))
    found.update(conn.scalars(select(usage_records_archive.c.request_id)
                              .where(usage_records_archive.c.request_id.in_(wanted))))
    return found


def note_started(conn: Connection, started: Sequence[Mapping[str, Any]],
                 started_at: Sequence[datetime]) -> None:
    """Keep the started calls that have no record yet (a journal replay may bring a call's
    start after its record, or twice)."""
    if not started:
        return
    ids = [item["request_id"] for item in started]
    known = recorded(conn, ids) | set(conn.scalars(
        select(calls_started.c.request_id).where(calls_started.c.request_id.in_(ids))))
    rows = [{"request_id": item["request_id"], "writer": item["writer"],
             "tenant_id": item["tenant_id"], "started_at": at, "record": item["record"]}
            for item, at in zip(started, started_at, strict=True)
            if item["request_id"] not in known]
    if rows:
        conn.execute(calls_started.insert(), rows)


def finished(conn: Connection, request_ids: Sequence[str]) -> None:
    """The calls were recorded: they are no longer in flight."""
    if request_ids:
        conn.execute(delete(calls_started).where(
            calls_started.c.request_id.in_(list(request_ids))))


def of_writer(conn: Connection, writer: str) -> list[tuple[str, dict[str, Any]]]:
    """(request id, interrupted record) of each call ``writer`` started and never recorded."""
    rows = conn.execute(select(calls_started.c.request_id, calls_started.c.record)
                        .where(calls_started.c.writer == writer)
                        .order_by(calls_started.c.started_at))
    return [(row.request_id, row.record) for row in rows]


def forget_writer(conn: Connection, writer: str) -> None:
    conn.execute(delete(calls_started).where(calls_started.c.writer == writer))
