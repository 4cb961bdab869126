"""Month-end forecasts of spend (overall, per tenant, per monthly budget) from the ledger.

Daily costs and the projection of a budget are :mod:`meterline.services.projection`'s; the
forecast itself is :mod:`meterline.domain.forecast`. Optimisation hints live in
:mod:`meterline.services.hints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from meterline.domain.budgets import Scope
from meterline.domain.forecast import Projection
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.services.budgets import BudgetState, describe
from meterline.services.hints import hints
from meterline.services.projection import DailyCosts, Skipped, daily_costs, project_scope
from meterline.store.accounts import get_tenant
from meterline.store.budgets import list_budgets
from meterline.store.pricing import load_fx

__all__ = ["DailyCosts", "Forecast", "daily_costs", "forecast", "hints"]


#: What the forecast shows of each budget: its projection is the budget list's own.
BUDGET_FIELDS: Final = ("id", "scope", "period", "mode", "amount", "currency", "spent",
                        "projected", "projected_overrun", "method")


@dataclass(frozen=True, slots=True)
class Forecast:
    """The month-end forecast of a tenant (or of every tenant) and its budgets' projections."""

    tenant: str | None
    currency: str
    timezone: str
    as_of: datetime
    made: Projection
    unpriced_records: int
    unconverted: list[Skipped]
    budgets: list[BudgetState]

    def to_json(self) -> dict[str, Any]:
        made = self.made
        return {
            "tenant": self.tenant, "currency": self.currency, "timezone": self.timezone,
            "month": made.month, "as_of": self.as_of.astimezone(UTC).isoformat(),
            "spent": format_decimal(made.spent), "projected": format_decimal(made.projected),
            "naive_projected": format_decimal(made.naive),
            "daily_level": format_decimal(made.daily_level), "method": made.method,
            "days_elapsed": made.as_of.day, "days_in_month": made.days_in_month,
            "history_days": made.history_days,
            "weekday_factors": [format_decimal(f.quantize(Decimal("0.0001")))
                                for f in made.weekday_factors]
            if made.weekday_factors else None,
            "unpriced_records": self.unpriced_records,
            "unconverted": [skipped.to_json() for skipped in self.unconverted],
            "budgets": [{name: shown[name] for name in BUDGET_FIELDS}
                        for shown in (state.to_json() for state in self.budgets)],
        }


def forecast(engine: Engine, tenant: str | None = None, now: datetime | None = None, *,
             reporting_currency: str = "USD") -> Forecast:
    """The month-end forecast of a tenant (its currency and timezone), or of every tenant
    (``reporting_currency``, UTC days), with its budgets' projections."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidInput("now: needs a timezone", field="now")
    with engine.connect() as conn:
        if tenant is not None:
            found = get_tenant(conn, tenant)
            currency, zone = found.currency, ZoneInfo(found.timezone)
        else:
            currency, zone = reporting_currency, ZoneInfo("UTC")
        fx = load_fx(conn)
        made, costs = project_scope(conn, Scope(tenant=tenant), currency, zone, now, fx)
        states = describe(conn, list_budgets(conn, tenant), now, fx)
    return Forecast(tenant, currency, zone.key, now, made, costs.unpriced_records,
                    costs.skipped(), states)


def series_by_day(engine: Engine, tenant: str, start: datetime, end: datetime
                  ) -> dict[date, Decimal]:
    """A tenant's daily costs (its currency and timezone) over [start, end): for backtests."""
    with engine.connect() as conn:
        found = get_tenant(conn, tenant)
        costs = daily_costs(conn, Scope(tenant=tenant), found.currency,
                            ZoneInfo(found.timezone), start, end, load_fx(conn))
    return costs.days
