"""``/bills?tenant=&cycle=[&user=]``: a bill's lines and total (an open one computed now), with
its exports (the admin API's, which take the same session); ``/reconcile?cycle=``: metered
against the providers' bills."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.domain.money import format_decimal
from meterline.services import bills as bill_service
from meterline.services import reconciliation
from meterline.services.bills import BillView
from meterline.web.layout import field, link, page, render, signed_in, table

router = APIRouter(include_in_schema=False)


def _this_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


@router.get("/bills")
async def bill_page(request: Request, tenant: str | None = None, cycle: str | None = None,
                    user: str | None = None) -> Response:
    form = ("<h1>Bills</h1><form class=filters>" + field("tenant", "Tenant", tenant) +
            field("cycle", "Cycle", cycle or _this_month(), "YYYY-MM") +
            field("user", "User", user, "the tenant's own bill") + "<button>Show</button></form>")
    if not tenant:
        return page("Bills", form) if await signed_in(request) else RedirectResponse(
            "/login", status_code=303)
    engine = state(request).engine
    month = cycle or _this_month()
    return await render(
        request, "Bills", lambda: bill_service.get_bill(engine, tenant, month, user or None),
        lambda bill: form + _bill(bill))


def _bill(found: BillView) -> str:
    bill = found.bill
    exports = " ".join(
        link(f"/api/bills/{quote(bill.tenant, safe='')}/{bill.cycle}/export", label,
             format=fmt, lang=lang, user=bill.user)
        for label, fmt, lang in (("CSV", "csv", "en"), ("CSV 中文", "csv", "zh"),
                                 ("XLSX", "xlsx", "en"), ("FOCUS", "focus", "en")))
    lines = table(("Model", "Meter", "Quantity", "Unit", "Unit price", "Amount", "Status",
                   "Adjusts"),
                  ((ln.model, ln.meter, format_decimal(ln.quantity), ln.unit,
                    format_decimal(ln.unit_price), format_decimal(ln.amount), ln.status,
                    ln.adjustment_of) for ln in bill.lines),
                  numeric=(2, 4, 5))
    whose = f"{bill.tenant}" + (f" / {bill.user}" if bill.user else "")
    return (f"<h2>{escape(whose)}, {escape(str(bill.cycle))}: "
            f"{escape(format_decimal(bill.total))} {escape(bill.currency)} "
            f"({escape(bill.status.value)})</h2><p>Export: {exports}</p>{lines}")


@router.get("/reconcile")
async def reconcile_page(request: Request, cycle: str | None = None,
                         provider: str | None = None) -> Response:
    app = state(request)
    month = cycle or _this_month()
    form = ("<h1>Reconciliation</h1><form class=filters>" +
            field("cycle", "Cycle", month, "YYYY-MM") + field("provider", "Provider", provider) +
            "<button>Show</button></form>")

    def load() -> dict[str, Any]:
        return reconciliation.report(app.engine, month, provider=provider or None,
                                     reporting_currency=app.config.reporting_currency)

    def show(found: dict[str, Any]) -> str:
        rows = table(("Status", "Provider", "Model", "From", "Until", "Metered", "Billed",
                      "Difference", "%"),
                     ((r["status"], r["provider"], r["model"], r["date"], r["until"],
                       r["metered"], r["billed"], r["difference"], r["difference_pct"])
                      for r in found["rows"]), numeric=(5, 6, 7, 8))
        empty = ("<p>No metered or billed amounts in this cycle. Import a provider's bill with "
                 "<code>meterline sync --file</code>.</p>")
        return (form + f"<p>In {escape(found['currency'])}, tolerance "
                f"{escape(found['tolerance'])}</p>" + (rows if found["rows"] else empty))

    return await render(request, "Reconciliation", load, show)
