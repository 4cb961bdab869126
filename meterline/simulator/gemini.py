"""Gemini wire format: ``generateContent``, ``streamGenerateContent`` (SSE or a JSON array),
``countTokens``, the model list, and Google-shaped errors."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.simulator.common import EventStream, SimState, begin, gate, json_response, make_plan
from meterline.simulator.directives import Plan, content_pieces, count_words, generated_text

GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(status: int, message: str) -> Response:
    """``{"error": {"code", "message", "status"}}`` with HTTP ``status``."""
    text = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return json_response({"error": {"code": status, "message": message, "status": text}}, status)


def gemini_usage(p: Plan) -> dict[str, Any]:
    """usageMetadata: promptTokenCount includes the cached part; like the real API, the
    cached and thoughts counts are left out when zero."""
    prompt = p.prompt + p.cached
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": p.output,
        "totalTokenCount": prompt + p.output + p.reasoning,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if p.cached:
        usage["cachedContentTokenCount"] = p.cached
    if p.reasoning:
        usage["thoughtsTokenCount"] = p.reasoning
    return usage


def _texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    contents = body.get("contents")
    blocks = [system] if isinstance(system, dict) else []
    if isinstance(contents, list):
        blocks.extend(contents)
    for block in blocks:
        parts = block.get("parts") if isinstance(block, dict) else None
        for part in parts if isinstance(parts, list) else ():
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                texts.append(text)
    return texts


def _response(rid: str, model: str, text: str, finish: str | None, usage: Any) -> dict[str, Any]:
    content = {"parts": [{"text": text}], "role": "model"}
    candidate: dict[str, Any] = {"content": content, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    answer: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        answer["usageMetadata"] = usage
    answer["modelVersion"] = model
    answer["responseId"] = rid
    return answer


@lru_cache(maxsize=256)
def _candidates(words: int) -> tuple[bytes, ...]:
    """The ``{"candidates":[...],`` start of each content chunk, serialised once per length."""
    return tuple(
        orjson.dumps(
            {"candidates": [{"content": {"parts": [{"text": t}], "role": "model"}, "index": 0}]}
        )[:-1]
        + b","
        for t, _ in content_pieces(words)
    )


def _stream(sim: SimState, rid: str, model: str, p: Plan, sse: bool) -> EventStream:
    finish = "MAX_TOKENS" if p.truncated else "STOP"
    usage = None if p.directives.no_usage else gemini_usage(p)
    ending = orjson.dumps({"modelVersion": model, "responseId": rid})[1:]
    chunks = [start + ending for start in _candidates(p.output)]
    last = orjson.dumps(_response(rid, model, "", finish, usage))
    if sse:
        content = [b"data: " + c + b"\r\n\r\n" for c in chunks]
        tail = [b"data: " + last + b"\r\n\r\n"]
        return EventStream([], content, tail, p.directives, sim)
    # Without alt=sse the stream is one JSON array, written element by element.
    content = [(b",\r\n" if i else b"[") + c for i, c in enumerate(chunks)]
    closing = (b",\r\n" if chunks else b"[") + last + b"]"
    return EventStream([], content, [closing], p.directives, sim, media_type="application/json")


def gemini_routes(sim: SimState) -> list[Route]:
    async def model_action(request: Request) -> Response:
        body = await begin(request, sim, gemini_error)
        if isinstance(body, Response):
            return body
        model, _, action = request.path_params["target"].rpartition(":")
        if action not in ("generateContent", "streamGenerateContent", "countTokens") or not model:
            return gemini_error(404, f"Unknown method {action!r} for models/{model}.")
        texts = _texts(body)
        if action == "countTokens":
            return json_response({"totalTokens": count_words("\n".join(texts))})
        if not texts:
            return gemini_error(400, "* GenerateContentRequest.contents: contents is not specified")
        config = body.get("generationConfig") or body.get("generation_config")
        max_tokens = config.get("maxOutputTokens") if isinstance(config, dict) else None
        p = make_plan("\n".join(texts), max_tokens, gemini_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, gemini_error)
        if refused is not None:
            return refused
        rid = sim.next_id("resp-")
        if action == "streamGenerateContent":
            sse = request.query_params.get("alt") == "sse"
            return _stream(sim, rid, model, p, sse)
        finish = "MAX_TOKENS" if p.truncated else "STOP"
        usage = None if p.directives.no_usage else gemini_usage(p)
        return json_response(_response(rid, model, generated_text(p.output), finish, usage))

    async def list_models(request: Request) -> Response:
        body = await begin(request, sim, gemini_error)
        if isinstance(body, Response):
            return body
        models = [
            {
                "name": f"models/{name}",
                "displayName": name,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for name in GEMINI_MODELS
        ]
        return json_response({"models": models})

    return [
        Route("/v1beta/models", list_models, methods=["GET"]),
        Route("/v1beta/models/{target}", model_action, methods=["POST"]),
        Route("/v1/models/{target}", model_action, methods=["POST"]),
    ]
