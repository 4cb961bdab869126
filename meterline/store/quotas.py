"""Quotas in the database: grants, their auditable ledger of entries, and holds of calls in
flight (SPEC §1 "quota"; the rules are in :mod:`meterline.domain.quotas`).

Every change to a grant is an entry; ``quota_grants.remaining`` is kept in step with the entries
in the same transaction, so admission reads one row per grant instead of the whole history, and
``quota show`` derives the same balance from the entries. Holds work as for budgets: the
tenant's counter row of a type is locked, ``available - reserved >= hold`` is checked in Python,
and the call's record releases the hold and consumes the real units in the transaction that
writes it. Holds are counted per tenant and type, across its users — conservative for a user
with grants of their own, and never an overshoot.
"""

from __future__ import annotations

import math
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from meterline.domain import quotas as rules
from meterline.domain.quotas import Entry, Grant
from meterline.store.schema import (
    plans,
    quota_counters,
    quota_entries,
    quota_grants,
    quota_holds,
    tenant_plans,
    tenants,
)
from meterline.store.upsert import PerDialect, upsert


def units_of(record: Mapping[str, Any]) -> dict[str, int]:
    """The quota units a ledger record consumes, by type (only the non-zero ones)."""
    seconds = record.get("seconds") or 0
    found = {"text_token": int(record.get("input_tokens") or 0)
             + int(record.get("output_tokens") or 0),
             "image": int(record.get("images") or 0),
             "tts_character": int(record.get("characters") or 0),
             "video_second": math.ceil(seconds)}
    return {t: n for t, n in found.items() if n > 0}


def _grant(row: Any) -> Grant:
    return Grant(row.id, row.tenant_id, row.user_id, row.type, row.source, row.amount,
                 row.bonus, row.reference, row.reason, row.granted_at, row.expires_at, row.cycle)


def _entry_row(entry: Entry, tenant: str) -> dict[str, Any]:
    return {"grant_id": entry.grant_id, "tenant_id": tenant, "type": entry.type,
            "kind": entry.kind, "delta": entry.delta, "at": entry.at,
            "request_id": entry.request_id, "note": entry.note}


def add_grant(conn: Connection, grant: Grant) -> bool:
    """Store a grant and its credit entry; False if a plan's cycle was already granted."""
    values = {"id": grant.id, "tenant_id": grant.tenant, "user_id": grant.user,
              "type": grant.type, "source": grant.source, "amount": grant.amount,
              "bonus": grant.bonus, "remaining": grant.credited, "reference": grant.reference,
              "reason": grant.reason, "cycle": grant.cycle, "granted_at": grant.granted_at,
              "expires_at": grant.expires_at}
    if grant.source == "plan":
        # RETURNING, not rowcount, says whether the row went in (psycopg reports a skipped
        # ON CONFLICT row as one).
        if conn.execute(_insert_plan_grant(conn), values).first() is None:
            return False
    else:
        conn.execute(insert(quota_grants).values(**values))
    conn.execute(insert(quota_entries).values(**_entry_row(rules.credit_entry(grant),
                                                           grant.tenant)))
    return True


def _insert_plan_grant(conn: Connection) -> Any:
    # A literal predicate: PostgreSQL infers the partial unique index only from its own text.
    where = text("source = 'plan'")
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(quota_grants).on_conflict_do_nothing(
        index_elements=["tenant_id", "type", "cycle"], index_where=where
    ).returning(quota_grants.c.id)


def new_grant_id() -> str:
    return "qg_" + secrets.token_hex(8)


def tenant_zone(conn: Connection, tenant_id: str) -> str:
    row = conn.execute(select(tenants.c.timezone).where(tenants.c.id == tenant_id)).first()
    return row.timezone if row is not None else "UTC"


def ensure_plan_grants(conn: Connection, tenant_id: str, at: datetime, zone: str) -> int:
    """Grant the tenant's plan allowances for the cycle holding ``at`` (once per cycle)."""
    row = conn.execute(select(plans.c.id, plans.c.allowances).join(
        tenant_plans, tenant_plans.c.plan_id == plans.c.id).where(
        tenant_plans.c.tenant_id == tenant_id)).first()
    if row is None:
        return 0
    cycle = rules.cycle_of(at, zone)
    made = 0
    for quota_type, amount in sorted(row.allowances.items()):
        if amount <= 0:
            continue
        grant = Grant(new_grant_id(), tenant_id, None, quota_type, "plan", int(amount), 0,
                      row.id, f"plan {row.id}, cycle {cycle}", at, None, cycle)
        made += add_grant(conn, grant)
    return made


def _grants(conn: Connection, tenant_id: str, types: Iterable[str],
            user: str | None = None, every_user: bool = False) -> list[Any]:
    c = quota_grants.c
    query = select(quota_grants).where(c.tenant_id == tenant_id, c.type.in_(list(types)))
    if not every_user:
        query = query.where(or_(c.user_id.is_(None), c.user_id == user))
    return list(conn.execute(query))


def _usable(rows: Sequence[Any], quota_type: str, at: datetime, zone: str,
            amount: int) -> rules.Allocation:
    """What ``amount`` units would take from these grants, by the maintained remainders."""
    grants = [_grant(r) for r in rows if r.type == quota_type]
    held = [Entry(r.id, r.type, "grant", r.remaining, r.granted_at)
            for r in rows if r.type == quota_type and r.remaining > 0]
    return rules.allocate(grants, held, quota_type, amount, at, zone)


def _lock(conn: Connection, tenant_id: str, types: Iterable[str]) -> dict[str, int]:
    """The tenant's counters of these types, created if need be and locked: one upsert."""
    rows = conn.execute(_LOCK.get(conn), [{"tenant_id": tenant_id, "type": t, "reserved": 0}
                                          for t in sorted(set(types))])
    return {r.type: r.reserved for r in rows}


def _lock_statement(conn: Connection) -> Any:
    c = quota_counters.c
    return upsert(conn, quota_counters).on_conflict_do_update(
        index_elements=["tenant_id", "type"], set_={"reserved": c.reserved}
    ).returning(c.type, c.reserved)


_LOCK = PerDialect(_lock_statement)


@dataclass(frozen=True, slots=True)
class Shortage:
    type: str
    requested: int
    available: int
    resets_at: datetime | None


def reserve(conn: Connection, request_id: str, tenant_id: str, user: str | None,
            needs: Mapping[str, int], at: datetime, zone: str,
            expires_at: datetime) -> Shortage | None:
    """Hold ``needs`` (units by type) for a call, all or nothing."""
    needs = {t: n for t, n in needs.items() if n > 0}
    if not needs:
        return None
    reserved = _lock(conn, tenant_id, needs)
    rows = _grants(conn, tenant_id, needs, user)
    shortage = decide(rows, reserved, needs, at, zone)
    if shortage is not None and ensure_plan_grants(conn, tenant_id, at, zone):
        rows = _grants(conn, tenant_id, needs, user)  # a new cycle's plan allowance
        shortage = decide(rows, reserved, needs, at, zone)
    if shortage is not None:
        return shortage
    c = quota_counters.c
    for quota_type, amount in needs.items():
        conn.execute(update(quota_counters).where(c.tenant_id == tenant_id,
                                                  c.type == quota_type)
                     .values(reserved=reserved[quota_type] + amount))
    conn.execute(insert(quota_holds), hold_rows(request_id, tenant_id, needs, expires_at))
    return None


def decide(rows: Sequence[Any], reserved: Mapping[str, int], needs: Mapping[str, int],
           at: datetime, zone: str) -> Shortage | None:
    """None if every type has ``need`` units beyond what calls in flight hold."""
    for quota_type, amount in sorted(needs.items()):
        allocation = _usable(rows, quota_type, at, zone, amount + reserved[quota_type])
        if allocation.shortfall:
            available = max(0, allocation.allocated - reserved[quota_type])
            plan = any(r.source == "plan" for r in rows if r.type == quota_type)
            return Shortage(quota_type, amount, available,
                            rules.next_cycle_start(at, zone) if plan else None)
    return None


def hold_rows(request_id: str, tenant_id: str, needs: Mapping[str, int],
              expires_at: datetime) -> list[dict[str, Any]]:
    return [{"request_id": request_id, "type": t, "tenant_id": tenant_id, "amount": n,
             "expires_at": expires_at} for t, n in needs.items()]


def _release(conn: Connection, rows: Sequence[Any]) -> None:
    freed: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        freed[(row.tenant_id, row.type)] += row.amount
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for tenant_id, quota_type in freed:
        by_tenant[tenant_id].append(quota_type)
    c = quota_counters.c
    for tenant_id in sorted(by_tenant):
        current = _lock(conn, tenant_id, by_tenant[tenant_id])
        for quota_type in sorted(by_tenant[tenant_id]):
            conn.execute(update(quota_counters).where(c.tenant_id == tenant_id,
                                                      c.type == quota_type)
                         .values(reserved=max(0, current[quota_type]
                                              - freed[(tenant_id, quota_type)])))


@dataclass(frozen=True, slots=True)
class Part:
    """Units of one hold row: ``request_id`` holds them on a tenant's quota type."""

    request_id: str
    tenant_id: str
    type: str
    amount: int


def shrink(conn: Connection, parts: Sequence[Part]) -> None:
    """Give back parts of hold rows, where the row is still there."""
    c = quota_holds.c
    freed = [part for part in parts if conn.execute(
        update(quota_holds).where(c.request_id == part.request_id, c.type == part.type)
        .values(amount=c.amount - part.amount).returning(c.request_id)).first() is not None]
    _release(conn, freed)


def release(conn: Connection, request_ids: Sequence[str]) -> None:
    """Release every hold of these requests (or leases)."""
    if request_ids:
        _release(conn, list(conn.execute(delete(quota_holds).where(
            quota_holds.c.request_id.in_(list(request_ids))).returning(
            quota_holds.c.tenant_id, quota_holds.c.type, quota_holds.c.amount))))


def release_expired(conn: Connection, now: datetime | None = None) -> int:
    rows = list(conn.execute(delete(quota_holds).where(
        quota_holds.c.expires_at < (now or datetime.now(UTC))).returning(
        quota_holds.c.tenant_id, quota_holds.c.type, quota_holds.c.amount)))
    _release(conn, rows)
    return len(rows)


def apply_records(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Consume the units of newly written ledger records and release their holds."""
    if not records:
        return
    held_ids = [r["request_id"] for r in records if r.get("source") == "gateway"]
    if held_ids:
        _release(conn, list(conn.execute(delete(quota_holds).where(
            quota_holds.c.request_id.in_(held_ids)).returning(
            quota_holds.c.tenant_id, quota_holds.c.type, quota_holds.c.amount))))
    tenant_ids = sorted({r["tenant_id"] for r in records})
    c = quota_grants.c
    with_quota = {(r.tenant_id, r.type) for r in conn.execute(
        select(c.tenant_id, c.type).where(c.tenant_id.in_(tenant_ids)).distinct())}
    if not with_quota:
        return
    for tenant_id in sorted({t for t, _ in with_quota}):
        types = sorted(t for tenant, t in with_quota if tenant == tenant_id)
        mine = [r for r in records if r["tenant_id"] == tenant_id]
        _lock(conn, tenant_id, types)  # consumption and admission serialise per tenant
        _consume(conn, tenant_id, types, mine)


def _consume(conn: Connection, tenant_id: str, types: Sequence[str],
             records: Sequence[Mapping[str, Any]]) -> None:
    zone = tenant_zone(conn, tenant_id)
    rows = _grants(conn, tenant_id, types, every_user=True)
    remaining = {r.id: r.remaining for r in rows}
    written: list[dict[str, Any]] = []
    for record in records:
        for quota_type, amount in units_of(record).items():
            if quota_type not in types:
                continue
            mine = [r for r in rows if r.type == quota_type
                    and (r.user_id is None or r.user_id == record.get("user_id"))]
            current = [_with_remaining(r, remaining[r.id]) for r in mine]
            allocation = _usable(current, quota_type, record["occurred_at"], zone, amount)
            note = None if allocation.fits else f"{allocation.shortfall} units beyond the quota"
            for entry in allocation.entries:
                remaining[entry.grant_id] += entry.delta
                written.append(_entry_row(Entry(entry.grant_id, quota_type, "consume",
                                                entry.delta, record["occurred_at"],
                                                record["request_id"], note), tenant_id))
    if not written:
        return
    conn.execute(insert(quota_entries), written)
    changed = {r.id: remaining[r.id] for r in rows if remaining[r.id] != r.remaining}
    for grant_id, left in sorted(changed.items()):
        conn.execute(update(quota_grants).where(quota_grants.c.id == grant_id)
                     .values(remaining=left))


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    tenant_id: str
    user_id: str | None
    type: str
    source: str
    amount: int
    bonus: int
    remaining: int
    reference: str | None
    reason: str | None
    cycle: str | None
    granted_at: datetime
    expires_at: datetime | None


def _with_remaining(row: Any, remaining: int) -> _Row:
    return _Row(row.id, row.tenant_id, row.user_id, row.type, row.source, row.amount, row.bonus,
                remaining, row.reference, row.reason, row.cycle, row.granted_at, row.expires_at)


def close_grants(conn: Connection, tenant_id: str, at: datetime) -> int:
    """Write the reset/expire entries of the tenant's closed grants (audit), once each."""
    zone = tenant_zone(conn, tenant_id)
    rows = list(conn.execute(select(quota_grants).where(quota_grants.c.tenant_id == tenant_id)))
    grants = [_grant(r) for r in rows]
    entries = history(conn, tenant_id)
    closing = rules.reset_entries(grants, entries, at, zone)
    if closing:
        conn.execute(insert(quota_entries), [_entry_row(e, tenant_id) for e in closing])
        for entry in closing:
            conn.execute(update(quota_grants).where(quota_grants.c.id == entry.grant_id)
                         .values(remaining=quota_grants.c.remaining + entry.delta))
    return len(closing)


def history(conn: Connection, tenant_id: str, limit: int | None = None) -> list[Entry]:
    c = quota_entries.c
    query = select(quota_entries).where(c.tenant_id == tenant_id).order_by(c.id)
    return [Entry(r.grant_id, r.type, r.kind, r.delta, r.at, r.request_id, r.note)
            for r in conn.execute(query.limit(limit) if limit else query)]


def grants_of(conn: Connection, tenant_id: str) -> list[Grant]:
    return [_grant(r) for r in conn.execute(select(quota_grants).where(
        quota_grants.c.tenant_id == tenant_id).order_by(quota_grants.c.granted_at))]


def reserved_of(conn: Connection, tenant_id: str) -> dict[str, int]:
    c = quota_counters.c
    return {r.type: r.reserved for r in conn.execute(
        select(c.type, c.reserved).where(c.tenant_id == tenant_id))}


def tenants_with_quota(conn: Connection) -> set[tuple[str, str]]:
    """(tenant, type) pairs that quotas apply to: granted ever, or allowed by a plan."""
    c = quota_grants.c
    found = {(r.tenant_id, r.type) for r in conn.execute(select(c.tenant_id, c.type).distinct())}
    for row in conn.execute(select(tenant_plans.c.tenant_id, plans.c.allowances).join(
            plans, plans.c.id == tenant_plans.c.plan_id)):
        found |= {(row.tenant_id, t) for t in row.allowances}
    return found


def set_plan(conn: Connection, plan_id: str, allowances: Mapping[str, int],
             now: datetime) -> None:
    found = conn.execute(select(plans.c.id).where(plans.c.id == plan_id)).first()
    if found is None:
        conn.execute(insert(plans).values(id=plan_id, allowances=dict(allowances),
                                          created_at=now))
    else:
        conn.execute(update(plans).where(plans.c.id == plan_id)
                     .values(allowances=dict(allowances)))


def list_plans(conn: Connection) -> list[Any]:
    return list(conn.execute(select(plans).order_by(plans.c.id)))


def subscribe(conn: Connection, tenant_id: str, plan_id: str, now: datetime) -> None:
    existing = conn.execute(select(tenant_plans.c.tenant_id).where(
        tenant_plans.c.tenant_id == tenant_id)).first()
    if existing is None:
        conn.execute(insert(tenant_plans).values(tenant_id=tenant_id, plan_id=plan_id,
                                                 since=now))
    else:
        conn.execute(update(tenant_plans).where(and_(tenant_plans.c.tenant_id == tenant_id))
                     .values(plan_id=plan_id, since=now))
