"""``/bills?cycle=&tenant=``: each tenant's bill of a cycle with its status and total (an open
one computed now, as ``GET /api/bills/{tenant}/{cycle}`` computes it); ``/bills/{tenant}/{cycle}
[?user=]``: one bill's lines and total, its exports (the admin API's, which take the same
session, in the page's language) and its status changes.

A status change (issue, pay, void) is a POST form; the first POST answers a confirmation page,
whose own POST (``confirm=yes``) changes the bill through ``services.bills.set_status`` — the
function ``POST /api/bills/{tenant}/{cycle}/status`` calls — with the session as the audit
log's actor. A change the life cycle refuses (paying an open bill) is shown on the bill's page
with the API's status and words.

Forms that change state are protected against other sites by the session cookie itself
(SameSite=Strict: another site's page never sends it) and, where the browser says where a
request comes from (``Sec-Fetch-Site``), by refusing any other origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.asgi.errors import answer as answer_of
from meterline.asgi.errors import public_message
from meterline.domain.bills import BillStatus, bill_status, parse_cycle
from meterline.errors import Forbidden, MeterlineError
from meterline.services import bills as bill_service
from meterline.services.bills import BillView
from meterline.store.accounts import get_tenant, list_tenants
from meterline.store.audit import Actor
from meterline.web.dashboard import dashboard
from meterline.web.forms import fields, same_origin, session_actor
from meterline.web.i18n import CHINESE, locale_of
from meterline.web.layout import error_page, show

router = APIRouter(include_in_schema=False)

#: The changes a page offers from each status (docs/bills.md, Life cycle).
ACTIONS: Final[Mapping[BillStatus, tuple[BillStatus, ...]]] = {
    BillStatus.OPEN: (BillStatus.ISSUED, BillStatus.VOID),
    BillStatus.ISSUED: (BillStatus.PAID, BillStatus.VOID),
    BillStatus.PAID: (),
    BillStatus.VOID: (),
}
EXPORTS: Final = ("csv", "xlsx", "focus")


# -- what every page that changes state shares (the reconciliation page too) -------------------

def this_cycle(request: Request) -> str:
    """The current month (UTC) by the app's clock: the cycle a page shows unless asked."""
    now: datetime = state(request).access.clock()
    return f"{now:%Y-%m}"


async def acting(request: Request) -> Actor | None:
    """The signed-in admin changing something, as the admin API records them (the session's
    ``session:<token name>``); None without a live session. Forbidden for a form another site
    sent (web/forms.py: its Origin names another host)."""
    if not same_origin(request):
        raise Forbidden("cross-site form refused: its Origin is not this site")
    return await session_actor(request)


def to_login() -> Response:
    return RedirectResponse("/login", status_code=303)


def refused(request: Request, template: str, context: Mapping[str, Any],
            exc: MeterlineError) -> Response:
    """The page again, the refusal on it, with the status and Retry-After the API answers."""
    answer = answer_of(exc)
    page = dashboard(request).page(request, template, context, status_code=answer.status_code)
    if "retry-after" in answer.headers:
        page.headers["retry-after"] = answer.headers["retry-after"]
    return page


def export_lang(request: Request) -> str:
    """The export's language (``lang=en|zh``) of the page's."""
    return "zh" if locale_of(request) == CHINESE else "en"


# -- the list -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CycleBills:
    """Each tenant's bill of one cycle (one tenant's when filtered)."""

    cycle: str
    tenant: str | None
    tenants: list[str]
    bills: list[BillView]


def load_cycle(engine: Engine, cycle: str, tenant: str | None) -> CycleBills:
    month = str(parse_cycle(cycle))
    with engine.connect() as conn:
        names = [t.id for t in list_tenants(conn)]
        chosen = [get_tenant(conn, tenant).id] if tenant else names  # 404, as the API
        bills = [bill_service.load(conn, name, month) for name in chosen]
    return CycleBills(month, tenant, names, bills)


def bill_url(tenant: str, cycle: str, user: str | None = None, **more: str) -> str:
    query = urlencode({**({"user": user} if user else {}), **more})
    return f"/bills/{quote(tenant, safe='')}/{quote(cycle, safe='')}" + (
        f"?{query}" if query else "")


@router.get("/bills")
async def bills_page(request: Request, cycle: str = "", tenant: str = "") -> Response:
    engine = state(request).engine
    month = cycle or this_cycle(request)
    return await show(request, "bills.html", "Bills",
                      lambda: load_cycle(engine, month, tenant or None),
                      lambda found: {"found": found, "cycle": month, "tenant": tenant,
                                     "bill_url": bill_url,
                                     "tenant_options": [(t, t) for t in found.tenants]})


# -- one bill -----------------------------------------------------------------------------------

def _bill_context(request: Request, view: BillView, *, refusal: str | None = None,
                  changed: str | None = None, confirm: str | None = None) -> dict[str, Any]:
    bill = view.bill
    cycle = str(bill.cycle)
    lang = export_lang(request)
    exports = [(kind, f"/api/bills/{quote(bill.tenant, safe='')}/{cycle}/export?" + urlencode(
        {"format": kind, "lang": lang, **({"user": bill.user} if bill.user else {})}))
               for kind in EXPORTS]
    return {"view": view, "bill": bill, "cycle": cycle, "exports": exports,
            "actions": [s.value for s in ACTIONS[bill.status]], "refusal": refusal,
            "changed": changed, "confirm": confirm, "bill_url": bill_url,
            "action_url": f"/bills/{quote(bill.tenant, safe='')}/{cycle}/status",
            "list_url": "/bills?" + urlencode({"cycle": cycle})}


@router.get("/bills/{tenant}/{cycle}")
async def bill_page(request: Request, tenant: str, cycle: str, user: str = "",
                    changed: str = "") -> Response:
    engine = state(request).engine
    done = changed if changed in {s.value for s in BillStatus} else None
    return await show(request, "bill.html", "Bill",
                      lambda: bill_service.get_bill(engine, tenant, cycle, user or None),
                      lambda view: _bill_context(request, view, changed=done))


@router.post("/bills/{tenant}/{cycle}/status")
async def change_status(request: Request, tenant: str, cycle: str) -> Response:
    """The first POST asks to confirm; the second (``confirm=yes``) changes the bill."""
    try:
        who = await acting(request)
    except MeterlineError as exc:
        return error_page(request, "Bill", exc)
    if who is None:
        return to_login()
    engine = state(request).engine
    try:
        form = await fields(request, ("status", "user", "confirm"))
        status, user = form.get("status", ""), form.get("user")
        view = await run_in_threadpool(bill_service.get_bill, engine, tenant, cycle, user)
    except MeterlineError as exc:
        return error_page(request, "Bill", exc)
    if form.get("confirm") != "yes":
        try:
            bill_status(status)  # an unknown status is refused before anything is asked
        except MeterlineError as exc:
            return refused(request, "bill.html",
                           _bill_context(request, view, refusal=public_message(exc)), exc)
        return dashboard(request).page(request, "bill.html",
                                       _bill_context(request, view, confirm=status))
    try:
        done = await run_in_threadpool(lambda: bill_service.set_status(
            engine, tenant, cycle, status, user, actor=who))
    except MeterlineError as exc:
        return refused(request, "bill.html",
                       _bill_context(request, view, refusal=public_message(exc)), exc)
    bill = done.bill
    return RedirectResponse(bill_url(bill.tenant, str(bill.cycle), bill.user,
                                     changed=bill.status.value), status_code=303)
