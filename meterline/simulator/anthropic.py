"""Anthropic wire format: ``POST /v1/messages`` (streamed and not) and Anthropic-shaped errors."""

from __future__ import annotations

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
from meterline.simulator.directives import Plan, content_pieces, generated_text

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> Response:
    """``{"type": "error", "error": {"type", "message"}}`` with HTTP ``status``."""
    kind = _ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json_response({"type": "error", "error": {"type": kind, "message": message}}, status)


def anthropic_usage(p: Plan) -> dict[str, Any]:
    """Message usage: input_tokens excludes cache reads and writes; output includes thinking."""
    return {
        "input_tokens": p.prompt,
        "cache_creation_input_tokens": p.cache_write + p.cache_write_1h,
        "cache_read_input_tokens": p.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": p.cache_write,
            "ephemeral_1h_input_tokens": p.cache_write_1h,
        },
        "output_tokens": p.output + p.reasoning,
        "server_tool_use": {"web_search_requests": p.directives.searches,
                            "web_fetch_requests": 0},
        "service_tier": "standard",
    }


def _message(mid: str, model: str, p: Plan) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": generated_text(p.output)}],
        "stop_reason": "max_tokens" if p.truncated else "end_turn",
        "stop_sequence": None,
    }
    if not p.directives.no_usage:
        answer["usage"] = anthropic_usage(p)
    return answer


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_BLOCK_START = _event(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
_PING = _event("ping", {"type": "ping"})
_BLOCK_STOP = _event("content_block_stop", {"type": "content_block_stop", "index": 0})
_MESSAGE_STOP = _event("message_stop", {"type": "message_stop"})


@lru_cache(maxsize=256)
def _text_deltas(words: int) -> tuple[bytes, ...]:
    """The content_block_delta events of an answer, serialised once per length."""
    return tuple(
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        )
        for text, _ in content_pieces(words)
    )


def _stream(sim: SimState, mid: str, model: str, p: Plan) -> EventStream:
    with_usage = not p.directives.no_usage
    start = {**_message(mid, model, p), "content": [], "stop_reason": None}
    if with_usage:
        start["usage"] = {**anthropic_usage(p), "output_tokens": 1}
    head = [
        _event("message_start", {"type": "message_start", "message": start}),
        _BLOCK_START,
        _PING,
    ]
    pieces = content_pieces(p.output)
    content = list(_text_deltas(p.output))
    if pieces and with_usage:
        midway = (len(pieces) + 1) // 2
        produced = p.reasoning + sum(words for _, words in pieces[:midway])
        partial = {
            "type": "message_delta",
            "delta": {"stop_reason": None, "stop_sequence": None},
            "usage": {"output_tokens": produced},
        }
        content[midway - 1] += _event("message_delta", partial)
    stop = "max_tokens" if p.truncated else "end_turn"
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
    }
    if with_usage:
        final["usage"] = {"output_tokens": p.output + p.reasoning,
                          "server_tool_use": anthropic_usage(p)["server_tool_use"]}
    tail = [_BLOCK_STOP, _event("message_delta", final), _MESSAGE_STOP]
    return EventStream(head, content, tail, p.directives, sim)


def _texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    block_texts(body.get("system"), texts)
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            block_texts(message.get("content"), texts)
    return texts


def anthropic_routes(sim: SimState) -> list[Route]:
    async def messages(request: Request) -> Response:
        body = await begin(request, sim, anthropic_error)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        max_tokens = body.get("max_tokens")
        if not isinstance(model, str) or not model:
            return anthropic_error(400, "model: Field required")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return anthropic_error(400, "messages: Field required")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return anthropic_error(400, "max_tokens: Field required")
        p = make_plan("\n".join(_texts(body)), max_tokens, anthropic_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, anthropic_error)
        if refused is not None:
            return refused
        mid = sim.next_id("msg_")
        if body.get("stream") is True:
            return _stream(sim, mid, model, p)
        return json_response(_message(mid, model, p))

    return [Route("/v1/messages", messages, methods=["POST"])]
