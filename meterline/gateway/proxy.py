"""The proxy: send a prepared call upstream, answer the client, record the call.

Non-streamed answers are read whole, metered and returned with ``x-meterline-cost``. Streamed
answers are passed on event by event as they arrive; the usage is taken from the stream
(estimated from the text where none came), and the call is recorded when the stream ends —
completed, broken by the upstream, or abandoned by the client — and, should the response end
before its body ever ran (a client gone before the headers), when the response ends. Every
outcome is recorded; a call whose process dies before that is journaled as started and recorded
as ``interrupted`` (gateway/inflight.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from meterline.domain.money import format_decimal
from meterline.errors import UpstreamError, UpstreamTimeout
from meterline.gateway import exchange as wire
from meterline.gateway import responses as stored_responses
from meterline.gateway.calls import ENDPOINTS, Incoming, prepare
from meterline.gateway.inflight import request_estimate
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
        state.recorder.start(call, request_estimate(incoming, endpoint, state.admission.limits))
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
            answer = _complete(state, incoming, endpoint, response, raw, started)
        finally:
            await _key_given_back(state, call)
        await stored_responses.remember(state, incoming)
        return answer
    return _StreamResponse(_Stream(state, incoming, opened, response, started),
                           {"x-meterline-request-id": call.request_id, **SSE_HEADERS})


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
        except orjson.JSONDecodeError as exc:
            # The client's SDK could not read it either: an upstream failure, not an answer.
            # The provider read the prompt, so that much is billed (estimated); the call's
            # Idempotency-Key is free for the retry.
            call.status = "error"
            call.error = f"the provider answered {response.status_code} with a body that is " \
                         f"not JSON ({exc})"
            call.usage, call.estimated = wire.complete(incoming, endpoint, None, b"").usage, True
            _finish(state, call, seconds)
            raise UpstreamError(f"{incoming.provider.name}: {call.error}",
                                provider=incoming.provider.name,
                                request_id=call.request_id) from exc
    outcome = wire.complete(incoming, endpoint, body, raw)
    call.usage, call.estimated = outcome.usage, outcome.estimated
    call.attributes = outcome.attributes
    call.upstream_cost = outcome.upstream_cost
    priced = _finish(state, call, seconds)
    headers.update(_cost_headers(priced))
    return Response(outcome.content, response.status_code, headers=headers,
                    media_type=outcome.media_type or media_type)


class _Stream:
    """One streamed call: its body relays the upstream's events, and ``close`` — run by the
    response whether or not its body was ever asked for — records the call and hangs up on the
    upstream if the body did not get to."""

    def __init__(self, state: GatewayState, incoming: Incoming, opened: Any,
                 response: UpstreamResponse, started: float) -> None:
        self.state = state
        self.call = incoming.call
        self.relay = wire.stream_relay(incoming)
        self.opened = opened
        self.response = response
        self.started = started
        self.upstream_seconds: float | None = None
        self.recorded = False
        self.closed = False
        self.remembered = False

    def record(self, status: str, error: str | None = None) -> None:
        if self.recorded:
            return
        self.recorded = True
        call = self.call
        call.status, call.error = status, error
        call.http_status = self.response.status_code
        call.latency_ms = _elapsed_ms(self.started)
        call.usage, call.estimated = self.relay.usage()
        call.attributes = self.relay.attributes()
        call.upstream_cost = self.relay.upstream_cost()
        _finish(self.state, call, self.upstream_seconds)

    async def hang_up(self) -> None:
        if not self.closed:
            self.closed = True
            await self.opened.__aexit__(None, None, None)

    async def close(self) -> None:
        """A client gone before the body started (an ASGI 2.4 server's ``send`` raises, and
        Starlette then never iterates the body) is still a call the provider was paid for."""
        with anyio.CancelScope(shield=True):
            try:
                self.record("cancelled", "client disconnected")
            finally:
                await self.hang_up()
            await self.remember()

    async def remember(self) -> None:
        """Keep the Responses API object the stream created (gateway/responses.py)."""
        if not self.remembered:
            self.remembered = True
            await stored_responses.remember(self.state, self.relay.incoming)

    async def body(self) -> AsyncGenerator[bytes, None]:
        relay, record = self.relay, self.record
        failure = b""
        try:
            # Decoded bytes: an upstream may compress its stream (its Content-Encoding is not
            # passed on to the client).
            async for chunk in self.response.aiter_bytes():
                if self.upstream_seconds is None:
                    self.upstream_seconds = time.perf_counter() - self.started
                    self.call.ttft_ms = int(self.upstream_seconds * 1000)
                out = relay.feed(chunk)
                if relay.incoming.response_id is not None and not self.remembered:
                    # Before the client has the id: it may ask for the response at once.
                    await self.remember()
                if relay.ended:
                    # The answer is complete: journal it before the client has the last of it,
                    # so that a process killed right after cannot lose it (SPEC §7.4).
                    record("success")
                if out:
                    yield out
            tail = relay.close()
            record("success")
            if tail:
                yield tail
        except UpstreamError as error:
            if not self.recorded:
                # The upstream broke the stream (or went silent): the client is told so with an
                # error event in its wire format (the SDKs raise on it) after what did arrive.
                record("timeout" if isinstance(error, UpstreamTimeout) else "error",
                       error.message)
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
                await self.hang_up()
        if failure:
            await _key_given_back(self.state, self.call)
            yield failure


class _StreamResponse(StreamingResponse):
    """A streamed answer that records its call however the response ends, even unsent."""

    def __init__(self, stream: _Stream, headers: dict[str, str]) -> None:
        self.stream = stream
        self.body_iterator: AsyncGenerator[bytes, None] = stream.body()
        super().__init__(self.body_iterator, status_code=stream.response.status_code,
                         media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if _reports_gone_clients(scope):
                await super().__call__(scope, receive, send)
            else:
                await self._relay_until_gone(receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    # A body left at a ``yield`` (its task cancelled while sending) records now,
                    # not whenever the garbage collector finalises it; one never started skips
                    # this.
                    await self.body_iterator.aclose()
                finally:
                    await self.stream.close()

    async def _relay_until_gone(self, receive: Receive, send: Send) -> None:
        """Send the stream, cut short if the client goes away.

        A server before ASGI 2.4 (uvicorn's) drops what is sent to a client that is gone
        rather than raise, so the client's leaving is heard on ``receive``. Starlette listens
        there with an anyio task group and a second task per response; one plain watcher task
        that cancels this one does the same for less of the event loop's time (the task group
        was about a tenth of a streamed call's in the profiles: docs/decisions.md, issue 17)."""
        relaying = asyncio.current_task()
        assert relaying is not None
        done = gone = False

        async def watch() -> None:
            nonlocal gone
            with contextlib.suppress(Exception):
                while (await receive())["type"] != "http.disconnect":
                    pass
                # ``done`` is set with no await after the last send: once it is, the stream
                # ended on its own and its clean-up must not be cancelled.
                if not done:
                    gone = True
                    relaying.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self.stream_response(send)
            done = True
        except asyncio.CancelledError:
            # Our own cancel, and no other (a server shutting down), ends the response quietly.
            if not gone or relaying.uncancel() > 0:
                raise
        finally:
            done = True
            watcher.cancel()


def _reports_gone_clients(scope: Scope) -> bool:
    """ASGI 2.4: ``send`` raises once the client is gone (no watcher needed)."""
    version = scope.get("asgi", {}).get("spec_version", "2.0")
    return tuple(int(part) for part in version.split(".")) >= (2, 4)
