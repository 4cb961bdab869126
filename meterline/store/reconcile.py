"""What reconciliation reads from the ledger: metered cost per provider, model and day (the
daily rollups), and the evidence that explains a difference (unpriced, estimated and reported
calls — to ``/v1/usage`` instead of passing the gateway — per day, from the rollups; the
tenants' time zones).

Rollup days are each tenant's local days; the rollup read is the one without users and keys
(``usage_daily_models``). Amounts are summed with ``money_sum`` (exact on both
databases) and never across currencies.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import Connection, func, select

from meterline.domain.reconcile import DayKey, MeteredDay
from meterline.store.schema import tenants, usage_daily_models
from meterline.store.types import money_sum


class MeteredCost(NamedTuple):
    """A metered day (its amount: the cost in the price's currency ``currency``) and, where the
    ledger converted it, the same calls in the tenant's ``billed_currency``."""

    day: MeteredDay
    currency: str
    billed_currency: str
    billed: Decimal

    def currencies(self) -> set[str]:
        return {self.currency, *([self.billed_currency] if self.billed_currency else [])}

    def in_currency(self, target: str) -> tuple[Decimal, str]:
        """The amount as the ledger holds it in ``target`` where it does, else the cost to
        convert (in its price currency)."""
        if self.currency != target and self.billed_currency == target:
            return self.billed, target
        return self.day.amount, self.currency


def metered(conn: Connection, first: date, until: date,
            provider: str | None) -> list[MeteredCost]:
    """Cost per provider, model, day and currencies (unpriced calls cost nothing here)."""
    c = usage_daily_models.c
    query = (select(c.provider, c.model, c.day, c.currency, c.billed_currency,
                    money_sum(c.cost).label("cost"), money_sum(c.billed_cost).label("billed"))
             .where(c.day >= first, c.day < until, c.currency != "")
             .group_by(c.provider, c.model, c.day, c.currency, c.billed_currency))
    if provider is not None:
        query = query.where(c.provider == provider)
    return [MeteredCost(MeteredDay(r.provider, r.model, r.day, r.cost), r.currency,
                        r.billed_currency, r.billed) for r in conn.execute(query)]


class DayCounts(NamedTuple):
    """Calls of one provider, model and day that meterline could not price, or priced on
    estimated usage."""

    unpriced: int
    estimated: int


def day_counts(conn: Connection, first: date, until: date,
               pairs: Collection[tuple[str, str]]) -> dict[DayKey, DayCounts]:
    """Unpriced and estimated calls per provider, model and (tenant-local) day, for the
    provider/model ``pairs`` only."""
    if not pairs:
        return {}
    c = usage_daily_models.c
    providers = sorted({provider for provider, _ in pairs})
    query = (select(c.provider, c.model, c.day,
                    func.sum(c.unpriced_calls).label("unpriced"),
                    func.sum(c.estimated_calls).label("estimated"))
             .where(c.day >= first, c.day < until, c.provider.in_(providers))
             .group_by(c.provider, c.model, c.day))
    found = {}
    for row in conn.execute(query):
        if (row.provider, row.model) in pairs and (row.unpriced or row.estimated):
            found[DayKey(row.provider, row.model, row.day)] = DayCounts(
                int(row.unpriced or 0), int(row.estimated or 0))
    return found


def reported_calls(conn: Connection, first: date, until: date,
                   pairs: Collection[tuple[str, str]]) -> dict[DayKey, int]:
    """Calls per provider, model and (tenant-local) day that were reported to meterline rather
    than passing the gateway, for the provider/model ``pairs`` only (the rollups count them)."""
    if not pairs:
        return {}
    c = usage_daily_models.c
    providers = sorted({provider for provider, _ in pairs})
    query = (select(c.provider, c.model, c.day, func.sum(c.reported_calls).label("calls"))
             .where(c.day >= first, c.day < until, c.provider.in_(providers),
                    c.reported_calls > 0)
             .group_by(c.provider, c.model, c.day))
    return {DayKey(row.provider, row.model, row.day): int(row.calls)
            for row in conn.execute(query) if (row.provider, row.model) in pairs}


def tenant_zones(conn: Connection) -> set[str]:
    """The time zones the tenants' days (and so the rollups' days) are in."""
    return {row.timezone for row in conn.execute(select(tenants.c.timezone).distinct())}

