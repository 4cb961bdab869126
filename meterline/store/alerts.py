"""Alerts in the database: created once per budget (or provider account), period, kind and
threshold; listed, resolved, and claimed for notification by whichever process gets there
first."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from sqlalchemy import Connection, select, update

from meterline.domain.alerts import alert_message, level_for
from meterline.domain.budgets import Budget
from meterline.errors import NotFound
from meterline.store.schema import alerts
from meterline.store.upsert import insert_ignore

THRESHOLD = "threshold"
PROJECTED = "projected_overrun"
LOW_BALANCE = "low_balance"
BILL_DIFFERENCE = "bill_difference"
#: Percentages are shown, not added up: two places, rounded.
_PERCENT = Context(prec=60, rounding=ROUND_HALF_UP)


def _percentage(part: Decimal, whole: Decimal) -> Decimal:
    with localcontext(_PERCENT):
        return (part * 100 / whole).quantize(Decimal("0.01"))


def threshold_alert(budget: Budget, period_start: datetime, threshold: Decimal, spent: Decimal,
                    period: str, now: datetime) -> dict[str, Any]:
    percentage = _percentage(spent, budget.limit)
    message = alert_message(budget.describe(), kind=THRESHOLD, percentage=percentage,
                            amount=spent, limit=budget.limit, currency=budget.currency,
                            period=period)
    if budget.mode == "block" and threshold >= 1:
        message += "; calls that do not fit are refused"
    return _row(budget, period_start, THRESHOLD, threshold, level_for(threshold), percentage,
                spent, period, message, now)


def projected_alert(budget: Budget, period_start: datetime, projected: Decimal,
                    spent: Decimal, period: str, now: datetime) -> dict[str, Any]:
    percentage = _percentage(projected, budget.limit)
    message = alert_message(budget.describe(), kind=PROJECTED, percentage=percentage,
                            amount=spent, limit=budget.limit, currency=budget.currency,
                            period=period)
    return _row(budget, period_start, PROJECTED, Decimal(1), "warning", percentage, spent,
                period, message, now)


def _row(budget: Budget, period_start: datetime, kind: str, threshold: Decimal, level: str,
         percentage: Decimal, amount: Decimal, period: str, message: str,
         now: datetime) -> dict[str, Any]:
    return {"id": "alr_" + secrets.token_hex(8), "budget_id": budget.id,
            "tenant_id": budget.scope.tenant, "scope": budget.describe(), "kind": kind,
            "level": level, "threshold": threshold, "percentage": percentage,
            "amount": amount, "limit_amount": budget.limit, "currency": budget.currency,
            "period": period, "period_start": period_start, "message": message,
            "created_at": now}


def account_alert(source: str, scope: str, kind: str, *, level: str, threshold: Decimal,
                  percentage: Decimal, amount: Decimal, limit: Decimal, currency: str,
                  period: str, period_start: datetime, message: str,
                  now: datetime) -> dict[str, Any]:
    """An alert of a provider account (``source`` is ``provider:account``), not of a budget."""
    return {"id": "alr_" + secrets.token_hex(8), "budget_id": None, "tenant_id": None,
            "source": source, "scope": scope, "kind": kind, "level": level,
            "threshold": threshold, "percentage": percentage, "amount": amount,
            "limit_amount": limit, "currency": currency, "period": period,
            "period_start": period_start, "message": message, "created_at": now}


def percentage(part: Decimal, whole: Decimal) -> Decimal:
    """``part`` of ``whole`` in percent, two places (as shown)."""
    return _percentage(part, whole)


def add(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert an alert unless this budget (or account), period, kind and threshold already has
    one."""
    owner = "source" if row.get("source") is not None else "budget_id"
    done = conn.execute(insert_ignore(conn, alerts, [owner, "period_start", "kind",
                                                     "threshold"]).returning(alerts.c.id), row)
    return done.first() is not None


def list_alerts(conn: Connection, *, tenant_id: str | None = None,
                resolved: bool | None = None, limit: int = 100) -> list[Any]:
    c = alerts.c
    query = select(alerts).order_by(c.created_at.desc(), c.id).limit(limit)
    if tenant_id is not None:
        query = query.where(c.tenant_id == tenant_id)
    if resolved is True:
        query = query.where(c.resolved_at.is_not(None))
    elif resolved is False:
        query = query.where(c.resolved_at.is_(None))
    return list(conn.execute(query))


def resolve(conn: Connection, alert_ids: Sequence[str], now: datetime | None = None) -> int:
    """Mark alerts resolved; an unknown id is an error, an already resolved one is left as is."""
    c = alerts.c
    known = {r.id for r in conn.execute(select(c.id).where(c.id.in_(list(alert_ids))))}
    missing = [a for a in alert_ids if a not in known]
    if missing:
        raise NotFound(f"no alert {missing[0]!r}", alert=missing[0])
    done = conn.execute(update(alerts).where(c.id.in_(list(alert_ids)), c.resolved_at.is_(None))
                        .values(resolved_at=now or datetime.now(UTC)))
    return done.rowcount


def claim_unnotified(conn: Connection, limit: int = 50) -> list[Any]:
    """Alerts nobody has sent yet, marked as sent by this caller (one process sends each)."""
    c = alerts.c
    now = datetime.now(UTC)
    ids = [r.id for r in conn.execute(select(c.id).where(c.notified_at.is_(None))
                                      .order_by(c.created_at).limit(limit))]
    claimed = []
    for alert_id in ids:
        done = conn.execute(update(alerts).where(c.id == alert_id, c.notified_at.is_(None))
                            .values(notified_at=now))
        if done.rowcount == 1:
            claimed.append(alert_id)
    if not claimed:
        return []
    return list(conn.execute(select(alerts).where(c.id.in_(claimed))))
