"""OpenAI Responses API: ``POST /v1/responses`` (streamed as typed events and not),
``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}`` and ``POST .../cancel``.

Usage is the Responses shape: ``input_tokens`` include the cached ones
(``input_tokens_details.cached_tokens``), ``output_tokens`` the reasoning ones
(``output_tokens_details.reasoning_tokens``). A stream ends with ``response.completed``, whose
response carries the usage (``response.incomplete`` when ``tokens`` exceeds
``max_output_tokens``); ``no_usage`` leaves it out, ``break_after`` drops the connection first.
"""

from __future__ import annotations

import time
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
from meterline.simulator.openai import openai_error, served_tier


def responses_usage(p: Plan) -> dict[str, Any]:
    prompt = p.prompt + p.cached
    output = p.output + p.reasoning
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": p.cached},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": p.reasoning},
            "total_tokens": prompt + output}


def _input_texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    given = body.get("input")
    if isinstance(given, str):
        texts.append(given)
    elif isinstance(given, list):
        for item in given:
            if isinstance(item, dict):
                block_texts(item.get("content"), texts)
    return texts


def _response(rid: str, model: str, p: Plan, status: str, text: str) -> dict[str, Any]:
    message = {"id": f"msg_{rid[5:]}", "type": "message", "status": "completed",
               "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    answer: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": [message] if text else [], "usage": None,
        "incomplete_details": {"reason": "max_output_tokens"} if p.truncated else None,
        "error": None, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }
    if status in ("completed", "incomplete") and not p.directives.no_usage:
        answer["usage"] = responses_usage(p)
    return answer


def _stream(sim: SimState, rid: str, model: str, p: Plan) -> EventStream:
    sequence = iter(range(1 << 30))

    def event(kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(sequence), **data}
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    item = {"id": f"msg_{rid[5:]}", "type": "message", "status": "in_progress",
            "role": "assistant", "content": []}
    head = [event("response.created", response=_response(rid, model, p, "in_progress", "")),
            event("response.in_progress", response=_response(rid, model, p, "in_progress", "")),
            event("response.output_item.added", output_index=0, item=item),
            event("response.content_part.added", item_id=item["id"], output_index=0,
                  content_index=0, part={"type": "output_text", "text": "", "annotations": []})]
    content = [event("response.output_text.delta", item_id=item["id"], output_index=0,
                     content_index=0, delta=text)
               for text, _ in content_pieces(p.output)]
    text = generated_text(p.output)
    final = "incomplete" if p.truncated else "completed"
    tail = [event("response.output_text.done", item_id=item["id"], output_index=0,
                  content_index=0, text=text),
            event(f"response.{final}", response=_response(rid, model, p, final, text))]
    return EventStream(head, content, tail, p.directives, sim)


def responses_routes(sim: SimState) -> list[Route]:
    stored: dict[str, dict[str, Any]] = {}

    async def create(request: Request) -> Response:
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return openai_error(400, "You must provide a model parameter.")
        texts = _input_texts(body)
        if not texts:
            return openai_error(400, "Missing required parameter: 'input'.")
        p = make_plan("\n".join(texts), body.get("max_output_tokens"), openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        rid = sim.next_id("resp_")
        status = "incomplete" if p.truncated else "completed"
        stored[rid] = _response(rid, model, p, status, generated_text(p.output))
        stored[rid]["service_tier"] = served_tier(body)
        if body.get("stream") is True:
            return _stream(sim, rid, model, p)
        return json_response(stored[rid])

    async def one(request: Request) -> Response:
        found = stored.get(request.path_params["rid"])
        if found is None:
            return openai_error(404, f"No response found with id "
                                     f"'{request.path_params['rid']}'.")
        if request.method == "DELETE":
            del stored[found["id"]]
            return json_response({"id": found["id"], "object": "response.deleted",
                                  "deleted": True})
        return json_response(found)

    async def cancel(request: Request) -> Response:
        found = stored.get(request.path_params["rid"])
        if found is None:
            return openai_error(404, "No response found.")
        return openai_error(400, "Only responses created with background=true can be "
                                 "cancelled.")

    return [Route("/v1/responses", create, methods=["POST"]),
            Route("/v1/responses/{rid}", one, methods=["GET", "DELETE"]),
            Route("/v1/responses/{rid}/cancel", cancel, methods=["POST"])]
