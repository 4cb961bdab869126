"""``/``: spend in total, this month and today, calls, success rate and budget use; the daily
cost over 7, 30 or 90 days (``?days=``) or a range (``?start=&end=``) with its average, dearest
and cheapest day; cost by provider and by model; the top users and keys — for every tenant in
the reporting currency, or one tenant (``?tenant=``) in its own.

Every figure comes from the services the admin API answers with (``/api/summary``,
``/api/trend/daily``, ``/api/stats``), which read the daily rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.responses import Response

from meterline.api.state import state
from meterline.domain.money import format_decimal
from meterline.services import budgets as budget_service
from meterline.services import stats as stats_service
from meterline.services.budgets import BudgetState
from meterline.services.reporting import Group
from meterline.services.stats import Breakdown, Summary, Trend
from meterline.store.accounts import list_tenants
from meterline.web.layout import show

#: The ranges offered as links, in days; any other comes as ``start``/``end``.
RANGES: Final = (7, 30, 90)
DEFAULT_DAYS: Final = 30
TOP: Final = 10
#: Slices of a pie beyond these are summed as "other" by the chart script.
PIE_SLICES: Final = 8

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """The fullest budget in scope: its share spent (None without budgets)."""

    budgets: int
    highest: Decimal | None
    fullest: str | None

    @classmethod
    def of(cls, states: list[BudgetState]) -> BudgetUse:
        shares = [(s.spent / s.budget.limit, s.budget.describe()) for s in states
                  if s.budget.limit > 0]
        if not shares:
            return cls(len(states), None, None)
        share, name = max(shares, key=lambda pair: pair[0])
        return cls(len(states), share, name)


@dataclass(frozen=True, slots=True)
class Overview:
    tenant: str | None
    tenants: list[str]
    days: int | None
    start: str
    end: str
    summary: Summary
    trend: Trend
    providers: Breakdown
    models: Breakdown
    users: list[Group]
    keys: list[Group]
    budget_use: BudgetUse

    def chart(self) -> dict[str, Any]:
        """What the page's charts draw: exact amounts as strings, the script reads them."""
        return {
            "currency": self.trend.currency,
            "trend": {"days": [d.day.isoformat() for d in self.trend.days],
                      "costs": [format_decimal(d.cost) for d in self.trend.days],
                      "calls": [d.calls for d in self.trend.days],
                      "average": format_decimal(self.trend.average)},
            "providers": _slices(self.providers.groups),
            "models": _slices(self.models.groups),
        }


def _slices(groups: list[Group]) -> list[dict[str, Any]]:
    return [{"name": g.key if g.key is not None else "", "cost": format_decimal(g.cost)}
            for g in groups if g.cost]


def load(engine: Engine, reporting_currency: str, tenant: str | None, days: str | None,
         start: str | None, end: str | None) -> Overview:
    chosen_days = None if start else (days or str(DEFAULT_DAYS))
    summary = stats_service.summary(engine, tenant, reporting_currency)
    # What /api/trend/daily and /api/stats answer, read once per grouping.
    trend, (providers, models, users, keys) = stats_service.overview(
        engine, tenant, reporting_currency, chosen_days, start=start or None, end=end or None)
    first, last = trend.days[0].day.isoformat(), trend.days[-1].day.isoformat()
    with engine.connect() as conn:
        tenants = [t.id for t in list_tenants(conn)]
    return Overview(tenant, tenants, len(trend.days) if chosen_days else None, first, last,
                    summary, trend, providers, models, users.groups[:TOP], keys.groups[:TOP],
                    BudgetUse.of(budget_service.list_state(engine, tenant)))


@router.get("/")
async def overview(request: Request, tenant: str | None = None, days: str | None = None,
                   start: str | None = None, end: str | None = None) -> Response:
    app = state(request)
    return await show(
        request, "overview.html", "Overview",
        lambda: load(app.engine, app.config.reporting_currency, tenant or None, days, start,
                     end),
        lambda found: {"o": found, "ranges": RANGES, "chart": found.chart(),
                       "tenant_options": [(t, t) for t in found.tenants]})
