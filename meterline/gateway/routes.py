"""The gateway's endpoints (SPEC §3), mounted on the main app by ``install``.

The proxied POST endpoints are served by plain Starlette routes placed first in the app's
routing table: FastAPI's per-request machinery (dependency solving, parameter validation) and a
walk past every admin route cost more than the rest of a fast call's gateway work. The same
functions stay declared on the FastAPI router, so they are documented in ``/openapi.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.asgi.errors import ANTHROPIC_PATHS, answer
from meterline.asgi.responses import JsonResponse
from meterline.errors import InvalidInput, MeterlineError, NotFound, UpstreamError
from meterline.gateway import batches_anthropic, batches_openai, proxy, vertex_paths
from meterline.gateway import responses as stored_responses
from meterline.gateway.calls import authenticate
from meterline.gateway.state import GatewayState
from meterline.logs import request_id

router = APIRouter(tags=["gateway"])
log = logging.getLogger("meterline.gateway")


def gateway(request: Request) -> GatewayState:
    found: GatewayState = request.app.state.gateway
    return found


async def _answered(request: Request, handler: Callable[[], Awaitable[Response]]
                    ) -> Response:
    """Every gateway answer has ``x-meterline-request-id`` (SPEC §3), errors included: the
    recorded call's id when the call was made (a timeout), else the request's own (the one its
    log lines carry, meterline/logs.py). A call that failed upstream is logged: an operator
    sees a provider's trouble, and the request id leads to the call."""
    try:
        response = await handler()
    except MeterlineError as exc:
        response = answer(exc, anthropic=request.url.path in ANTHROPIC_PATHS
                          or vertex_paths.is_anthropic(request.url.path))
        response.headers["x-meterline-request-id"] = str(
            exc.context.get("request_id") or request_id())
        if isinstance(exc, UpstreamError):
            log.warning("%s failed upstream (%d): %s", request.url.path, response.status_code,
                        exc.message)
        return response
    if response.status_code >= 500:  # the provider's own failure, passed on to the client
        log.warning("%s failed upstream: the provider answered %d", request.url.path,
                    response.status_code)
    if "x-meterline-request-id" not in response.headers:
        response.headers["x-meterline-request-id"] = request_id()
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


@router.post("/v1/responses", summary="OpenAI Responses API (stream and not)")
async def responses(request: Request) -> Response:
    return await _proxy(request, "responses")


@router.get("/v1/responses/{response_id}", summary="A response created with this tenant's keys "
            "(a finished background response is billed once, here)")
async def retrieve_response(request: Request, response_id: str) -> Response:
    return await _stored_response(request, "retrieve")


@router.delete("/v1/responses/{response_id}", summary="Delete a response of this tenant")
async def delete_response(request: Request, response_id: str) -> Response:
    return await _stored_response(request, "delete")


@router.post("/v1/responses/{response_id}/cancel",
             summary="Cancel a background response of this tenant")
async def cancel_response(request: Request, response_id: str) -> Response:
    return await _stored_response(request, "cancel")


async def _stored_response(request: Request, action: str) -> Response:
    return await _answered(
        request, lambda: stored_responses.handle(gateway(request), request, action))


# Batch APIs (gateway/batches.py): files and batches reachable by their tenant only; a batch's
# results billed once, at the batch price, when a poll first sees it ended.

@router.post("/v1/files", summary="Upload a batch input file (purpose=batch)")
async def upload_file(request: Request) -> Response:
    return await _answered(request, lambda: batches_openai.upload(gateway(request), request))


@router.get("/v1/files/{file_id}", summary="A file of this tenant's batches")
async def retrieve_file(request: Request, file_id: str) -> Response:
    return await _answered(
        request, lambda: batches_openai.file(gateway(request), request, content=False))


@router.get("/v1/files/{file_id}/content", summary="The content of a file of this tenant")
async def file_content(request: Request, file_id: str) -> Response:
    return await _answered(
        request, lambda: batches_openai.file(gateway(request), request, content=True))


@router.post("/v1/batches", summary="Create an OpenAI batch (checked against budgets)")
async def create_batch(request: Request) -> Response:
    return await _answered(request, lambda: batches_openai.create(gateway(request), request))


@router.get("/v1/batches", summary="This tenant's OpenAI batches")
async def list_batches(request: Request) -> Response:
    return await _answered(request, lambda: batches_openai.listing(gateway(request), request))


@router.get("/v1/batches/{batch_id}", summary="A batch of this tenant (billed once when ended)")
async def retrieve_batch(request: Request, batch_id: str) -> Response:
    return await _answered(
        request, lambda: batches_openai.one(gateway(request), request, cancel=False))


@router.post("/v1/batches/{batch_id}/cancel", summary="Cancel a batch of this tenant")
async def cancel_batch(request: Request, batch_id: str) -> Response:
    return await _answered(
        request, lambda: batches_openai.one(gateway(request), request, cancel=True))


def _message_batches(request: Request, handler: Callable[[], Awaitable[Response]]
                     ) -> Awaitable[Response]:
    return _answered(request, lambda: batches_anthropic.anthropic_errors(handler))


@router.post("/v1/messages/batches", summary="Create an Anthropic Message Batch")
async def create_message_batch(request: Request) -> Response:
    return await _message_batches(
        request, lambda: batches_anthropic.create(gateway(request), request))


@router.get("/v1/messages/batches", summary="This tenant's Message Batches")
async def list_message_batches(request: Request) -> Response:
    return await _message_batches(
        request, lambda: batches_anthropic.listing(gateway(request), request))


@router.get("/v1/messages/batches/{batch_id}",
            summary="A Message Batch of this tenant (billed once when ended)")
async def retrieve_message_batch(request: Request, batch_id: str) -> Response:
    return await _message_batches(
        request, lambda: batches_anthropic.one(gateway(request), request, "retrieve"))


@router.get("/v1/messages/batches/{batch_id}/results",
            summary="A Message Batch's results (JSONL)")
async def message_batch_results(request: Request, batch_id: str) -> Response:
    return await _message_batches(
        request, lambda: batches_anthropic.one(gateway(request), request, "results"))


@router.post("/v1/messages/batches/{batch_id}/cancel", summary="Cancel a Message Batch")
async def cancel_message_batch(request: Request, batch_id: str) -> Response:
    return await _message_batches(
        request, lambda: batches_anthropic.one(gateway(request), request, "cancel"))


@router.post("/v1beta/models/{model:path}:{action}",
             summary="Gemini's own API: generateContent and streamGenerateContent (?alt=sse)")
async def gemini_native(request: Request) -> Response:
    action = request.path_params.get("action")
    if action not in ("generateContent", "streamGenerateContent"):
        return await _answered(request, lambda: _not_served(action))
    if action == "streamGenerateContent" and request.query_params.get("alt") != "sse":
        return await _answered(request, _sse_only)
    return await _proxy(request, "gemini")


async def _not_served(action: object) -> Response:
    raise NotFound(f"models/…:{action} is not served by the gateway (generateContent and "
                   "streamGenerateContent are)")


async def _sse_only() -> Response:
    raise InvalidInput("alt: the gateway streams Gemini's answers as server-sent events: "
                       "call streamGenerateContent with ?alt=sse", field="alt")


@router.post(vertex_paths.PATHS[0], summary="Vertex AI's model actions: Google's "
             "generateContent, streamGenerateContent (?alt=sse); Anthropic's rawPredict, "
             "streamRawPredict (docs/providers.md)")
@router.post(vertex_paths.PATHS[1], include_in_schema=False)
@router.post(vertex_paths.PATHS[2], include_in_schema=False)
@router.post(vertex_paths.PATHS[3], include_in_schema=False)
async def vertex_model(request: Request) -> Response:
    async def call() -> Response:
        state = gateway(request)
        rewritten, endpoint = await vertex_paths.vertex_request(state, request)
        return await proxy.handle(state, rewritten, endpoint)

    return await _answered(request, call)


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


#: Served as plain Starlette routes (see the module's docstring).
PROXIED = {"/v1/chat/completions": chat_completions, "/v1/embeddings": embeddings,
           "/v1/images/generations": images, "/v1/audio/speech": speech, "/v1/videos": videos,
           "/v1/messages": messages, "/v1/responses": responses,
           "/v1beta/models/{model:path}:{action}": gemini_native,
           **dict.fromkeys(vertex_paths.PATHS, vertex_model)}


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
