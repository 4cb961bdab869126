"""What the dashboard's forms that change something share (budgets, alerts, keys, prices).

A change is a ``POST`` of a URL-encoded form, made by the same service function the admin API
calls, with the signed-in session as the actor (``session:<admin token name>`` in the audit
log, with the request's id), so a change made on a page is audited as one made through the API.

Cross-site requests: the session cookie is ``SameSite=Strict``, so a page of another site
cannot send it with a form it submits (the browser leaves the cookie out and the page answers
with the way to ``/login``). As a second guard for browsers or proxies that get SameSite wrong,
a ``POST`` whose ``Origin`` (or, without one, ``Referer``) names another host than the one it
was sent to is refused (403) before anything is read or done. A request with neither header
(a script, not a browser form) is judged by the cookie alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meterline.api.state import state
from meterline.asgi.errors import public_message, status_of
from meterline.errors import AuthError, Forbidden, InvalidInput, MeterlineError
from meterline.logs import request_id
from meterline.store.audit import SESSION_PREFIX, Actor
from meterline.web.dashboard import dashboard
from meterline.web.layout import COOKIE, error_page

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
#: No dashboard form has more fields than this.
MAX_FIELDS: Final = 40


def same_origin(request: Request) -> bool:
    """Whether the ``Origin`` (else the ``Referer``) of a request names the host it was sent
    to; True when it has neither."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":  # a sandboxed or privacy-stripped page: not one of ours
        return False
    return urlsplit(claimed).netloc.lower() == request.headers.get("host", "").lower()


async def session_actor(request: Request) -> Actor | None:
    """The actor of the request's live dashboard session, None without one."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        token = await run_in_threadpool(state(request).access.session, cookie)
    except AuthError:
        return None
    return Actor(SESSION_PREFIX + token.name, request_id())


async def fields(request: Request, allowed: Collection[str]) -> dict[str, str]:
    """The form's fields (first value of each, spaces around it stripped); empty ones left out,
    as a JSON body leaves out what it does not give. A field no form of the page has is
    refused by name, as the API refuses an unknown field."""
    body = await request.body()
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("body: not a form of this page", field="body") from None
    unknown = sorted(name for name in parsed if name not in allowed)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field", field=unknown[0])
    found = {name: values[0].strip() for name, values in parsed.items()}
    return {name: value for name, value in found.items() if value}


class FormError:
    """A refused change, for its form: the API's status and message, and the field named."""

    def __init__(self, exc: MeterlineError) -> None:
        self.status = status_of(exc)
        self.message = public_message(exc)
        self.field: str | None = getattr(exc, "field", None) or exc.context.get("field")


async def change(request: Request, title: str, allowed: Collection[str],
                 work: Callable[[dict[str, str], Actor], T],
                 done: Callable[[T, dict[str, str]], Response],
                 refused: Callable[[FormError, dict[str, str]], Awaitable[Response]],
                 ) -> Response:
    """The frame of a form's ``POST``: refused from another site (403), without a session the
    way to ``/login``; ``work(form, actor)`` in a worker thread; its result to ``done``, an
    error of the form's input (or of what it names) to ``refused``, to show on the form."""
    if not same_origin(request):
        return error_page(request, title, Forbidden(
            "cross-site form refused: its Origin is not this site"))
    try:
        actor = await session_actor(request)
    except MeterlineError as exc:  # the database is down: the API's answer, as a page
        return error_page(request, title, exc)
    if actor is None:
        return RedirectResponse("/login", status_code=303)
    form: dict[str, str] = {}
    try:
        form = await fields(request, allowed)
        result = await run_in_threadpool(work, form, actor)
    except MeterlineError as exc:
        if status_of(exc) in (400, 404, 409, 422):
            return await refused(FormError(exc), form)
        return error_page(request, title, exc)
    return done(result, form)


async def again(request: Request, template: str, title: str, load: Callable[[], T],
                context: Callable[[T], Mapping[str, Any]], status_code: int) -> Response:
    """The page of a refused form, shown again with ``status_code`` (the API's): ``load``
    in a worker thread, its own error as the error page."""
    try:
        found = await run_in_threadpool(load)
    except MeterlineError as exc:
        return error_page(request, title, exc)
    return dashboard(request).page(request, template, context(found), status_code=status_code)
