"""The proxy: send a prepared call upstream, answer the client, record the call.

Non-streamed answers are read whole, metered and returned with ``x-meterline-cost``. Streamed
answers are passed on event by event as they arrive; the usage is taken from the stream
(estimated from the text where none came), and the call is recorded when the stream ends —
completed, broken by the upstream, or abandoned by the client. Every outcome is recorded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from meterline.domain.money import format_decimal
from meterline.errors import UpstreamError, UpstreamTimeout
from meterline.gateway import exchange as wire
from meterline.gateway.calls import ENDPOINTS, Incoming, prepare
from meterline.gateway.recorder import Call
from meterline.gateway.state import GatewayState
from meterline.gateway.upstream import UpstreamResponse
from meterline.services.metering import Pricing

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
#: Headers of an upstream error answer passed on to the client.
RETRY_HEADERS = ("retry-after", "retry-after-ms")


def _elapsed_ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


def _finish(state: GatewayState, call: Call, upstream_seconds: float | None) -> Pricing:
    priced = state.recorder.record(call)
    if call.event_id is not None:
        state.idempotency.finish(call.tenant_id, call.event_id, call.request_id,
                                 call.status == "success")
    usage = call.usage
    rating = priced.rating
    state.metrics.observe(
        provider=call.provider, model=call.model, status=call.status,
        input_tokens=int(usage.get(wire.INPUT)) if usage else 0,
        output_tokens=int(usage.get(wire.OUTPUT)) if usage else 0,
        cost=rating.total.number if rating else None,
        currency=rating.currency if rating else None, upstream_seconds=upstream_seconds)
    return priced


async def _key_given_back(state: GatewayState, call: Call) -> None:
    """A failed call's Idempotency-Key is free again before its client hears of the failure
    (whichever process the retry reaches)."""
    if call.event_id is not None:
        await state.idempotency.settled(call.tenant_id, call.event_id)


def _cost_headers(priced: Pricing) -> dict[str, str]:
    if priced.billed_cost is not None and priced.billed_currency:
        return {"x-meterline-cost": format_decimal(priced.billed_cost),
                "x-meterline-currency": priced.billed_currency}
    if priced.rating is not None:
        return {"x-meterline-cost": format_decimal(priced.rating.total.number),
                "x-meterline-currency": priced.rating.currency}
    return {}


async def handle(state: GatewayState, request: Request, endpoint: str) -> Response:
    incoming = await prepare(state, request, endpoint)
    outgoing = wire.upstream_request(incoming, endpoint, ENDPOINTS[endpoint][1])
    call = incoming.call
    await state.rate_limits.check(incoming.key, incoming.body, ENDPOINTS[endpoint][0])
    if call.event_id is not None:
        await state.idempotency.claim(call.tenant_id, call.event_id, call.request_id)
    try:
        # Last step before the provider is called: from here on, every outcome is recorded,
        # and the record releases the holds and the key.
        await state.admission.admit(incoming, endpoint, *state.metering.snapshot())
    except BaseException as exc:
        if call.event_id is not None:
            state.idempotency.finish(call.tenant_id, call.event_id, call.request_id, False)
            if isinstance(exc, Exception):
                await _key_given_back(state, call)
        raise
    headers = state.upstreams.headers(incoming.provider, incoming.headers, outgoing.content_type)
    started = time.perf_counter()
    opened = state.upstreams.stream(incoming.provider, "POST", outgoing.path,
                                    content=outgoing.content, headers=headers,
                                    params=outgoing.params)
    try:
        response = await opened.__aenter__()
    except UpstreamError as exc:
        call.status = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
        call.error = exc.message
        call.latency_ms = _elapsed_ms(started)
        _finish(state, call, None)
        await _key_given_back(state, call)
        exc.context["request_id"] = call.request_id
        raise
    if response.status_code >= 400 or not incoming.stream:
        try:
            raw = await response.aread()
        except UpstreamError as error:
            await opened.__aexit__(None, None, None)
            call.status = "timeout" if isinstance(error, UpstreamTimeout) else "error"
            call.error = error.message
            call.http_status = response.status_code
            call.latency_ms = _elapsed_ms(started)
            _finish(state, call, None)
            await _key_given_back(state, call)
            error.context["request_id"] = call.request_id
            raise
        await opened.__aexit__(None, None, None)
        try:
            return _complete(state, incoming, endpoint, response, raw, started)
        finally:
            await _key_given_back(state, call)
    return StreamingResponse(_relay(state, incoming, opened, response, started),
                             status_code=response.status_code, media_type="text/event-stream",
                             headers={"x-meterline-request-id": call.request_id, **SSE_HEADERS})


def _complete(state: GatewayState, incoming: Incoming, endpoint: str,
              response: UpstreamResponse, raw: bytes, started: float) -> Response:
    call = incoming.call
    seconds = time.perf_counter() - started
    call.latency_ms = int(seconds * 1000)
    call.http_status = response.status_code
    media_type = response.headers.get("content-type", "application/json")
    headers = {"x-meterline-request-id": call.request_id}
    if response.status_code >= 400:
        call.status = "error"
        call.error = wire.error_message(response.status_code, raw)
        _finish(state, call, seconds)
        if response.status_code == 401:
            # The provider refused meterline's own credentials: not the client's key's fault,
            # so the client must not be told its key is invalid.
            raise UpstreamError(f"{incoming.provider.name} refused the gateway's credentials "
                                f"(HTTP 401): {call.error}", provider=incoming.provider.name,
                                request_id=call.request_id)
        out_raw = wire.error_body_for_client(incoming, response.status_code, raw)
        # The provider's back-off advice, which the SDKs' retry logic reads.
        headers.update({name: response.headers[name] for name in RETRY_HEADERS
                        if name in response.headers})
        return Response(out_raw, response.status_code, headers=headers, media_type=media_type)
    body: Any = None
    if media_type.startswith("application/json"):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
    outcome = wire.complete(incoming, endpoint, body, raw)
    call.usage, call.estimated = outcome.usage, outcome.estimated
    call.attributes = outcome.attributes
    call.upstream_cost = outcome.upstream_cost
    priced = _finish(state, call, seconds)
    headers.update(_cost_headers(priced))
    return Response(outcome.content, response.status_code, headers=headers,
                    media_type=outcome.media_type or media_type)


async def _relay(state: GatewayState, incoming: Incoming, opened: Any,
                 response: UpstreamResponse, started: float) -> AsyncIterator[bytes]:
    call = incoming.call
    relay = wire.stream_relay(incoming)
    upstream_seconds: float | None = None
    recorded = False
    failure = b""

    def record(status: str, error: str | None = None) -> None:
        nonlocal recorded
        if recorded:
            return
        recorded = True
        call.status, call.error = status, error
        call.http_status = response.status_code
        call.latency_ms = _elapsed_ms(started)
        call.usage, call.estimated = relay.usage()
        call.upstream_cost = relay.upstream_cost()
        _finish(state, call, upstream_seconds)

    try:
        # Decoded bytes: an upstream may compress its stream (its Content-Encoding is not
        # passed on to the client).
        async for chunk in response.aiter_bytes():
            if upstream_seconds is None:
                upstream_seconds = time.perf_counter() - started
                call.ttft_ms = int(upstream_seconds * 1000)
            out = relay.feed(chunk)
            if relay.ended:
                # The answer is complete: journal it before the client has the last of it, so
                # that a process killed right after cannot lose it (SPEC §7.4).
                record("success")
            if out:
                yield out
        tail = relay.close()
        record("success")
        if tail:
            yield tail
    except UpstreamError as error:
        if not recorded:
            # The upstream broke the stream (or went silent): the client is told so with an
            # error event in its wire format (the SDKs raise on it) after what did arrive.
            record("timeout" if isinstance(error, UpstreamTimeout) else "error", error.message)
            failure = relay.error_event(error)
    except Exception as exc:
        record("error", f"gateway error while relaying the stream ({exc.__class__.__name__})")
        raise
    except BaseException:
        # The client went away (the response task is cancelled or the generator closed):
        # bill what the upstream produced.
        record("cancelled", "client disconnected")
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await opened.__aexit__(None, None, None)
    if failure:
        await _key_given_back(state, call)
        yield failure
