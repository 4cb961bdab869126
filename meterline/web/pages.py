"""The dashboard: server-rendered pages over the same services as the admin API (SPEC §2).

``/login`` takes the admin token in a password field and keeps the session in an HttpOnly,
SameSite=Strict cookie (``meterline_session``, which the admin API accepts too); ``/logout``
ends it. ``/`` shows the spend summary, the last 30 days and the latest calls, for every tenant
in the reporting currency or for one tenant (``?tenant=``) in its own. Pages need no script;
every value is escaped. A page asked for without a session sends the browser to the login page.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from meterline.api.errors import status_of
from meterline.api.state import state
from meterline.domain.money import ZERO
from meterline.errors import MeterlineError
from meterline.services import stats as stats_service
from meterline.services.records import record_json
from meterline.store import ledger
from meterline.store.accounts import list_tenants

COOKIE: Final = "meterline_session"
TREND_DAYS: Final = 30
LATEST_CALLS: Final = 20
BAR_HEIGHT: Final = Decimal(100)
PIXEL: Final = Decimal("0.1")
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;"
    "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".cards{display:flex;gap:1rem;margin:1rem 0}.card{border:1px solid #ddd;padding:.75rem 1rem;"
    "border-radius:.5rem}.card b{display:block;font-size:1.4rem}.error{color:#b00}"
    "nav a{margin-right:1rem}"
)

router = APIRouter(include_in_schema=False)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · "
        f"meterline</title><style>{_STYLE}</style></head><body>{body}</body></html>",
        status_code=status_code,
        headers={"cache-control": "no-store", "x-frame-options": "DENY"})


def _login_form(message: str = "") -> str:
    error = f"<p class=error>{escape(message)}</p>" if message else ""
    return ("<h1>meterline</h1>" + error +
            "<form method=post action=/login><label>Admin token "
            "<input type=password name=token autocomplete=current-password required autofocus>"
            "</label> <button>Sign in</button></form>")


@router.get("/login")
async def login_page() -> HTMLResponse:
    return _page("Sign in", _login_form())


@router.post("/login")
async def login(request: Request) -> Response:
    # The form is URL-encoded (the browser's default), read without a multipart parser.
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    token = (fields.get("token") or [""])[0]
    if not token or not await run_in_threadpool(state(request).admin_token_valid, token):
        return _page("Sign in", _login_form("That is not an admin token."), status_code=401)
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https")
    return answer


@router.post("/logout")
async def logout() -> Response:
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer


@router.get("/")
async def overview(request: Request, tenant: str | None = None) -> Response:
    token = request.cookies.get(COOKIE)
    app = state(request)
    if not token or not await run_in_threadpool(app.admin_token_valid, token):
        return RedirectResponse("/login", status_code=303)
    try:
        data = await run_in_threadpool(_overview, request, tenant or None)
    except MeterlineError as exc:
        return _page("Error", f"<p class=error>{escape(exc.message)}</p><p><a href=/>Back</a>"
                     "</p>", status_code=status_of(exc))
    return _page("Overview", _render(data))


def _overview(request: Request, tenant: str | None) -> dict[str, Any]:
    app = state(request)
    reporting = app.config.reporting_currency
    summary = stats_service.summary(app.engine, tenant, reporting)
    trend = stats_service.trend(app.engine, tenant, reporting, TREND_DAYS)
    with app.engine.connect() as conn:
        tenants = [t.id for t in list_tenants(conn)]
        rows = ledger.list_records(conn, tenant_id=tenant, limit=LATEST_CALLS)
    return {"tenant": tenant, "tenants": tenants, "summary": summary, "trend": trend,
            "calls": [record_json(row) for row in rows]}


def _render(data: dict[str, Any]) -> str:
    summary, trend = data["summary"], data["trend"]
    currency = escape(summary["currency"])
    scope = escape(data["tenant"]) if data["tenant"] else "all tenants"
    links = " ".join(f"<a href='/?{escape(urlencode({'tenant': t}))}'>{escape(t)}</a>"
                     for t in data["tenants"])
    rate = summary["success_rate"]
    cards = "".join(
        f"<div class=card>{label}<b>{value}</b></div>" for label, value in (
            ("Today", f"{escape(summary['today'])} {currency}"),
            ("This month", f"{escape(summary['month'])} {currency}"),
            ("Total", f"{escape(summary['total'])} {currency}"),
            ("Calls", escape(str(summary["calls"]))),
            ("Succeeded", f"{rate * 100:.1f} %" if rate is not None else "-")))
    return (
        f"<nav><a href=/>All tenants</a>{links}"
        "<form method=post action=/logout style=display:inline><button>Sign out</button>"
        f"</form></nav><h1>Spend: {scope}</h1><div class=cards>{cards}</div>"
        f"<h2>Last {TREND_DAYS} days</h2>{_chart(trend)}"
        f"<h2>Latest calls</h2>{_calls(data['calls'])}"
    )


def _chart(trend: dict[str, Any]) -> str:
    """The daily costs as an inline SVG bar chart, and the same numbers as a table."""
    days = trend["days"]
    top = max((Decimal(d["cost"]) for d in days), default=ZERO) or Decimal(1)
    width = 12

    def height(cost: str) -> Decimal:  # pixels, for drawing only
        return (max(Decimal(cost), ZERO) * BAR_HEIGHT / top).quantize(PIXEL)

    bars = "".join(
        f"<rect x={i * width} y={BAR_HEIGHT - height(d['cost'])} width={width - 2} "
        f"height={height(d['cost'])} fill='#4a7'>"
        f"<title>{escape(d['date'])}: {escape(d['cost'])}</title></rect>"
        for i, d in enumerate(days))
    rows = "".join(f"<tr><td>{escape(d['date'])}</td><td class=n>{escape(d['cost'])}</td>"
                   f"<td class=n>{d['calls']}</td></tr>" for d in reversed(days) if d["calls"])
    currency = escape(trend["currency"])
    return (f"<svg width={len(days) * width} height={BAR_HEIGHT} role=img "
            f"aria-label='daily cost'>{bars}</svg><p>Total {escape(trend['total'])} "
            f"{currency}, average {escape(trend['average'])} a day</p><table><tr><th>Day</th>"
            f"<th>Cost</th><th>Calls</th></tr>{rows}</table>")


def _calls(calls: list[dict[str, Any]]) -> str:
    if not calls:
        return "<p>No calls yet.</p>"
    rows = "".join(
        f"<tr><td>{escape(c['timestamp'])}</td><td>{escape(c['tenant'])}</td>"
        f"<td>{escape(c.get('user') or '')}</td><td>{escape(c['model'])}</td>"
        f"<td>{escape(c['status'])}</td><td class=n>{escape(c['cost'] or '-')}</td>"
        f"<td>{escape(c['currency'] or '')}</td></tr>" for c in calls)
    return ("<table><tr><th>When</th><th>Tenant</th><th>User</th><th>Model</th><th>Status</th>"
            f"<th>Cost</th><th>Currency</th></tr>{rows}</table>")
