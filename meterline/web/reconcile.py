"""``/reconcile?cycle=&provider=[&run=]``: what meterline metered against what the providers
billed, per provider and model (``services.reconciliation.report``, what ``GET /api/reconcile``
answers), each differing row with its likely causes; the providers' latest balances
(``GET /api/balances``); the recent sync runs (``GET /api/sync``); and the "sync cloud bills"
buttons.

Each configured ``[[bill_sources]]`` account has a button: a POST form to
``/reconcile/sync``, which starts a sync as ``POST /api/sync`` does (api/sync.py
``begin_sync``: in the background, the session as the audit log's actor) and sends the browser
back to the page with ``run=<id>``. The page shows that run; while it runs, static/sync.js
polls ``GET /api/sync/{id}`` (the session cookie is the admin API's too) and shows its phase
and requests, then its outcome, and reloads the page's content. Without script the page
refreshes itself until the run is over. With no bill source configured the page says how to
configure one; a provider's bill file can always be imported (``/reconcile/import``, what
``POST /api/provider-bills`` does).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.api.sync import begin_sync
from meterline.asgi.errors import public_message
from meterline.billing import runs
from meterline.config import Config
from meterline.errors import InvalidInput, MeterlineError
from meterline.providers.bill_files import FORMATS as FILE_FORMATS
from meterline.services import reconciliation
from meterline.services.reconciliation import Report
from meterline.store.provider_bills import StoredBalance
from meterline.store.sync_runs import Run
from meterline.web.bills import acting, refused, this_cycle, to_login
from meterline.web.forms import fields
from meterline.web.layout import error_page, show

router = APIRouter(include_in_schema=False)

#: Sync runs the page lists, newest first.
RECENT_RUNS: Final = 10


@dataclass(frozen=True, slots=True)
class Source:
    """A configured ``[[bill_sources]]`` account (its credentials never leave the config)."""

    provider: str
    account: str
    files_as: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    report: Report
    balances: list[StoredBalance]
    runs: list[Run]
    run: Run | None
    sources: list[Source]
    providers: list[str]


def _sources(config: Config) -> list[Source]:
    return [Source(s.provider, s.account, s.name or s.provider) for s in config.bill_sources]


def load(request: Request, cycle: str, provider: str | None, run: str | None) -> Reconciliation:
    app = state(request)
    run_id = _run_id(run)
    found = reconciliation.report(app.engine, cycle, provider=provider,
                                  reporting_currency=app.config.reporting_currency,
                                  book=app.metering.book)
    balances = runs.balances(app.engine)
    recent = runs.history(app.engine, limit=RECENT_RUNS)
    shown = runs.one(app.engine, run_id) if run_id is not None else None
    sources = _sources(app.config)
    names = {p.name for p in app.config.providers} | {s.files_as for s in sources} | {
        row.provider for row in found.rows} | ({provider} if provider else set())
    return Reconciliation(found, balances, recent, shown, sources, sorted(names))


def _run_id(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) < 2**63:
        raise InvalidInput("run: a sync run's id", field="run")
    return int(value)


def _context(found: Reconciliation, cycle: str, provider: str,
             refusal: str | None = None, imported: str | None = None) -> dict[str, Any]:
    return {"found": found, "report": found.report, "cycle": cycle, "provider": provider,
            "provider_options": [(p, p) for p in found.providers], "refusal": refusal,
            "imported": imported, "formats": FILE_FORMATS}


def page_url(cycle: str, provider: str | None = None, **more: str) -> str:
    return "/reconcile?" + urlencode({"cycle": cycle, **({"provider": provider} if provider
                                                          else {}), **more})


@router.get("/reconcile")
async def reconcile_page(request: Request, cycle: str = "", provider: str = "", run: str = "",
                         imported: str = "") -> Response:
    month = cycle or this_cycle(request)
    shown_import = imported if imported.isdigit() else None
    return await show(request, "reconcile.html", "Reconciliation",
                      lambda: load(request, month, provider or None, run or None),
                      lambda found: _context(found, month, provider,
                                             imported=shown_import))


async def _refused(request: Request, exc: MeterlineError, cycle: str, provider: str) -> Response:
    """The page again with the refusal on it, or the error page when the page itself fails."""
    try:
        found = await run_in_threadpool(load, request, cycle, provider or None, None)
    except MeterlineError:
        return error_page(request, "Reconciliation", exc)
    return refused(request, "reconcile.html",
                   _context(found, cycle, provider, refusal=public_message(exc)), exc)


@router.post("/reconcile/sync")
async def sync(request: Request) -> Response:
    """The "sync cloud bills" button: a run begun as ``POST /api/sync`` begins one, the page
    again showing it."""
    try:
        who = await acting(request)
    except MeterlineError as exc:
        return error_page(request, "Reconciliation", exc)
    if who is None:
        return to_login()
    try:
        form = await fields(request, ("provider", "account", "cycle", "shown"))
    except MeterlineError as exc:
        return error_page(request, "Reconciliation", exc)
    cycle = form.get("cycle") or this_cycle(request)
    shown = form.get("shown", "")
    try:
        found, work = await begin_sync(request, form.get("provider", ""),
                                       form.get("account") or None, cycle, who)
    except MeterlineError as exc:
        return await _refused(request, exc, cycle, shown)
    return RedirectResponse(page_url(cycle, shown or None, run=str(found.id)),
                            status_code=303, background=work)


def _upload(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (a file upload), by name."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInput("file: send the form as multipart/form-data", field="file")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        raise InvalidInput("file: not a form upload", field="file")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes) and name not in fields:
            fields[name] = payload
    return fields


@router.post("/reconcile/import")
async def import_file(request: Request) -> Response:
    """A provider's bill file, stored as ``POST /api/provider-bills`` stores it."""
    try:
        who = await acting(request)
    except MeterlineError as exc:
        return error_page(request, "Reconciliation", exc)
    if who is None:
        return to_login()
    body = await request.body()
    cycle = this_cycle(request)
    try:
        fields = _upload(request.headers.get("content-type", ""), body)
        cycle = fields.get("cycle", b"").decode("utf-8", "replace") or cycle
        file_format = fields.get("format", b"focus").decode("utf-8", "replace") or "focus"
        provider = fields.get("provider", b"").decode("utf-8", "replace").strip() or None
        raw = fields.get("file", b"")
        if not raw.strip():
            raise InvalidInput("file: choose a bill file", field="file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("file: a bill file in UTF-8", field="file") from None
        summary = await run_in_threadpool(lambda: reconciliation.import_bill(
            state(request).engine, text, file_format, provider, actor=who))
    except MeterlineError as exc:
        return await _refused(request, exc, cycle, "")
    first: date = summary.first
    return RedirectResponse(page_url(f"{first:%Y-%m}", imported=str(summary.lines)),
                            status_code=303)
