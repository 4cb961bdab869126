"""Listing and resolving alerts; checking budgets' projections for an overrun alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from meterline.domain.alerts import Alert
from meterline.domain.budgets import period_label
from meterline.domain.money import format_decimal
from meterline.services.projection import budget_projection
from meterline.store import alerts as store
from meterline.store import audit
from meterline.store import budgets as budget_store
from meterline.store.audit import Actor
from meterline.store.pricing import load_fx


def alert_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "budget_id": row.budget_id, "tenant": row.tenant_id, "scope": row.scope,
        "kind": row.kind, "level": row.level, "threshold": format_decimal(row.threshold),
        "percentage": format_decimal(row.percentage), "amount": format_decimal(row.amount),
        "limit": format_decimal(row.limit_amount), "currency": row.currency,
        "period": row.period, "message": row.message, "created_at": row.created_at.isoformat(),
        "notified": row.notified_at is not None, "resolved": row.resolved_at is not None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "source": row.source,
    }


def to_alert(row: Any) -> Alert:
    return Alert(id=row.id, scope=row.scope, budget_id=row.budget_id, level=row.level,
                 kind=row.kind, percentage=row.percentage, amount=row.amount,
                 limit=row.limit_amount, currency=row.currency, period=row.period,
                 message=row.message, created_at=row.created_at,
                 resolved=row.resolved_at is not None, source=row.source)


def claim_for_notification(engine: Engine) -> list[Alert]:
    """New alerts, each claimed by exactly one process to send."""
    with engine.begin() as conn:
        return [to_alert(r) for r in store.claim_unnotified(conn)]


def list_json(engine: Engine, tenant: str | None = None, resolved: bool | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [alert_json(r) for r in store.list_alerts(conn, tenant_id=tenant,
                                                         resolved=resolved, limit=limit)]


def resolve(engine: Engine, ids: Sequence[str], *, actor: Actor | None) -> int:
    with engine.begin() as conn:
        count = store.resolve(conn, ids)
        if count:
            audit.record(conn, actor, "alert.resolve", details={"ids": list(ids),
                                                                "resolved": count})
    return count


def check_projections(engine: Engine, now: datetime | None = None) -> int:
    """Alert (once per period) on every budget whose period-end projection — the one the
    budget list and the forecast show (``projection.budget_projection``) — exceeds its limit."""
    now = now or datetime.now(UTC)
    over = []
    # Projections read the ledger: in a read, so no write lock is held (or waited on) meanwhile.
    with engine.connect() as conn:
        found = budget_store.list_budgets(conn)
        fx = load_fx(conn)
        bounds = {b.id: b.bounds(now) for b in found}
        counters = budget_store.counters(conn, [(b.id, bounds[b.id][0]) for b in found])
        for budget in found:
            start, end = bounds[budget.id]
            counter = counters.get((budget.id, start))
            if counter is None or end is None:
                continue
            projected, _ = budget_projection(conn, budget, counter.spent, now, fx)
            if projected > budget.limit:
                over.append(store.projected_alert(
                    budget, start, projected, counter.spent,
                    period_label(budget.period, start, budget.zone), now))
    if not over:
        return 0
    with engine.begin() as conn:
        # Not for a budget deleted meanwhile: nothing would resolve its alert.
        present = {budget.id for budget in budget_store.list_budgets(conn)}
        return sum(store.add(conn, alert) for alert in over if alert["budget_id"] in present)
