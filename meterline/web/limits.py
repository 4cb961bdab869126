"""``/limits[?tenant=]``: every budget with its current period (spent, reserved, remaining,
projected), and the open alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterline.api.state import state
from meterline.domain.money import format_decimal
from meterline.services import alerts as alert_service
from meterline.services import budgets as budget_service
from meterline.web.layout import field, render, table

router = APIRouter(include_in_schema=False)


@router.get("/limits")
async def limits_page(request: Request, tenant: str | None = None) -> Response:
    engine = state(request).engine
    chosen = tenant or None

    def load() -> dict[str, Any]:
        return {"budgets": budget_service.list_state(engine, chosen),
                "alerts": alert_service.list_json(engine, chosen, resolved=False)}

    def show(found: dict[str, Any]) -> str:
        form = ("<h1>Budgets and alerts</h1><form class=filters>" +
                field("tenant", "Tenant", tenant) + "<button>Show</button></form>")
        budgets = table(
            ("Scope", "Period", "Mode", "Limit", "Spent", "Reserved", "Remaining", "Projected",
             "Currency", "Overrun?"),
            ((b.scope, b.budget.period, b.budget.mode, *map(format_decimal, (
                b.budget.limit, b.spent, b.reserved, b.remaining, b.projected)),
              b.budget.currency, "yes" if b.projected_overrun else "")
             for b in found["budgets"]),
            numeric=(3, 4, 5, 6, 7))
        alerts = table(("When", "Level", "Scope", "Message"),
                       ((a["created_at"], a["level"], a["scope"], a["message"])
                        for a in found["alerts"]))
        return (form + "<h2>Budgets</h2>" + (budgets if found["budgets"] else "<p>None.</p>") +
                "<h2>Open alerts</h2>" + (alerts if found["alerts"] else "<p>None.</p>"))

    return await render(request, "Budgets and alerts", load, show)
