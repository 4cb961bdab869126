"""Responses API objects after their creation: ``GET``, ``DELETE`` and ``POST .../cancel`` of
``/v1/responses/{id}``, and the billing of background responses.

Every response created through the gateway is remembered with its tenant, key, user and
provider (table ``upstream_responses``). Only its tenant reaches it again — and, with a key bound
to a user, only that user; anyone else gets 404, as for an id that never existed, so that ids
of other tenants cannot even be confirmed.

A background response (``background: true``) answers at once, ``queued`` or ``in_progress``,
with no usage: its creating call is recorded at no cost and its bill waits. The bill is made
when the gateway first sees the response finished — a ``GET`` or a ``cancel`` answered
``completed``, ``incomplete``, ``failed`` or ``cancelled`` — from the usage of that answer, as a
record of its own whose request id is derived from the response id. Two polls at once, in one
process or in several, journal the same request id, which the ledger keeps once (its
identity), so a background response is billed exactly once; after that the row says it is
billed and later polls bill nothing. A streamed background response is billed by its stream,
like any stream.

What is not covered: a background response never polled after it completes is never billed
(the provider's bill shows it; reconciliation flags it), and its budget is checked against its
worst case when it is created but not held while it runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from meterline.domain.usage import Usage
from meterline.errors import InvalidInput, NotFound, StoreError
from meterline.gateway.calls import Incoming, authenticate
from meterline.gateway.recorder import Call
from meterline.gateway.state import GatewayState
from meterline.providers.estimate import estimate_prompt_tokens
from meterline.providers.tools import response_tool_uses
from meterline.providers.usage import read_responses_usage, service_tier, upstream_cost_at
from meterline.store import responses as store
from meterline.store.responses import StoredResponse

log = logging.getLogger("meterline.gateway")

#: A background response still running, and one that is done (and so can be billed).
RUNNING: Final = frozenset({"queued", "in_progress"})
FINISHED: Final = frozenset({"completed", "incomplete", "failed", "cancelled"})
#: The status of the bill's record, by the response's final status.
_STATUS: Final = {"completed": "success", "incomplete": "success", "failed": "error",
                  "cancelled": "cancelled"}


def _pending(incoming: Incoming) -> dict[str, Any]:
    """What the bill of a background response needs of its creating call (JSON)."""
    call = incoming.call
    return {"tenant_currency": call.tenant_currency, "tenant_timezone": call.tenant_timezone,
            "requested_model": call.requested_model, "model": call.model,
            "started_at": call.started_at.isoformat(), "tags": call.tags,
            "metadata": call.metadata, "attributes": dict(call.attributes),
            "input_estimate": estimate_prompt_tokens(incoming.body, "openai")}


async def remember(state: GatewayState, incoming: Incoming) -> None:
    """Keep the response a call created (if it created one)."""
    if incoming.response_id is None:
        return
    call = incoming.call
    row = StoredResponse(incoming.response_id, call.tenant_id, call.key_id, call.user_id,
                         call.provider, call.request_id, datetime.now(UTC),
                         _pending(incoming) if incoming.response_pending else None, None)
    engine = state.metering.engine

    def write() -> None:
        with engine.begin() as conn:
            store.remember(conn, row)

    try:
        await run_in_threadpool(write)
    except StoreError as exc:
        # The answer has gone to the client; only later GETs through the gateway are lost.
        log.error("response %s of call %s not remembered: %s", incoming.response_id,
                  call.request_id, exc.message)


def bill_request_id(response_id: str) -> str:
    """The request id of a background response's bill: the same in every process."""
    return "rsp_" + hashlib.sha256(response_id.encode()).hexdigest()[:32]


async def handle(state: GatewayState, request: Request, action: str) -> Response:
    """``action``: retrieve, delete or cancel the response named in the path."""
    key = await authenticate(state, request)
    response_id = request.path_params["response_id"]
    engine = state.metering.engine

    def load() -> StoredResponse | None:
        with engine.connect() as conn:
            return store.find(conn, response_id)

    stored = await run_in_threadpool(load)
    if (stored is None or stored.tenant_id != key.tenant_id
            or (key.user_id is not None and stored.user_id != key.user_id)):
        raise NotFound(f"no response {response_id!r} was created with this tenant's keys",
                       field="response_id")
    provider = state.router.providers.get(stored.provider)
    if provider is None:
        raise NotFound(f"response {response_id!r} was created at provider "
                       f"{stored.provider!r}, which is no longer configured")
    params = dict(request.query_params)
    if params.get("stream") not in (None, "false"):
        raise InvalidInput("stream: resuming a response's stream is not served by the gateway; "
                           "poll it without stream", field="stream")
    method, path = {"retrieve": ("GET", f"/responses/{response_id}"),
                    "delete": ("DELETE", f"/responses/{response_id}"),
                    "cancel": ("POST", f"/responses/{response_id}/cancel")}[action]
    if provider.kind == "azure":
        path = f"/openai/v1{path}"
    headers = state.upstreams.headers(provider, request.headers, None)
    async with state.upstreams.stream(provider, method, path, content=b"", headers=headers,
                                      params=params or None) as answer:
        raw = await answer.aread()
        status = answer.status_code
        media_type = answer.headers.get("content-type", "application/json")
    out = Response(raw, status, media_type=media_type)
    if status == 200 and stored.pending is not None and stored.billed_at is None:
        billed = await _bill_if_finished(state, stored, raw)
        if billed is not None:
            out.headers["x-meterline-billed-request-id"] = billed
    return out


async def _bill_if_finished(state: GatewayState, stored: StoredResponse, raw: bytes
                            ) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, Mapping) or body.get("status") not in FINISHED:
        return None
    assert stored.pending is not None
    call = _bill(state, stored, stored.pending, body)
    # Journaled first: a process dying here leaves the row pending, and the next poll
    # journals the same request id again, which the ledger keeps once.
    state.recorder.record(call)
    engine = state.metering.engine

    def mark() -> None:
        with engine.begin() as conn:
            store.claim_billing(conn, stored.response_id, datetime.now(UTC))

    try:
        await run_in_threadpool(mark)
    except StoreError as exc:
        log.warning("response %s billed, but not marked so (%s): a later poll journals its "
                    "bill again, which the ledger keeps once", stored.response_id, exc.message)
    return call.request_id


def _bill(state: GatewayState, stored: StoredResponse, pending: Mapping[str, Any],
          body: Mapping[str, Any]) -> Call:
    """The record of a finished background response, from the answer that says so."""
    started = datetime.fromisoformat(pending["started_at"])
    reading = read_responses_usage(body.get("usage"))
    usage, estimated = reading.usage, False
    if usage is None:
        # The provider read the prompt at least; nothing says what it generated.
        usage, estimated = Usage.of(input_tokens=int(pending["input_estimate"])), True
    # The response echoes its tools: whether the code interpreter made its own container.
    usage = usage.plus(response_tool_uses(body, body))
    final = str(body.get("status"))
    error = body.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    provider = state.router.providers[stored.provider]
    return Call(
        request_id=bill_request_id(stored.response_id), tenant_id=stored.tenant_id,
        tenant_currency=pending["tenant_currency"], key_id=stored.key_id,
        user_id=stored.user_id, requested_model=pending["requested_model"],
        model=pending["model"], provider=stored.provider, endpoint="responses",
        started_at=started, status=_STATUS[final], http_status=200,
        error=str(message) if message and final == "failed" else None, usage=usage,
        estimated=estimated,
        attributes=service_tier(body) or dict(pending.get("attributes") or {}),
        latency_ms=int((datetime.now(UTC) - started).total_seconds() * 1000),
        tags=pending.get("tags"), metadata=pending.get("metadata"),
        upstream_cost=upstream_cost_at(body, provider.cost_path),
        upstream_currency=provider.cost_currency,
        tenant_timezone=pending.get("tenant_timezone") or "UTC")
