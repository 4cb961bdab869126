"""The gateway's endpoints (SPEC §3), mounted on the main app."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterline.api.http import JsonResponse
from meterline.gateway import proxy
from meterline.gateway.calls import authenticate
from meterline.gateway.state import GatewayState

router = APIRouter(tags=["gateway"])


def gateway(request: Request) -> GatewayState:
    found: GatewayState = request.app.state.gateway
    return found


@router.post("/v1/chat/completions", summary="OpenAI chat completions (stream and not)")
async def chat_completions(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "chat")


@router.post("/v1/embeddings", summary="OpenAI embeddings")
async def embeddings(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "embeddings")


@router.post("/v1/images/generations", summary="OpenAI image generation, billed per image")
async def images(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "images")


@router.post("/v1/audio/speech", summary="OpenAI text to speech, billed per character")
async def speech(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "speech")


@router.post("/v1/videos", summary="OpenAI-format video generation, billed per second")
async def videos(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "videos")


@router.post("/v1/messages", summary="Anthropic messages (stream and not)")
async def messages(request: Request) -> Response:
    return await proxy.handle(gateway(request), request, "messages")


@router.get("/v1/models", summary="The models this key may use")
async def models(request: Request) -> JsonResponse:
    state = gateway(request)
    key = await authenticate(state, request)
    book, _ = state.metering.snapshot()
    names = state.router.servable(book)
    if key.models:
        names = [n for n in names if n in key.models or n.split("/", 1)[-1] in key.models]
    return JsonResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": name.split("/", 1)[0]}
        for name in names]})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(gateway(request).metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
