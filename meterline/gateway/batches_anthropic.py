"""Anthropic's Message Batches through the gateway: ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}``, ``.../results`` (JSONL), ``POST .../cancel`` and
``GET /v1/messages/batches`` (the rules: gateway/batches.py).

The requests' ``params.model`` choose the provider (one Anthropic-kind provider for the whole
batch), which gets its own model ids. ``results_url`` is rewritten to the gateway's own
results path, which the SDK follows, so that results too are read through the gateway (and
bill the batch if no poll has). Errors are answered in Anthropic's shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from meterline.asgi.errors import answer as error_answer
from meterline.asgi.responses import JsonResponse
from meterline.errors import InvalidInput, MeterlineError
from meterline.gateway import batches as common
from meterline.gateway.batch_bills import Result, bill_once, jsonl_objects
from meterline.gateway.batches_openai import HEADER, page_limit
from meterline.gateway.state import GatewayState
from meterline.providers.usage import read_anthropic_usage
from meterline.store import batches as store
from meterline.store.batches import StoredBatch

PATH: Final = "/v1/messages/batches"


async def anthropic_errors(handler: Callable[[], Awaitable[Response]]) -> Response:
    """The gateway's own refusals in Anthropic's error shape, as its SDK expects them."""
    try:
        return await handler()
    except MeterlineError as exc:
        return error_answer(exc, anthropic=True)


async def _send(state: GatewayState, request: Request, provider: str, method: str, path: str,
                content: bytes = b"", content_type: str | None = None
                ) -> tuple[int, bytes, str]:
    config = state.router.providers[provider]
    headers = state.upstreams.headers(config, request.headers, content_type)
    async with state.upstreams.stream(config, method, path, content=content,
                                      headers=headers) as answer:
        raw = await answer.aread()
        return answer.status_code, raw, answer.headers.get("content-type", "application/json")


async def create(state: GatewayState, request: Request) -> Response:
    started = datetime.now(UTC)
    who = await common.owner(state, request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise InvalidInput("requests: a non-empty list of {custom_id, params}", field="requests")
    if len(requests) > common.MAX_LINES:
        raise InvalidInput(f"requests: more than {common.MAX_LINES}", field="requests")
    resolver = common.Resolver(state, who.key, "anthropic")
    seen: set[str] = set()
    sent: list[dict[str, Any]] = []
    lines: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(requests):
        where = f"requests[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            raise InvalidInput(f"{where}: needs custom_id and a params object",
                               field="requests")
        custom_id = common.custom_id_of(item.get("custom_id"), seen, where)
        params = item["params"]
        if params.get("stream") is True:
            raise InvalidInput(f"{where}.params.stream: batch requests are not streamed",
                               field="stream")
        model, upstream = resolver.resolve(params.get("model"), f"{where}.params")
        lines[custom_id] = common.line_info(params["model"], model, "messages", params,
                                            "anthropic")
        sent.append({**item, "params": {**params, "model": upstream}})
    assert resolver.provider is not None
    await common.check_limits(state, who, resolver.provider, lines, started)
    status, raw, media = await _send(state, request, resolver.provider, "POST", PATH,
                                     orjson.dumps({**body, "requests": sent}),
                                     "application/json")
    if status != 200:
        return Response(raw, status, media_type=media)
    answer = orjson.loads(raw)
    await common.remember(state, StoredBatch(
        str(answer["id"]), "anthropic", who.key.tenant_id, who.key.id, who.user,
        resolver.provider, None, started, await common.pending(state, who, lines)))
    return JsonResponse(_ours(request, answer))


def _ours(request: Request, answer: dict[str, Any]) -> dict[str, Any]:
    """The batch with its results at the gateway."""
    if answer.get("results_url"):
        base = str(request.base_url).rstrip("/")
        answer["results_url"] = f"{base}{PATH}/{answer['id']}/results"
    return answer


async def one(state: GatewayState, request: Request, action: str) -> Response:
    """``action``: retrieve, cancel or results."""
    who = await common.owner(state, request)
    batch = await common.find_batch(state, who, request.path_params["batch_id"])
    path = f"{PATH}/{batch.batch_id}"
    if action == "results":
        status, raw, media = await _send(state, request, batch.provider, "GET",
                                         f"{path}/results")
        out = Response(raw, status, media_type=media)
        if status == 200:
            billed = await bill_once(state, batch, _given(_results(raw)))
            if billed is not None:
                out.headers[HEADER] = str(billed)
        return out
    if action == "cancel":
        status, raw, media = await _send(state, request, batch.provider, "POST",
                                         f"{path}/cancel")
    else:
        status, raw, media = await _send(state, request, batch.provider, "GET", path)
    if status != 200:
        return Response(raw, status, media_type=media)
    answer = orjson.loads(raw)
    billed = await _settle(state, request, batch, answer)
    out = JsonResponse(_ours(request, answer))
    if billed is not None:
        out.headers[HEADER] = str(billed)
    return out


def _given(results: list[Result]) -> Callable[[], Awaitable[Iterable[Result] | None]]:
    async def fetch() -> Iterable[Result] | None:
        return results

    return fetch


async def _settle(state: GatewayState, request: Request, batch: StoredBatch,
                  answer: Mapping[str, Any]) -> int | None:
    if answer.get("processing_status") != "ended" or batch.billed_at is not None:
        return None

    async def fetch() -> Iterable[Result] | None:
        status, raw, _ = await _send(state, request, batch.provider, "GET",
                                     f"{PATH}/{batch.batch_id}/results")
        return _results(raw) if status == 200 else None

    return await bill_once(state, batch, fetch)


def _results(raw: bytes) -> list[Result]:
    """The succeeded results (errored, canceled and expired ones are not billed)."""
    out: list[Result] = []
    for item in jsonl_objects(raw):
        result = item.get("result")
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            continue
        message = result.get("message")
        if isinstance(message, dict) and isinstance(item.get("custom_id"), str):
            out.append(Result(item["custom_id"], read_anthropic_usage(message.get("usage")),
                              message))
    return out


async def listing(state: GatewayState, request: Request) -> Response:
    who = await common.owner(state, request)
    params = request.query_params
    limit = page_limit(params.get("limit"))
    engine = state.metering.engine

    def load() -> tuple[list[StoredBatch], bool]:
        with engine.connect() as conn:
            return store.list_batches(conn, who.key.tenant_id, "anthropic", who.key.user_id,
                                      after=params.get("after_id"),
                                      before=params.get("before_id"), limit=limit)

    rows, more = await run_in_threadpool(load)

    async def fetched(batch: StoredBatch) -> dict[str, Any] | None:
        status, raw, _ = await _send(state, request, batch.provider, "GET",
                                     f"{PATH}/{batch.batch_id}")
        if status != 200:
            return None
        answer: dict[str, Any] = orjson.loads(raw)
        await _settle(state, request, batch, answer)
        return _ours(request, answer)

    data = [a for a in await asyncio.gather(*(fetched(b) for b in rows)) if a is not None]
    return JsonResponse({"data": data, "has_more": more,
                         "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None})
