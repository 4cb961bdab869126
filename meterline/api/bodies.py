"""Request body limits, enforced while the body is read, before any endpoint's work.

An endpoint that reads its body whole (``request.body()``, FastAPI's body parameters) would
buffer whatever a client sends before it could check the size — unauthenticated, in the case of
``POST /login`` or of an admin endpoint whose body FastAPI parses before the admin check. So the
limit sits in front of the app: a declared ``Content-Length`` over it is refused before a byte
is read, and a body sent without one (chunked) is counted as it arrives and refused the moment
it passes the limit. The refusal is a 413 in the error table's shape, with ``connection: close``
so the server stops reading the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterline.asgi.errors import ANTHROPIC_PATHS, answer
from meterline.asgi.responses import MAX_BODY_BYTES
from meterline.errors import BodyTooLarge
from meterline.logs import request_id

#: The sign-in form holds one admin token; nothing bigger is a sign-in.
LOGIN_MAX_BODY_BYTES: Final = 16 * 1024
#: Paths with a limit of their own; every other request may send up to MAX_BODY_BYTES.
PATH_LIMITS: Final[Mapping[str, int]] = {"/login": LOGIN_MAX_BODY_BYTES}


def _refusal(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"body: larger than {limit} bytes, the limit of this endpoint",
                        field="body", limit=limit)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The body's declared length, and whether it is sent in chunks."""
    length, chunked = None, False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            with suppress(ValueError):  # the server refuses a malformed one itself
                length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked


class BodyLimit:
    """ASGI middleware refusing request bodies over their path's limit (see the module)."""

    def __init__(self, app: ASGIApp, default: int = MAX_BODY_BYTES,
                 limits: Mapping[str, int] = PATH_LIMITS) -> None:
        self.app = app
        self.default = default
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared, chunked = _framing(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, limit)
            return
        unread = chunked or bool(declared)
        received = 0
        refused = False
        started = False

        async def limited() -> Message:
            nonlocal received, refused, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _refusal(limit)
                unread = unread and bool(message.get("more_body", False))
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                # Whatever the app made of the exception (FastAPI's body parsing turns it into
                # a 400), the answer is the refusal.
                return
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    # Answered without reading the body (a request refused on its headers):
                    # the connection closes rather than the server reading the rest to reuse it.
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(scope, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        response = answer(_refusal(limit), anthropic=scope["path"] in ANTHROPIC_PATHS)
        response.headers["connection"] = "close"
        if scope["path"].startswith("/v1/"):
            # Every gateway answer names a request id (SPEC §3).
            response.headers["x-meterline-request-id"] = request_id()
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
