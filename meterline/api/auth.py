"""Who is calling: a tenant's API key, an admin token or a dashboard session, a scraper."""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from meterline.api.state import state
from meterline.config import Secret
from meterline.errors import AuthError
from meterline.logs import request_id
from meterline.store import accounts
from meterline.store.accounts import ApiKey
from meterline.store.audit import SESSION_PREFIX, Actor

#: The dashboard's session cookie (services/admins.py); the admin API takes it too.
SESSION_COOKIE = "meterline_session"


def presented_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def tenant_key(request: Request) -> ApiKey:
    secret = presented_secret(request)
    if not secret:
        raise AuthError("missing API key: send Authorization: Bearer <key> or x-api-key")
    engine = state(request).engine

    def lookup() -> ApiKey:
        with engine.connect() as conn:
            return accounts.authenticate_key(conn, secret)

    return await run_in_threadpool(lookup)


async def admin(request: Request) -> None:
    """An admin token (``Authorization: Bearer`` or ``x-api-key``), else a dashboard session.
    Who it is goes to ``request.state.actor`` (read with ``actor``), for the audit log."""
    secret = presented_secret(request)
    access = state(request).access
    if secret:
        name = (await run_in_threadpool(access.authenticate, secret)).name
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthError("missing admin token: send Authorization: Bearer <admin token>")
        name = SESSION_PREFIX + (await run_in_threadpool(access.session, cookie)).name
    # The request's own id (also in its answer's x-meterline-request-id and its log lines).
    request.state.actor = Actor(name, request_id())


def actor(request: Request) -> Actor:
    """The admin making a request of a router guarded by ``admin`` (which set it)."""
    found: Actor = request.state.actor
    return found


async def _is_admin(request: Request, secret: str) -> bool:
    try:
        await run_in_threadpool(state(request).access.authenticate, secret)
    except AuthError:
        return False
    return True


async def metrics_reader(request: Request) -> None:
    """``/metrics``: the metrics token (setting ``metrics_token``), compared in memory so that a
    scraper keeps reading through a database outage, or any admin token."""
    secret = presented_secret(request)
    if not secret:
        raise AuthError("missing token: send Authorization: Bearer <metrics token or admin "
                        "token>")
    expected = getattr(state(request).config, "metrics_token", None)
    if isinstance(expected, Secret) and hmac.compare_digest(secret.encode(),
                                                            expected.reveal().encode()):
        return
    if not await _is_admin(request, secret):
        raise AuthError("invalid metrics token or admin token")


async def key_or_admin(request: Request) -> ApiKey | None:
    """A tenant key, or None when the caller holds the admin token."""
    secret = presented_secret(request)
    if secret and await _is_admin(request, secret):
        return None
    return await tenant_key(request)
