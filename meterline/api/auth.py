"""Who is calling: a tenant's API key or the admin token."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from meterline.api.state import state
from meterline.errors import AuthError
from meterline.store import accounts
from meterline.store.accounts import ApiKey


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
    secret = presented_secret(request) or request.cookies.get("meterline_session")
    if not secret:
        raise AuthError("missing admin token: send Authorization: Bearer <admin token>")
    if not await _is_admin(request, secret):
        raise AuthError("invalid admin token")


async def _is_admin(request: Request, secret: str) -> bool:
    app_state = state(request)

    def check() -> bool:
        return app_state.admin_token_valid(secret)

    return await run_in_threadpool(check)


async def key_or_admin(request: Request) -> ApiKey | None:
    """A tenant key, or None when the caller holds the admin token."""
    secret = presented_secret(request)
    if secret and await _is_admin(request, secret):
        return None
    return await tenant_key(request)
