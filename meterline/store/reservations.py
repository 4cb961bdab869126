"""Admission's one transaction: hold a call's budgets and quotas, all or nothing.

On SQLite this runs the statements of :mod:`meterline.store.budgets` and
:mod:`meterline.store.quotas` one after the other (in-process, each costs microseconds). On
PostgreSQL every statement is a network round trip, and a reservation sits on the response path
of every limited call, so the same statements are sent in psycopg's pipeline mode: the row locks
and the grants in one round trip, the decision in Python (the same functions), the writes and the
commit in a second — so the rows stay locked for about one round trip. A call needing a new
cycle's plan allowance takes the plain path once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, select

from meterline.store import budgets, quotas
from meterline.store.budgets import Counter, Hold, Refusal
from meterline.store.quotas import Shortage
from meterline.store.schema import budget_holds, quota_holds

#: Lease ids start with it (gateway/leases.py); per-call holds carry request ids ("req_…").
LEASE_PREFIX = "lease_"


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    tenant_id: str
    user_id: str | None
    at: datetime
    timezone: str
    expires_at: datetime


def give_back(conn: Connection, budget_parts: Sequence[budgets.Part],
              quota_parts: Sequence[quotas.Part], closed: Sequence[str]) -> None:
    """Leases ending (gateway/leases.py): unused parts off their hold rows, and the holds of
    ``closed`` leases released whole. Call inside a transaction."""
    budgets.shrink(conn, budget_parts)
    quotas.shrink(conn, quota_parts)
    budgets.release(conn, closed)
    quotas.release(conn, closed)


def leased_elsewhere(conn: Connection, budget_ids: Sequence[str], tenant_id: str,
                     quota_types: Sequence[str], own_prefix: str) -> bool:
    """Whether another process holds a lease on any of these budgets or quota types (its unused
    part comes back within the lease time)."""
    others, mine = (text.replace("_", "\\_") + "%" for text in (LEASE_PREFIX, own_prefix))
    b, q = budget_holds.c, quota_holds.c
    queries = []
    if budget_ids:
        queries.append(select(b.request_id).where(
            b.budget_id.in_(list(budget_ids)), b.request_id.like(others, escape="\\"),
            ~b.request_id.like(mine, escape="\\")).limit(1))
    if quota_types:
        queries.append(select(q.request_id).where(
            q.tenant_id == tenant_id, q.type.in_(list(quota_types)),
            q.request_id.like(others, escape="\\"), ~q.request_id.like(mine, escape="\\")).limit(1))
    return any(conn.execute(query).first() is not None for query in queries)


def reserve(conn: Connection, request: Request, holds: Sequence[Hold],
            needs: Mapping[str, int]) -> Refusal | Shortage | None:
    """Call inside a transaction; on a refusal the caller rolls back."""
    needs = {t: n for t, n in needs.items() if n > 0}
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        done = _pipelined(raw, request, holds, needs)
        if done is not _PLAIN:
            return done  # type: ignore[return-value]
    refusal = budgets.reserve(conn, request.request_id, holds, request.expires_at)
    if refusal is None and needs:
        return quotas.reserve(conn, request.request_id, request.tenant_id, request.user_id,
                              needs, request.at, request.timezone, request.expires_at)
    return refusal


_PLAIN = object()


def _values(count: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * count)


def _pipelined(raw: psycopg.Connection[Any], request: Request, holds: Sequence[Hold],
               needs: Mapping[str, int]) -> Refusal | Shortage | object | None:
    keys = sorted({(h.budget.id, h.period_start) for h in holds})
    types = sorted(needs)
    with raw.pipeline() as pipeline, raw.cursor(row_factory=namedtuple_row) as periods, \
            raw.cursor(row_factory=namedtuple_row) as counters, \
            raw.cursor(row_factory=namedtuple_row) as grants:
        if keys:
            periods.execute(
                "INSERT INTO budget_periods (budget_id, period_start, spent, reserved) VALUES "
                + _values(len(keys), 4) + " ON CONFLICT (budget_id, period_start) DO UPDATE "
                "SET reserved = budget_periods.reserved "
                "RETURNING budget_id, period_start, spent, reserved",
                [v for b, p in keys for v in (b, p, 0, 0)])
        if types:
            counters.execute(
                "INSERT INTO quota_counters (tenant_id, type, reserved) VALUES "
                + _values(len(types), 3) + " ON CONFLICT (tenant_id, type) DO UPDATE "
                "SET reserved = quota_counters.reserved RETURNING type, reserved",
                [v for t in types for v in (request.tenant_id, t, 0)])
            grants.execute(
                "SELECT * FROM quota_grants WHERE tenant_id = %s AND type = ANY(%s) "
                "AND (user_id IS NULL OR user_id = %s)",
                [request.tenant_id, types, request.user_id])
        pipeline.sync()
        locked: list[Any] = periods.fetchall() if keys else []
        counted: list[Any] = counters.fetchall() if types else []
        rows: list[Any] = grants.fetchall() if types else []
    found = {(r.budget_id, r.period_start): Counter(r.spent, r.reserved) for r in locked}
    reserved = {r.type: r.reserved for r in counted}
    decided = budgets.decide(holds, found) if holds else {}
    if isinstance(decided, Refusal):
        return decided
    if types:
        shortage = quotas.decide(rows, reserved, needs, request.at, request.timezone)
        if shortage is not None:
            return _PLAIN if any(r.source == "plan" for r in rows) or not rows else shortage
    with raw.pipeline(), raw.cursor() as cursor:
        if decided:
            cursor.executemany(
                "UPDATE budget_periods SET reserved = %s WHERE budget_id = %s "
                "AND period_start = %s",
                [(c.reserved, b, p) for (b, p), c in sorted(decided.items())])
            cursor.executemany(
                "INSERT INTO budget_holds (request_id, budget_id, period_start, amount, "
                "expires_at) VALUES (%s, %s, %s, %s, %s)",
                [(r["request_id"], r["budget_id"], r["period_start"], r["amount"],
                  r["expires_at"])
                 for r in budgets.hold_rows(request.request_id, holds, request.expires_at)])
        if types:
            cursor.executemany(
                "UPDATE quota_counters SET reserved = %s WHERE tenant_id = %s AND type = %s",
                [(reserved[t] + needs[t], request.tenant_id, t) for t in types])
            cursor.executemany(
                "INSERT INTO quota_holds (request_id, type, tenant_id, amount, expires_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(request.request_id, t, request.tenant_id, needs[t], request.expires_at)
                 for t in types])
        # The commit rides in the same round trip; the caller's commit then finds the
        # connection idle and sends nothing.
        cursor.execute("COMMIT")
    return None
