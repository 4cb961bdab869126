"""Quota grants, balances and plans — what the admin API and the CLI share."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from meterline.domain import quotas as rules
from meterline.domain.events import parse_timestamp
from meterline.domain.quotas import Grant
from meterline.errors import InvalidInput, NotFound
from meterline.services.inputs import optional_name, optional_text, whole_number
from meterline.store import quotas as store
from meterline.store.accounts import get_tenant


def _count(value: object, field: str, minimum: int) -> int:
    """Whole units, given as a number or a string of digits (CLI and JSON alike)."""
    return rules.units(whole_number(value), field=field, minimum=minimum)


def grant(engine: Engine, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Credit a tenant (or one of its users) with units of a quota type."""
    now = datetime.now(UTC)
    tenant_id = optional_name(raw.get("tenant"), "tenant")
    if tenant_id is None:
        raise InvalidInput("tenant: missing", field="tenant")
    quota_type = rules.quota_type(raw.get("type"))
    source = rules.quota_source(raw.get("source", "admin_grant"))
    amount = _count(raw.get("amount"), "amount", 1)
    bonus = _count(raw.get("bonus") or 0, "bonus", 0)
    expires = raw.get("expires_at")
    expires_at = parse_timestamp(expires, "expires_at") if expires else None
    with engine.begin() as conn:
        tenant = get_tenant(conn, tenant_id)
        cycle = rules.cycle_of(now, tenant.timezone) if source == "plan" else None
        found = Grant(store.new_grant_id(), tenant.id, optional_name(raw.get("user"), "user"),
                      quota_type, source, amount, bonus,
                      optional_text(raw.get("reference"), "reference"),
                      optional_text(raw.get("reason"), "reason"), now, expires_at, cycle)
        if not store.add_grant(conn, found):
            raise InvalidInput(f"source: the plan allowance of {quota_type} for cycle {cycle} "
                               "was already granted", field="source")
    return {"id": found.id, "tenant": found.tenant, "user": found.user, "type": found.type,
            "source": found.source, "amount": found.amount, "bonus": found.bonus,
            "credited": found.credited, "reference": found.reference, "reason": found.reason,
            "cycle": found.cycle, "granted_at": found.granted_at.isoformat(),
            "expires_at": found.expires_at.isoformat() if found.expires_at else None}


def show(engine: Engine, tenant_id: str, history_limit: int = 100) -> dict[str, Any]:
    """Balance by type and source, derived from the quota ledger, with its history."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        tenant = get_tenant(conn, tenant_id)
        store.ensure_plan_grants(conn, tenant.id, now, tenant.timezone)
        store.close_grants(conn, tenant.id, now)
        grants = store.grants_of(conn, tenant.id)
        entries = store.history(conn, tenant.id)
        reserved = store.reserved_of(conn, tenant.id)
    found = rules.balance(grants, entries, now, tenant.timezone)
    return {
        "tenant": tenant.id, "cycle": found.cycle, "resets_at": found.resets_at.isoformat(),
        "types": {t: {"available": b.available, "reserved": reserved.get(t, 0),
                      "by_source": dict(b.by_source)} for t, b in found.types.items()},
        "grants": [{"id": g.id, "user": g.user, "type": g.type, "source": g.source,
                    "credited": g.credited, "remaining": found.remaining[g.id],
                    "cycle": g.cycle, "reference": g.reference, "reason": g.reason,
                    "expires_at": g.expires_at.isoformat() if g.expires_at else None}
                   for g in grants],
        "history": [{"grant_id": e.grant_id, "type": e.type, "kind": e.kind, "delta": e.delta,
                     "at": e.at.isoformat(), "request_id": e.request_id, "note": e.note}
                    for e in entries[-history_limit:]],
    }


def set_plan(engine: Engine, plan_id: object, allowances: Mapping[str, Any]) -> dict[str, Any]:
    name = optional_name(plan_id, "plan")
    if name is None:
        raise InvalidInput("plan: missing", field="plan")
    if not allowances:
        raise InvalidInput("allowances: a plan allows at least one quota type",
                           field="allowances")
    clean = {rules.quota_type(t, field="allowances"): _count(n, f"allowances.{t}", 1)
             for t, n in allowances.items()}
    with engine.begin() as conn:
        store.set_plan(conn, name, clean, datetime.now(UTC))
    return {"id": name, "allowances": clean}


def list_plans(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [{"id": p.id, "allowances": p.allowances} for p in store.list_plans(conn)]


def subscribe(engine: Engine, tenant_id: str, plan_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        tenant = get_tenant(conn, tenant_id)
        if plan_id not in {p.id for p in store.list_plans(conn)}:
            raise NotFound(f"no plan {plan_id!r}", plan=plan_id)
        store.subscribe(conn, tenant.id, plan_id, now)
        granted = store.ensure_plan_grants(conn, tenant.id, now, tenant.timezone)
    return {"tenant": tenant_id, "plan": plan_id, "granted": granted}
