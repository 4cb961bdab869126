"""What every dashboard page shares: the session check, the page frame, escaped tables.

The session is the ``meterline_session`` cookie holding a signed session id (HttpOnly,
SameSite=Strict; services/admins.py; the admin API accepts it too). A page asked for without a
live session sends the browser to ``/login``. Every value a page shows goes through ``escape``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from meterline.api.auth import SESSION_COOKIE
from meterline.api.state import state
from meterline.asgi.errors import answer as answer_of
from meterline.asgi.errors import public_message
from meterline.errors import AuthError, MeterlineError

COOKIE: Final = SESSION_COOKIE
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;"
    "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".cards{display:flex;gap:1rem;margin:1rem 0}.card{border:1px solid #ddd;padding:.75rem 1rem;"
    "border-radius:.5rem}.card b{display:block;font-size:1.4rem}.error{color:#b00}"
    "nav a{margin-right:1rem}form.filters{margin:1rem 0}"
)
T = TypeVar("T")


def page(title: str, body: str, status_code: int = 200, *, menu: bool = True) -> HTMLResponse:
    nav = ("<nav><a href=/>Overview</a><a href=/usage>Usage</a><a href=/bills>Bills</a>"
           "<a href=/limits>Budgets</a><a href=/reconcile>Reconcile</a><form method=post "
           "action=/logout style=display:inline><button>Sign out</button></form></nav>"
           ) if menu else ""
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · "
        f"meterline</title><style>{_STYLE}</style></head><body>{nav}{body}</body></html>",
        status_code=status_code,
        headers={"cache-control": "no-store", "x-frame-options": "DENY"})


async def signed_in(request: Request) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    try:
        await run_in_threadpool(state(request).access.session, cookie)
    except AuthError:
        return False
    return True


async def render(request: Request, title: str, load: Callable[[], T],
                 show: Callable[[T], str]) -> Response:
    """The page of what ``load`` finds (in a worker thread), or the error the API would give,
    as a page; without a session, the way to the login page."""
    try:
        # Sessions live in the database: while it is down this is the error page, not a 500
        # or a JSON answer.
        if not await signed_in(request):
            return RedirectResponse("/login", status_code=303)
        found = await run_in_threadpool(load)
    except MeterlineError as exc:
        # The API's answer as a page: the same status, words and Retry-After.
        answer = answer_of(exc)
        shown = page("Error", f"<h1>{escape(title)}</h1><p class=error>"
                              f"{escape(public_message(exc))}</p>",
                     status_code=answer.status_code)
        if "retry-after" in answer.headers:
            shown.headers["retry-after"] = answer.headers["retry-after"]
        return shown
    return page(title, show(found))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
          numeric: Sequence[int] = ()) -> str:
    """An HTML table of escaped text; ``numeric``: the columns aligned as numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td{' class=n' if i in numeric else ''}>{escape('' if v is None else str(v))}"
            "</td>" for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def link(path: str, text: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"<a href='{escape(path + ('?' + query if query else ''))}'>{escape(text)}</a>"


def field(name: str, label: str, value: str | None, placeholder: str = "") -> str:
    return (f"<label>{escape(label)} <input name={name} value='{escape(value or '')}' "
            f"placeholder='{escape(placeholder)}'></label> ")
