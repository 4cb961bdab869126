"""The one table that maps meterline errors to HTTP answers.

Every answer has OpenAI's error shape ``{"error": {"message", "type", "code"}}`` plus ``field``
where the error names one. Anything unexpected becomes a 500 without internals in the body; a
database error is never one (503 ``store_unavailable`` with ``Retry-After``: the engine turns an
outage into StoreError, and a database error of any other kind that reaches this table is
answered the same way), and the driver's words go to the log, never into the answer.
"""

from __future__ import annotations

import logging
import sqlite3
from decimal import DecimalException
from typing import Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from meterline.asgi.responses import JsonResponse
from meterline.errors import (
    AuthError,
    BodyTooLarge,
    Conflict,
    Forbidden,
    FxRateMissing,
    InvalidInput,
    LimitExceeded,
    MeterlineError,
    NotFound,
    RateLimited,
    StoreError,
    UpstreamError,
    UpstreamTimeout,
)
from meterline.logs import HEADER, request_id
from meterline.store.engine import RETRY_AFTER_SECONDS

log = logging.getLogger("meterline.api")

#: Errors of the database layer, whichever library raised them.
DATABASE_ERRORS: Final = (SQLAlchemyError, psycopg.Error, sqlite3.Error)

#: error class -> (HTTP status, error type); the first matching class in order wins.
STATUS: Final[list[tuple[type[MeterlineError], int, str]]] = [
    (BodyTooLarge, 413, "invalid_request_error"),
    (InvalidInput, 400, "invalid_request_error"),
    (AuthError, 401, "authentication_error"),
    (Forbidden, 403, "permission_error"),
    (LimitExceeded, 402, "insufficient_quota"),
    (RateLimited, 429, "rate_limit_error"),
    (UpstreamTimeout, 504, "api_error"),
    (UpstreamError, 502, "api_error"),
    (NotFound, 404, "not_found_error"),
    (Conflict, 409, "conflict_error"),
    (FxRateMissing, 422, "invalid_request_error"),
    (StoreError, 503, "service_unavailable"),
]


def error_body(message: str, type_: str, code: str, field: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"message": message, "type": type_, "code": code}
    if field:
        error["field"] = field
    return {"error": error}


#: Paths whose clients speak Anthropic's wire format, so errors take Anthropic's shape.
ANTHROPIC_PATHS = ("/v1/messages",)


def status_of(exc: MeterlineError) -> int:
    """The HTTP status the table gives an error (500 for one it does not name)."""
    return next((status for cls, status, _ in STATUS if isinstance(exc, cls)), 500)


def store_unavailable(exc: BaseException) -> StoreError:
    """A database error that reached the HTTP boundary untranslated (not an outage: a missing
    table, a failed statement), as the StoreError it is answered with."""
    log.error("database error: %s", exc, exc_info=exc)
    return StoreError(f"database error: {exc}", retry_after=RETRY_AFTER_SECONDS,
                      public=f"the database failed ({exc.__class__.__name__}); the server log "
                             "says why")


def public_message(exc: MeterlineError) -> str:
    """What an answer says: a StoreError's message may carry the driver's words, which are for
    the log only (see StoreError)."""
    if not isinstance(exc, StoreError):
        return exc.message
    public = exc.context.get("public")
    if isinstance(public, str):
        return public
    if isinstance(exc.__cause__, DATABASE_ERRORS):
        return f"the database failed ({exc.__cause__.__class__.__name__}); retry later"
    return exc.message


def answer(exc: MeterlineError, *, anthropic: bool = False) -> JsonResponse:
    for cls, status, type_ in STATUS:
        if isinstance(exc, cls):
            field = exc.context.get("field")
            if isinstance(exc, StoreError):
                log.warning("store unavailable: %s", exc.message)
            body = error_body(public_message(exc), type_, exc.code, field)
            if "candidates" in exc.context:
                body["error"]["candidates"] = exc.context["candidates"]  # type: ignore[index]
            if anthropic:
                body = {"type": "error", **body}
            retry_after = exc.context.get("retry_after")
            if retry_after is None and isinstance(exc, StoreError):
                retry_after = RETRY_AFTER_SECONDS
            headers = {"retry-after": str(retry_after)} if retry_after is not None else None
            return JsonResponse(body, status_code=status, headers=headers)
    log.error("unmapped meterline error: %r", exc)
    return JsonResponse(error_body("internal error", "api_error", "internal_error"), 500)


def install(app: FastAPI) -> None:
    async def on_meterline(request: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, MeterlineError)
        return answer(exc, anthropic=request.url.path in ANTHROPIC_PATHS)

    async def on_validation(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return JsonResponse(error_body(message, "invalid_request_error", "invalid_request",
                                         where or None), status_code=400)

    async def on_http(request: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error")
        body = error_body(str(exc.detail), "invalid_request_error", code)
        if request.url.path in ANTHROPIC_PATHS:  # e.g. a 405: Anthropic's SDKs read their shape
            body = {"type": "error", **body}
        return JsonResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_data_error(_: Request, exc: Exception) -> JsonResponse:
        # The database refused a value the validation let through (a NUL byte, an over-long
        # string): still the client's input, so a 400, without the database's wording.
        log.warning("database refused a value: %s", exc)
        return JsonResponse(error_body("a value in the request is not storable (too long, "
                                       "or contains a NUL character)", "invalid_request_error",
                                       "invalid_request"), status_code=400)

    async def on_database(request: Request, exc: Exception) -> JsonResponse:
        return answer(store_unavailable(exc), anthropic=request.url.path in ANTHROPIC_PATHS)

    async def on_unexpected(_: Request, exc: Exception) -> JsonResponse:
        log.exception("unexpected error", exc_info=exc)
        # Sent outside meterline.logs.RequestContext, which names every other answer.
        return JsonResponse(error_body("internal error", "api_error", "internal_error"), 500,
                            headers={HEADER: request_id()})

    app.add_exception_handler(MeterlineError, on_meterline)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    async def on_decimal(_: Request, exc: Exception) -> JsonResponse:
        # Money arithmetic traps anything inexact instead of rounding; inputs are bounded so
        # that it cannot happen, and should one slip through, it is still the input's fault.
        log.warning("decimal arithmetic refused a value: %r", exc)
        return JsonResponse(error_body("a number in the request is out of the supported range",
                                       "invalid_request_error", "invalid_request"),
                            status_code=400)

    app.add_exception_handler(DataError, on_data_error)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, on_database)
    app.add_exception_handler(DecimalException, on_decimal)
    app.add_exception_handler(Exception, on_unexpected)
