"""What every dashboard page handler shares: the session check and the load-then-show frame
that turns an error into the page the API's answer would be.

The session is the ``meterline_session`` cookie holding a signed session id (HttpOnly,
SameSite=Strict; services/admins.py; the admin API accepts it too). A page asked for without a
live session sends the browser to ``/login``.

``page``/``render``/``table``/``link``/``field`` frame HTML written in Python (the bills,
budgets and reconciliation pages, until they get templates of their own): every value goes
through ``escape``, and the result is shown inside ``base.html``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from meterline.api.auth import SESSION_COOKIE
from meterline.api.state import state
from meterline.asgi.errors import answer as answer_of
from meterline.asgi.errors import public_message
from meterline.errors import AuthError, MeterlineError
from meterline.web.dashboard import dashboard

COOKIE: Final = SESSION_COOKIE
T = TypeVar("T")


async def signed_in(request: Request) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    try:
        await run_in_threadpool(state(request).access.session, cookie)
    except AuthError:
        return False
    return True


def error_page(request: Request, title: str, exc: MeterlineError) -> HTMLResponse:
    """The API's answer to ``exc`` as a page: the same status, words and Retry-After."""
    answer = answer_of(exc)
    shown = dashboard(request).page(request, "error.html",
                                    {"title": title, "message": public_message(exc)},
                                    status_code=answer.status_code)
    if "retry-after" in answer.headers:
        shown.headers["retry-after"] = answer.headers["retry-after"]
    return shown


async def show(request: Request, template: str, title: str, load: Callable[[], T],
               context: Callable[[T], Mapping[str, Any]]) -> Response:
    """``template`` with the ``context`` of what ``load`` finds (in a worker thread); the
    error the API would give, as a page; without a session, the way to the login page."""
    try:
        # Sessions live in the database: while it is down this is the error page, not a 500
        # or a JSON answer.
        if not await signed_in(request):
            return RedirectResponse("/login", status_code=303)
        found = await run_in_threadpool(load)
    except MeterlineError as exc:
        return error_page(request, title, exc)
    return dashboard(request).page(request, template, context(found))


def page(request: Request, title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """HTML written in Python (escaped by its writer) inside the dashboard's frame."""
    return dashboard(request).page(request, "legacy.html",
                                   {"title": title, "body": Markup(body)},
                                   status_code=status_code)


async def render(request: Request, title: str, load: Callable[[], T],
                 show_found: Callable[[T], str]) -> Response:
    """:func:`show` for a page written in Python: ``show_found`` returns its escaped HTML."""
    return await show(request, "legacy.html", title, load,
                      lambda found: {"title": title, "body": Markup(show_found(found))})


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
