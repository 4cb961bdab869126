"""The gateway's proxied calls, served without the framework's per-request layers.

A proxied POST (``/v1/chat/completions`` and the rest) is the one request a gateway serves by
the thousand a second, and between the server and its endpoint the framework put five more
layers: the exception middleware, an exit-stack middleware, the router's walk, the route's
request wrapper and its exception wrapper, each an extra coroutine (and a wrapped ``send``) per
call. Measured on a plain call at 32 connections, about a sixth of the event loop's time
(docs/decisions.md, issue 17). ``ProxiedCalls`` sits innermost of the app's own middleware
(inside the request context and the body limit, whose guarantees hold unchanged) and hands
those POSTs straight to the very endpoint functions the router would have called; everything
else goes on through the framework.

Errors are answered as the framework would answer them: an exception the endpoint raises is
looked up in the app's exception handlers (the one error table, meterline/asgi/errors.py), and
one no handler takes goes on to the server-error layer outside, which answers 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HasHandlers(Protocol):
    """What ``ProxiedCalls`` reads its exception handlers from (the FastAPI app)."""

    @property
    def exception_handlers(self) -> Mapping[Any, Any]: ...


class ProxiedCalls:
    """ASGI middleware: POSTs to ``endpoints``' paths go to their endpoint directly (see the
    module); the app's exception handlers are read from ``owner`` when the middleware stack
    is built, after every handler was installed."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, Endpoint],
                 owner: HasHandlers) -> None:
        self.app = app
        # Paths with parameters (Gemini's ``/v1beta/models/{model:path}:{action}``) need the
        # router to match them and fill ``path_params``: they are left to it.
        self.endpoints = {path: endpoint for path, endpoint in endpoints.items()
                          if "{" not in path}
        # Status-code keys and the catch-all (500 / Exception) belong to the layers outside.
        self.handlers: dict[type, Handler] = {
            kind: handler for kind, handler in owner.exception_handlers.items()
            if isinstance(kind, type) and kind is not Exception}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            found = self.handlers.get(kind)
            if found is not None:
                return found
        return None
