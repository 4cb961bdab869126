"""Small HTTP helpers: orjson responses and strict JSON bodies."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from meterline.errors import InvalidInput

#: The largest request body, enforced while it is read (meterline/api/bodies.py).
MAX_BODY_BYTES = 32 * 1024 * 1024


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def body_bytes(request: Request) -> bytes:
    """The request's body (its size was bounded while it was read: api/bodies.py)."""
    return await request.body()


async def json_body(request: Request) -> Any:
    """The request's JSON body, or InvalidInput saying why it is not one."""
    raw = await body_bytes(request)
    if not raw:
        raise InvalidInput("body: empty; expected a JSON object", field="body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
