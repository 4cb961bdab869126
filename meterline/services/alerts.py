"""Listing and resolving alerts; checking budgets' projections for an overrun alert."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
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


@dataclass(frozen=True)
class StoredAlert:
    """An alert as listed: the alert and its life in the store (tenant, threshold crossed,
    whether it was sent, when it was resolved)."""

    alert: Alert
    tenant: str | None
    threshold: Decimal
    notified: bool
    resolved_at: datetime | None

    @classmethod
    def of_row(cls, row: Any) -> StoredAlert:
        return cls(to_alert(row), row.tenant_id, row.threshold, row.notified_at is not None,
                   row.resolved_at)

    def to_json(self) -> dict[str, Any]:
        a = self.alert
        return {
            "id": a.id, "budget_id": a.budget_id, "tenant": self.tenant, "scope": a.scope,
            "kind": a.kind, "level": a.level, "threshold": format_decimal(self.threshold),
            "percentage": format_decimal(a.percentage), "amount": format_decimal(a.amount),
            "limit": format_decimal(a.limit), "currency": a.currency, "period": a.period,
            "message": a.message, "created_at": a.created_at.isoformat(),
            "notified": self.notified, "resolved": a.resolved,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "source": a.source,
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


def list_alerts(engine: Engine, tenant: str | None = None, resolved: bool | None = None,
                limit: int = 100) -> list[StoredAlert]:
    """Alerts, newest first."""
    with engine.connect() as conn:
        return [StoredAlert.of_row(r) for r in store.list_alerts(conn, tenant_id=tenant,
                                                                 resolved=resolved,
                                                                 limit=limit)]


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
