"""The gateway's endpoints (SPEC §3), mounted on the main app by ``install``.

The proxied POST endpoints are served by plain Starlette routes placed first in the app's
routing table: FastAPI's per-request machinery (dependency solving, parameter validation) and a
walk past every admin route cost more than the rest of a fast call's gateway work. The same
functions stay declared on the FastAPI router, so they are documented in ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from meterline import health
from meterline.api.auth import metrics_reader
from meterline.api.errors import ANTHROPIC_PATHS, answer
from meterline.api.http import JsonResponse
from meterline.errors import MeterlineError
from meterline.gateway import proxy
from meterline.gateway.calls import authenticate
from meterline.gateway.state import GatewayState
from meterline.services.metering import new_request_id

router = APIRouter(tags=["gateway"])


def gateway(request: Request) -> GatewayState:
    found: GatewayState = request.app.state.gateway
    return found


async def _answered(request: Request, handler: Callable[[], Awaitable[Response]]
                    ) -> Response:
    """Every gateway answer has ``x-meterline-request-id`` (SPEC §3), errors included: the
    recorded call's id when the call was made (a timeout), a fresh one when it was refused."""
    try:
        response = await handler()
    except MeterlineError as exc:
        response = answer(exc, anthropic=request.url.path in ANTHROPIC_PATHS)
        response.headers["x-meterline-request-id"] = str(
            exc.context.get("request_id") or new_request_id())
        return response
    if "x-meterline-request-id" not in response.headers:
        response.headers["x-meterline-request-id"] = new_request_id()
    return response


async def _proxy(request: Request, endpoint: str) -> Response:
    return await _answered(request, lambda: proxy.handle(gateway(request), request, endpoint))


@router.post("/v1/chat/completions", summary="OpenAI chat completions (stream and not)")
async def chat_completions(request: Request) -> Response:
    return await _proxy(request, "chat")


@router.post("/v1/embeddings", summary="OpenAI embeddings")
async def embeddings(request: Request) -> Response:
    return await _proxy(request, "embeddings")


@router.post("/v1/images/generations", summary="OpenAI image generation, billed per image")
async def images(request: Request) -> Response:
    return await _proxy(request, "images")


@router.post("/v1/audio/speech", summary="OpenAI text to speech, billed per character")
async def speech(request: Request) -> Response:
    return await _proxy(request, "speech")


@router.post("/v1/videos", summary="OpenAI-format video generation, billed per second")
async def videos(request: Request) -> Response:
    return await _proxy(request, "videos")


@router.post("/v1/messages", summary="Anthropic messages (stream and not)")
async def messages(request: Request) -> Response:
    return await _proxy(request, "messages")


@router.get("/v1/models", summary="The models this key may use")
async def models(request: Request) -> Response:
    async def listing() -> Response:
        state = gateway(request)
        key = await authenticate(state, request)
        book, _ = state.metering.snapshot()
        names = state.router.servable(book)
        if key.models:
            names = [n for n in names if n in key.models or _bare(n) in key.models]
        return JsonResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": name.split("/", 1)[0]}
            for name in names]})

    return await _answered(request, listing)


@router.get("/metrics", summary="Prometheus metrics (metrics token or admin token)",
            include_in_schema=False, dependencies=[Depends(metrics_reader)])
async def metrics(request: Request) -> Response:
    state = gateway(request)
    pending = await run_in_threadpool(state.recorder.journal.pending)
    return Response(state.metrics.render() + state.admission.leases.render()
                    + health.render(state.health, pending),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


#: Served as plain Starlette routes (see the module's docstring).
PROXIED = {"/v1/chat/completions": chat_completions, "/v1/embeddings": embeddings,
           "/v1/images/generations": images, "/v1/audio/speech": speech, "/v1/videos": videos,
           "/v1/messages": messages}


def install(app: FastAPI) -> None:
    """Mount the gateway on ``app``: everything through FastAPI's router (and so in the schema),
    and the proxied endpoints as plain routes ahead of every other route, so that they answer."""
    app.include_router(router)
    app.router.routes[:0] = [Route(path, endpoint, methods=["POST"], name=endpoint.__name__)
                             for path, endpoint in PROXIED.items()]


def _bare(name: str) -> str | None:
    """The model name without its provider, if that has no provider of its own."""
    bare = name.split("/", 1)[-1]
    return None if "/" in bare else bare
