"""``/``: spend today, this month and in total, the last 30 days and the latest calls, for
every tenant in the reporting currency or for one tenant (``?tenant=``) in its own."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterline.api.state import state
from meterline.domain.money import ZERO, format_decimal
from meterline.services import stats as stats_service
from meterline.services.records import record_json
from meterline.services.stats import Trend
from meterline.store import ledger
from meterline.store.accounts import list_tenants
from meterline.web.layout import link, render, table

TREND_DAYS: Final = 30
LATEST_CALLS: Final = 20
BAR_HEIGHT: Final = Decimal(100)
BAR_WIDTH: Final = 12
PIXEL: Final = Decimal("0.1")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def overview(request: Request, tenant: str | None = None) -> Response:
    app = state(request)
    chosen = tenant or None

    def load() -> dict[str, Any]:
        reporting = app.config.reporting_currency
        summary = stats_service.summary(app.engine, chosen, reporting)
        trend = stats_service.trend(app.engine, chosen, reporting, TREND_DAYS)
        with app.engine.connect() as conn:
            tenants = [t.id for t in list_tenants(conn)]
            rows = ledger.list_records(conn, tenant_id=chosen, limit=LATEST_CALLS)
        return {"tenant": chosen, "tenants": tenants, "summary": summary, "trend": trend,
                "calls": [record_json(row) for row in rows]}

    return await render(request, "Overview", load, _show)


def _show(data: dict[str, Any]) -> str:
    summary = data["summary"]
    currency = summary.currency
    scope = data["tenant"] or "all tenants"
    tenants = " ".join(link("/", t, tenant=t) for t in data["tenants"])
    rate = summary.success_rate
    cards = "".join(
        f"<div class=card>{escape(label)}<b>{escape(value)}</b></div>" for label, value in (
            ("Today", f"{format_decimal(summary.today)} {currency}"),
            ("This month", f"{format_decimal(summary.month)} {currency}"),
            ("Total", f"{format_decimal(summary.total)} {currency}"),
            ("Calls", str(summary.calls)),
            ("Succeeded", f"{rate * 100:.1f} %" if rate is not None else "-")))
    calls = table(("When", "Tenant", "User", "Model", "Status", "Cost", "Currency"),
                  ((c["timestamp"], c["tenant"], c["user"], c["model"], c["status"],
                    c["cost"] or "-", c["currency"]) for c in data["calls"]), numeric=(5,))
    return (f"<h1>Spend: {escape(scope)}</h1><p>Tenants: {tenants}</p>"
            f"<div class=cards>{cards}</div><h2>Last {TREND_DAYS} days</h2>"
            f"{_chart(data['trend'])}<h2>Latest calls</h2>"
            f"{calls if data['calls'] else '<p>No calls yet.</p>'}")


def _chart(trend: Trend) -> str:
    """The daily costs as an inline SVG bar chart, and the days with calls as a table."""
    days = trend.days
    top = max((d.cost for d in days), default=ZERO) or Decimal(1)

    def height(cost: Decimal) -> Decimal:  # pixels, for drawing only
        return (max(cost, ZERO) * BAR_HEIGHT / top).quantize(PIXEL)

    bars = "".join(
        f"<rect x={i * BAR_WIDTH} y={BAR_HEIGHT - height(d.cost)} width={BAR_WIDTH - 2} "
        f"height={height(d.cost)} fill='#4a7'>"
        f"<title>{escape(d.day.isoformat())}: {escape(format_decimal(d.cost))}</title></rect>"
        for i, d in enumerate(days))
    busy = table(("Day", "Cost", "Calls"),
                 ((d.day.isoformat(), format_decimal(d.cost), d.calls)
                  for d in reversed(days) if d.calls),
                 numeric=(1, 2))
    return (f"<svg width={len(days) * BAR_WIDTH} height={BAR_HEIGHT} role=img "
            f"aria-label='daily cost'>{bars}</svg><p>Total "
            f"{escape(format_decimal(trend.total))} {escape(trend.currency)}, average "
            f"{escape(format_decimal(trend.average))} a day</p>{busy}")
