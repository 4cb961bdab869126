"""OpenAI wire format: chat completions (streamed and not) and OpenAI-shaped errors."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.simulator.common import (
    EventStream,
    SimState,
    begin,
    block_texts,
    gate,
    json_response,
    make_plan,
)
from meterline.simulator.compatible import PATHS, completion, dialect_of, put_cost, stream
from meterline.simulator.directives import Plan, content_pieces, generated_text

FINGERPRINT = "fp_simulator"

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}


def openai_error(status: int, message: str) -> Response:
    """``{"error": {"message", "type", "param", "code"}}`` with HTTP ``status``."""
    kind, code = _ERRORS.get(
        status, ("server_error", "server_error") if status >= 500 else ("invalid_request_error", "")
    )
    return json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code or None}}, status
    )


def openai_usage(p: Plan, model: str) -> dict[str, Any]:
    """Chat usage: cached tokens are part of prompt_tokens, reasoning part of completion."""
    prompt = p.prompt + p.cached
    completion = p.output + p.reasoning
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": p.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": p.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if model.lower().startswith("deepseek"):
        usage["prompt_cache_hit_tokens"] = p.cached
        usage["prompt_cache_miss_tokens"] = p.prompt
    return usage


def served_tier(body: dict[str, Any]) -> str:
    """The tier an answer says it was served in: the one asked for, ``auto`` as ``default``."""
    tier = body.get("service_tier")
    return tier if isinstance(tier, str) and tier not in ("", "auto") else "default"


def _completion(cid: str, model: str, p: Plan, tier: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "service_tier": tier,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": generated_text(p.output),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "length" if p.truncated else "stop",
            }
        ],
    }
    if not p.directives.no_usage:
        answer["usage"] = usage = openai_usage(p, model)
        put_cost(p, answer, usage)
    return answer


@lru_cache(maxsize=256)
def _content_tails(words: int) -> tuple[bytes, ...]:
    """The end of each content chunk of an answer (``,"choices":...}``), serialised once."""
    return tuple(
        b',"choices":'
        + orjson.dumps(
            [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
        )
        + b',"usage":null}\n\n'
        for text, _ in content_pieces(words)
    )


def _stream(sim: SimState, cid: str, model: str, p: Plan, include_usage: bool,
            tier: str) -> EventStream:
    # Every chunk starts alike: serialise that once and end it per chunk.
    start = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": tier,
        "system_fingerprint": FINGERPRINT,
    }
    prefix = b"data: " + orjson.dumps(start)[:-1]

    def event(choices: list[Any], usage: dict[str, Any] | None = None) -> bytes:
        rest = {"choices": choices, "usage": usage}
        return prefix + b"," + orjson.dumps(rest)[1:] + b"\n\n"

    def delta(part: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": part, "logprobs": None, "finish_reason": finish}]

    head = [event(delta({"role": "assistant", "content": "", "refusal": None}))]
    content = [prefix + tail for tail in _content_tails(p.output)]
    tail = [event(delta({}, "length" if p.truncated else "stop"))]
    if include_usage and not p.directives.no_usage:
        usage = openai_usage(p, model)
        more: dict[str, Any] = {}
        put_cost(p, more, usage)
        tail.append(event([], usage) if not more else
                    b"data: " + orjson.dumps({**start, "choices": [], "usage": usage, **more})
                    + b"\n\n")
    tail.append(b"data: [DONE]\n\n")
    return EventStream(head, content, tail, p.directives, sim)


def chat_routes(sim: SimState) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        if "deployment" in request.path_params and not request.query_params.get("api-version"):
            return openai_error(404, "Resource not found")  # as Azure answers it
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return openai_error(400, "You must provide a model parameter.")
        if not isinstance(messages, list) or not messages:
            return openai_error(400, "'messages' must be a non-empty array.")
        texts: list[str] = []
        for message in messages:
            if isinstance(message, dict):
                block_texts(message.get("content"), texts)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        p = make_plan("\n".join(texts), max_tokens, openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        cid = sim.next_id("chatcmpl-")
        streamed = body.get("stream") is True
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        dialect = dialect_of(request.scope["path"], model)
        if dialect is not None:
            if streamed:
                return stream(sim, dialect, cid, model, p, include)
            return json_response(completion(dialect, cid, model, p))
        if streamed:
            return _stream(sim, cid, model, p, include, served_tier(body))
        return json_response(_completion(cid, model, p, served_tier(body)))

    # Azure OpenAI serves the same at a deployment's path (with api-version) and at its v1 API;
    # the OpenAI-compatible providers at their own paths (simulator/compatible.py).
    paths = ("/v1/chat/completions", "/openai/v1/chat/completions",
             "/openai/deployments/{deployment}/chat/completions", *PATHS)
    return [Route(path, chat_completions, methods=["POST"]) for path in paths]
