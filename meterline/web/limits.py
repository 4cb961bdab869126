"""``/limits[?tenant=][&edit=budget id]``: budgets, quotas and alerts.

Every budget with its current period — spent and reserved as a share of the limit (a bar
coloured at the alert levels: warning from 80 %, critical from 100 %, ``domain.alerts.
level_for``), remaining and the projected period-end amount (``services.budgets.list_state``,
what ``GET /api/budgets`` shows); with a tenant chosen, its quota balance
(``services.quotas.show``, what ``GET /api/quotas/{tenant}`` shows); the open alerts
(``services.alerts.list_alerts``), each with a resolve button.

Forms (web/forms.py: POST, same-site, the session as the audit log's actor):

* ``POST /limits/budgets`` creates or changes a budget through ``services.budgets.set_budget``,
  the service of ``POST /api/budgets``; a budget is one per scope and period, so editing one
  (``?edit=``) posts its scope and period unchanged with the new amount, currency, mode,
  thresholds or timezone — what the API lets change.
* ``POST /limits/alerts/resolve`` resolves an alert (``services.alerts.resolve``, the service
  of ``POST /api/alerts/resolve``).

A refused form shows the page again with the API's status, its message and the field marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.domain.alerts import level_for
from meterline.errors import NotFound
from meterline.services import alerts as alert_service
from meterline.services import budgets as budget_service
from meterline.services import quotas as quota_service
from meterline.services.alerts import StoredAlert
from meterline.services.budgets import BudgetState
from meterline.services.quotas import QuotaState
from meterline.store.accounts import get_tenant
from meterline.store.audit import Actor
from meterline.web.forms import FormError, again, change
from meterline.web.layout import show

TITLE: Final = "Budgets, quotas and alerts"
BUDGET_FIELDS: Final = ("tenant", "user", "key", "provider", "model", "amount", "currency",
                        "period", "mode", "thresholds", "timezone")
#: Alerts listed at most (newest first), as ``GET /api/alerts`` by default.
ALERT_LIMIT: Final = 100

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """A budget's state and its bar: spent + reserved as a share of the limit, and the alert
    level of that share (``info``, ``warning``, ``critical``)."""

    state: BudgetState
    share: Decimal

    @property
    def level(self) -> str:
        return level_for(self.share)

    @property
    def width(self) -> str:
        """The bar's filled part, in percent of its length (at most all of it)."""
        return f"{min(self.share, Decimal(1)) * 100:.1f}"

    @classmethod
    def of(cls, found: BudgetState) -> BudgetRow:
        limit = found.budget.limit
        return cls(found, (found.spent + found.reserved) / limit if limit else Decimal(0))


@dataclass(frozen=True, slots=True)
class LimitsView:
    budgets: list[BudgetRow]
    alerts: list[StoredAlert]
    quotas: QuotaState | None
    editing: BudgetState | None


def load(engine: Engine, tenant: str | None, edit: str | None) -> LimitsView:
    if tenant is not None:
        with engine.connect() as conn:
            get_tenant(conn, tenant)  # 404, as GET /api/budgets?tenant= gives
    budgets = budget_service.list_state(engine, tenant)
    editing = None
    if edit is not None:
        every = budgets if tenant is None else budget_service.list_state(engine)
        editing = next((b for b in every if b.id == edit), None)
        if editing is None:
            raise NotFound(f"no budget {edit!r}", budget=edit)
    alerts = alert_service.list_alerts(engine, tenant, resolved=False, limit=ALERT_LIMIT)
    quotas = quota_service.show(engine, tenant, 1) if tenant is not None else None
    return LimitsView([BudgetRow.of(b) for b in budgets], alerts, quotas, editing)


def _form_of(editing: BudgetState | None) -> dict[str, str]:
    """The budget form's values: an edited budget's own, else the API's defaults."""
    if editing is None:
        return {"period": "month", "mode": "block"}
    budget, scope = editing.budget, editing.budget.scope
    shown = editing.to_json()
    values = {"tenant": scope.tenant, "user": scope.user, "key": scope.key,
              "provider": scope.provider, "model": scope.model, "amount": shown["amount"],
              "currency": budget.currency, "period": budget.period, "mode": budget.mode,
              "thresholds": ",".join(shown["thresholds"]), "timezone": budget.timezone}
    return {name: value for name, value in values.items() if value is not None}


def _context(found: LimitsView, tenant: str | None, *, form: Mapping[str, str] | None = None,
             error: FormError | None = None) -> dict[str, Any]:
    return {"title": TITLE, "tenant": tenant, "view": found,
            "form": dict(form) if form is not None else _form_of(found.editing),
            "error": error, "back": _back(tenant)}


def _back(tenant: str | None) -> str:
    return "/limits" + (f"?{urlencode({'tenant': tenant})}" if tenant else "")


def _tenant_of(request: Request) -> str | None:
    return request.query_params.get("tenant") or None


@router.get("/limits")
async def limits_page(request: Request, tenant: str | None = None,
                      edit: str | None = None) -> Response:
    engine = state(request).engine
    chosen, editing = tenant or None, edit or None
    return await show(request, "limits.html", TITLE, lambda: load(engine, chosen, editing),
                      lambda found: _context(found, chosen))


@router.post("/limits/budgets")
async def set_budget(request: Request) -> Response:
    """Create or change a budget (``POST /api/budgets``'s service)."""
    app = state(request)
    chosen = _tenant_of(request)
    editing = request.query_params.get("edit") or None

    def work(form: dict[str, str], actor: Actor) -> BudgetState:
        return budget_service.set_budget(app.engine, form, app.config.reporting_currency,
                                         actor=actor)

    def done(made: BudgetState, form: dict[str, str]) -> Response:
        return RedirectResponse(_back(made.budget.scope.tenant), status_code=303)

    async def refused(error: FormError, form: dict[str, str]) -> Response:
        return await again(request, "limits.html", TITLE,
                           lambda: load(app.engine, chosen, editing),
                           lambda found: _context(found, chosen, form=form, error=error),
                           error.status)

    return await change(request, TITLE, BUDGET_FIELDS, work, done, refused)


@router.post("/limits/alerts/resolve")
async def resolve_alert(request: Request) -> Response:
    """Resolve an open alert (``POST /api/alerts/resolve``'s service)."""
    engine = state(request).engine
    chosen = _tenant_of(request)

    def work(form: dict[str, str], actor: Actor) -> int:
        return alert_service.resolve(engine, [form.get("id", "")], actor=actor)

    def done(count: int, form: dict[str, str]) -> Response:
        return RedirectResponse(_back(chosen), status_code=303)

    async def refused(error: FormError, form: dict[str, str]) -> Response:
        return await again(request, "limits.html", TITLE, lambda: load(engine, chosen, None),
                           lambda found: _context(found, chosen, error=error), error.status)

    return await change(request, TITLE, ("id",), work, done, refused)
