"""``/login`` (the admin token in a password field) and ``/logout``.

Signing in starts a server-side session (services/admins.py); the cookie holds the session's
signed id, never the token, and lasts as long as the session. ``/logout`` revokes the session,
so a copy of the cookie is refused too.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from meterline.api.state import state
from meterline.errors import AuthError
from meterline.services.admins import SESSION_LIFETIME
from meterline.web.dashboard import dashboard
from meterline.web.layout import COOKIE

router = APIRouter(include_in_schema=False)


def _form(request: Request, *, failed: bool = False) -> HTMLResponse:
    return dashboard(request).page(request, "login.html", {"failed": failed},
                                   status_code=401 if failed else 200, menu=False)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    # The form is URL-encoded (the browser's default), read without a multipart parser; its
    # size was bounded while it was read (api/bodies.py).
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    token = (fields.get("token") or [""])[0]
    try:
        if not token:
            raise AuthError("no token")
        cookie = await run_in_threadpool(state(request).access.start_session, token)
    except AuthError:
        return _form(request, failed=True)
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(COOKIE, cookie, max_age=int(SESSION_LIFETIME.total_seconds()),
                      httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https")
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await run_in_threadpool(state(request).access.end_session, cookie)
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer
