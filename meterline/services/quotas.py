"""Quota grants, balances and plans — what the admin API and the CLI share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from meterline.domain import quotas as rules
from meterline.domain.events import parse_timestamp
from meterline.domain.quotas import Balance, Entry, Grant
from meterline.errors import InvalidInput, NotFound
from meterline.services.inputs import optional_name, optional_text, whole_number
from meterline.store import audit
from meterline.store import quotas as store
from meterline.store.accounts import get_tenant
from meterline.store.audit import Actor


def _count(value: object, field: str, minimum: int) -> int:
    """Whole units, given as a number or a string of digits (CLI and JSON alike)."""
    return rules.units(whole_number(value), field=field, minimum=minimum)


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class Granted:
    """A new grant, as the API answers it and the audit log keeps it."""

    grant: Grant

    def to_json(self) -> dict[str, Any]:
        g = self.grant
        return {"id": g.id, "tenant": g.tenant, "user": g.user, "type": g.type,
                "source": g.source, "amount": g.amount, "bonus": g.bonus,
                "credited": g.credited, "reference": g.reference, "reason": g.reason,
                "cycle": g.cycle, "granted_at": g.granted_at.isoformat(),
                "expires_at": _at(g.expires_at)}


@dataclass(frozen=True, slots=True)
class QuotaState:
    """A tenant's balance by type and source, with units reserved by calls in flight, each
    grant's remainder, and the latest entries of its quota ledger."""

    tenant: str
    balance: Balance
    reserved: Mapping[str, int]
    grants: list[Grant]
    history: list[Entry]

    def to_json(self) -> dict[str, Any]:
        found = self.balance
        return {
            "tenant": self.tenant, "cycle": found.cycle,
            "resets_at": found.resets_at.isoformat(),
            "types": {t: {"available": b.available, "reserved": self.reserved.get(t, 0),
                          "by_source": dict(b.by_source)} for t, b in found.types.items()},
            "grants": [{"id": g.id, "user": g.user, "type": g.type, "source": g.source,
                        "credited": g.credited, "remaining": found.remaining[g.id],
                        "cycle": g.cycle, "reference": g.reference, "reason": g.reason,
                        "expires_at": _at(g.expires_at)} for g in self.grants],
            "history": [{"grant_id": e.grant_id, "type": e.type, "kind": e.kind,
                         "delta": e.delta, "at": e.at.isoformat(),
                         "request_id": e.request_id, "note": e.note} for e in self.history],
        }


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    allowances: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "allowances": dict(self.allowances)}


@dataclass(frozen=True, slots=True)
class Subscription:
    tenant: str
    plan: str
    granted: int

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "plan": self.plan, "granted": self.granted}


def grant(engine: Engine, raw: Mapping[str, Any], *, actor: Actor | None) -> Granted:
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
        shown = Granted(found)
        audit.record(conn, actor, "quota.grant", target=found.id, tenant=found.tenant,
                     details=shown.to_json())
    return shown


def show(engine: Engine, tenant_id: str, history_limit: int = 100) -> QuotaState:
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
    return QuotaState(tenant.id, found, reserved, grants, entries[-history_limit:])


def set_plan(engine: Engine, plan_id: object, allowances: Mapping[str, Any], *,
             actor: Actor | None) -> Plan:
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
        audit.record(conn, actor, "plan.set", target=name, details={"allowances": clean})
    return Plan(name, clean)


def list_plans(engine: Engine) -> list[Plan]:
    with engine.connect() as conn:
        return [Plan(p.id, p.allowances) for p in store.list_plans(conn)]


def subscribe(engine: Engine, tenant_id: str, plan_id: str, *,
              actor: Actor | None) -> Subscription:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        tenant = get_tenant(conn, tenant_id)
        if plan_id not in {p.id for p in store.list_plans(conn)}:
            raise NotFound(f"no plan {plan_id!r}", plan=plan_id)
        store.subscribe(conn, tenant.id, plan_id, now)
        granted = store.ensure_plan_grants(conn, tenant.id, now, tenant.timezone)
        audit.record(conn, actor, "plan.subscribe", target=plan_id, tenant=tenant.id,
                     details={"plan": plan_id, "granted": granted})
    return Subscription(tenant_id, plan_id, granted)
