"""How a serving process logs: as text (uvicorn's setup, as it always was) or as JSON lines
(``log_format = "json"``), every line written while a request is served carrying its id.

The id is the gateway's ``x-meterline-request-id``: ``RequestContext`` makes it as a request
arrives and keeps it in a context variable, which every task and thread-pool call of that
request inherits; the gateway records the call under the same id, and every answer (the admin
API's too) names it, so a log line leads to the call and the answer to the log lines.

Logging is set up by ``meterline serve`` (``configure``, and uvicorn applies the same
``logging_config`` in each worker it starts), never at import time.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

from meterline.config import LOG_FORMATS
from meterline.services.metering import new_request_id

HEADER = "x-meterline-request-id"
_HEADER = HEADER.encode()

REQUEST_ID: ContextVar[str | None] = ContextVar("meterline_request_id", default=None)


def request_id() -> str:
    """The id of the request being served; a new one outside any request."""
    return REQUEST_ID.get() or new_request_id()


class RequestContext:
    """ASGI middleware: a request id per HTTP request, for its log lines and its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        made = new_request_id()
        token = REQUEST_ID.set(made)

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                if not any(name == _HEADER for name, _ in headers):  # lower case (ASGI)
                    message = {**message, "headers": [*headers, (_HEADER, made.encode())]}
            await send(message)

        # Left set when the app raises: the server-error handler that logs the exception runs
        # outside this middleware, in the same task, and its line should name the request too.
        # The request's task, and its copy of the context, end with the request.
        await self.app(scope, receive, named)
        REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id (in
    a request), exception (with one); uvicorn's access lines add client, method, path, status."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = REQUEST_ID.get()
        if current is not None:
            entry["request_id"] = current
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5:
            client, method, path, _, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # text orjson refuses (lone surrogates): escaped instead
            return json.dumps(entry, default=str)


def logging_config(log_format: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a serving process, for uvicorn's ``log_config``
    (applied again in each worker process it starts). Text is uvicorn's own setup, unchanged;
    JSON sends every line, uvicorn's access lines too, to stderr (stdout keeps the lines
    ``serve`` prints for a person: the address, a new admin token)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: not one of {', '.join(LOG_FORMATS)}")
    if log_format == "text":
        return copy.deepcopy(LOGGING_CONFIG)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "meterline.logs.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                              "stream": "ext://sys.stderr"}},
        # What text mode shows (Python's last-resort handler shows warnings and worse).
        "root": {"handlers": ["json"], "level": "WARNING"},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }


def configure(log_format: str) -> None:
    """Set this process's logging up (``meterline serve``, before the app is built)."""
    logging.config.dictConfig(logging_config(log_format))
