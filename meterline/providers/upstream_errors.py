"""The human message inside an upstream's error answer, for records and for the client's 502.

Shapes understood (first match wins):

* OpenAI and compatibles   ``{"error": {"message", "type", "code"}}``
* Anthropic                ``{"type": "error", "error": {"type", "message"}}``
* Gemini                   ``{"error": {"code", "message", "status"}}``, or a one-element list
                           of that (the non-SSE streaming endpoint answers with a JSON array)
* looser compatibles       ``{"error": "text"}``, ``{"message": …}``, ``{"detail": …}``
                           (FastAPI servers such as vLLM), ``{"error_msg": …}`` (Baidu)

Anything else — HTML from a load balancer, plain text, an empty body — gives a short excerpt of
the body, or a sentence naming the HTTP status. Messages are cut to :data:`MAX_MESSAGE`
characters: they end up in the ledger and in answers, and an upstream can send megabytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import orjson

MAX_MESSAGE: Final = 500
EXCERPT: Final = 200

_TAGS: Final = re.compile(r"<[^>]*>")
_SPACE: Final = re.compile(r"\s+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # left after whitespace is collapsed


def _clip(text: str, limit: int) -> str:
    text = _CONTROL.sub("", _SPACE.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def _from_json(value: object) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]  # Gemini's array answer
    if not isinstance(value, Mapping):
        return None
    error = value.get("error")
    if isinstance(error, Mapping):
        message = _text(error.get("message"))
        if message is not None:
            return message
        # No message: the error's kind is still better than nothing.
        for key in ("status", "type", "code"):
            if _text(error.get(key)) is not None:
                return str(error[key])
    elif _text(error) is not None:
        return str(error)
    for key in ("message", "detail", "error_msg"):
        if _text(value.get(key)) is not None:
            return str(value[key])
    return None


def provider_error_message(status: int, body: bytes) -> str:
    """The upstream's own error message, or an excerpt of what it sent; never raises."""
    try:
        message = _from_json(orjson.loads(body)) if body.strip() else None
    except orjson.JSONDecodeError:
        message = None
    if message is not None:
        return _clip(message, MAX_MESSAGE)
    text = _clip(_TAGS.sub(" ", body.decode("utf-8", errors="replace")), EXCERPT)
    if not text:
        return f"upstream answered HTTP {status} with an empty body"
    return f"upstream answered HTTP {status}: {text}"
