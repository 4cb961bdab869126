"""Usage reported by clients (``POST /v1/usage``) and quotes (``POST /v1/billing/quote``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import key_or_admin, tenant_key
from meterline.api.inputs import refuse_unknown
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse, json_body
from meterline.domain.events import parse_batch, parse_timestamp
from meterline.domain.money import currency_code
from meterline.domain.usage import Usage
from meterline.errors import InvalidInput
from meterline.services.metering import AcceptedEvent
from meterline.store.accounts import ApiKey

router = APIRouter(tags=["usage"])

#: What a quote reads (SPEC §4, with attributes and a currency to quote in).
QUOTE_FIELDS = ("model", "usage", "timestamp", "attributes", "currency")


@router.post("/v1/usage", summary="Report usage events (up to 1000), idempotent per event id")
async def report_usage(request: Request, key: ApiKey = Depends(tenant_key)) -> JsonResponse:
    events = parse_batch(await json_body(request))
    app_state = state(request)
    # A few batches at a time per process: more threads would only fight over the GIL and the
    # rollup rows (docs/decisions.md); the rest wait here, in the event loop.
    results = await anyio.to_thread.run_sync(
        partial(app_state.metering.ingest, key.tenant_id, events, key_id=key.id),
        limiter=app_state.ingest_limiter)
    accepted = any(isinstance(result, AcceptedEvent) for result in results)
    # A batch in which every event was refused is a bad request as a whole; otherwise the
    # refused events are reported one by one and the rest count (SPEC §4).
    return JsonResponse({"results": [result.to_json() for result in results]},
                        status_code=200 if accepted else 400)


@router.post("/v1/billing/quote", summary="Price a call without recording it")
async def quote(request: Request, key: ApiKey | None = Depends(key_or_admin)) -> JsonResponse:
    body = await json_body(request)
    if not isinstance(body, Mapping):
        raise InvalidInput("body: must be a JSON object", field="body")
    refuse_unknown(body, QUOTE_FIELDS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model: missing", field="model")
    usage = Usage.parse(body.get("usage", {}))
    at = parse_timestamp(body["timestamp"]) if body.get("timestamp") is not None else None
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise InvalidInput("attributes: must be an object", field="attributes")
    currency = body.get("currency")
    if currency is not None:
        currency = currency_code(currency)
    metering = state(request).metering
    rating = await run_in_threadpool(metering.quote, model, usage, at,
                                     {str(k): str(v) for k, v in attributes.items()},
                                     currency, key.tenant_id if key is not None else None)
    out: dict[str, Any] = rating.to_json()
    return JsonResponse(out)
