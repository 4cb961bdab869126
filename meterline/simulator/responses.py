"""OpenAI Responses API: ``POST /v1/responses`` (streamed as typed events and not),
``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}`` and ``POST .../cancel``.

``background: true`` (not streamed) answers ``queued`` with no usage; the response is finished
(``completed`` with its usage) at its ``polls=N``-th retrieval (the first by default), and
``in_progress`` before. Cancelling a running background response answers ``cancelled`` with
the prompt's usage and no output; cancelling any other is refused (400).

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
    authorized,
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


def tool_items(rid: str, p: Plan) -> list[dict[str, Any]]:
    """The built-in tool calls the directives ask for, as Responses output items."""
    d = p.directives
    items: list[dict[str, Any]] = [
        {"id": f"ws_{rid[5:]}_{n}", "type": "web_search_call", "status": "completed",
         "action": {"type": "search", "query": "meterline"}} for n in range(d.searches)]
    items += [{"id": f"fs_{rid[5:]}_{n}", "type": "file_search_call", "status": "completed",
               "queries": ["meterline"], "results": None} for n in range(d.file_searches)]
    items += [{"id": f"ci_{rid[5:]}_{n}_{call}", "type": "code_interpreter_call",
               "status": "completed", "code": "print(1)", "container_id": f"cntr_{rid[5:]}_{n}",
               "outputs": None} for n in range(d.code_sessions) for call in range(2)]
    return items


def _response(rid: str, model: str, p: Plan, status: str, text: str) -> dict[str, Any]:
    message = {"id": f"msg_{rid[5:]}", "type": "message", "status": "completed",
               "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    output = [*tool_items(rid, p), message] if text else []
    answer: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": output, "usage": None,
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
    tools = tool_items(rid, p)
    at = len(tools)  # the message follows the tool calls
    head = [event("response.created", response=_response(rid, model, p, "in_progress", "")),
            event("response.in_progress", response=_response(rid, model, p, "in_progress", "")),
            *(piece for index, tool in enumerate(tools) for piece in (
                event("response.output_item.added", output_index=index,
                      item={**tool, "status": "in_progress"}),
                event("response.output_item.done", output_index=index, item=tool))),
            event("response.output_item.added", output_index=at, item=item),
            event("response.content_part.added", item_id=item["id"], output_index=at,
                  content_index=0, part={"type": "output_text", "text": "", "annotations": []})]
    content = [event("response.output_text.delta", item_id=item["id"], output_index=at,
                     content_index=0, delta=text)
               for text, _ in content_pieces(p.output)]
    text = generated_text(p.output)
    final = "incomplete" if p.truncated else "completed"
    tail = [event("response.output_text.done", item_id=item["id"], output_index=at,
                  content_index=0, text=text),
            event(f"response.{final}", response=_response(rid, model, p, final, text))]
    return EventStream(head, content, tail, p.directives, sim)


def responses_routes(sim: SimState) -> list[Route]:
    stored: dict[str, dict[str, Any]] = {}
    #: Background responses not finished yet: their plan and the retrievals left until done.
    running: dict[str, tuple[Plan, int]] = {}

    def advance(rid: str) -> None:
        """A retrieval of a running background response: one poll closer to finished."""
        if rid not in running:
            return
        p, left = running[rid]
        if left > 1:
            running[rid] = (p, left - 1)
            stored[rid]["status"] = "in_progress"
            return
        del running[rid]
        final = "incomplete" if p.truncated else "completed"
        stored[rid] = {**_response(rid, stored[rid]["model"], p, final,
                                   generated_text(p.output)),
                       "background": True, "service_tier": stored[rid]["service_tier"],
                       "tools": stored[rid]["tools"]}

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
        background = body.get("background") is True
        declared = body.get("tools") if isinstance(body.get("tools"), list) else []
        if background and body.get("stream") is not True:
            stored[rid] = {**_response(rid, model, p, "queued", ""), "background": True,
                           "service_tier": served_tier(body), "tools": declared}
            running[rid] = (p, max(1, p.directives.polls))
            return json_response(stored[rid])
        stored[rid] = _response(rid, model, p, status, generated_text(p.output))
        stored[rid]["service_tier"] = served_tier(body)
        stored[rid]["background"] = background
        stored[rid]["tools"] = declared
        if body.get("stream") is True:
            return _stream(sim, rid, model, p)
        return json_response(stored[rid])

    async def one(request: Request) -> Response:
        refused = await begin_bodiless(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        if rid not in stored:
            return openai_error(404, f"No response found with id '{rid}'.")
        if request.method == "DELETE":
            del stored[rid]
            running.pop(rid, None)
            return json_response({"id": rid, "object": "response.deleted", "deleted": True})
        advance(rid)
        return json_response(stored[rid])

    async def cancel(request: Request) -> Response:
        refused = await begin_bodiless(request)
        if refused is not None:
            return refused
        rid = request.path_params["rid"]
        found = stored.get(rid)
        if found is None:
            return openai_error(404, f"No response found with id '{rid}'.")
        if not found.get("background"):
            return openai_error(400, "Only responses created with background=true can be "
                                     "cancelled.")
        if rid not in running:
            return openai_error(400, f"Cannot cancel a response with status "
                                     f"'{found['status']}'.")
        # The prompt was read; nothing was generated.
        p, _ = running.pop(rid)
        usage = responses_usage(p)
        usage.update(output_tokens=0, output_tokens_details={"reasoning_tokens": 0},
                     total_tokens=usage["input_tokens"])
        stored[rid] = {**found, "status": "cancelled",
                       "usage": None if p.directives.no_usage else usage}
        return json_response(stored[rid])

    async def begin_bodiless(request: Request) -> Response | None:
        """Count the request and check its key, as ``begin`` does for requests with a body."""
        path = request.scope["path"]
        sim.requests[path] = sim.requests.get(path, 0) + 1
        sim.remember(request, None)
        if sim.require_key is not None and not authorized(request, sim.require_key):
            return openai_error(401, "Incorrect or missing API key.")
        return None

    return [Route("/v1/responses", create, methods=["POST"]),
            Route("/v1/responses/{rid}", one, methods=["GET", "DELETE"]),
            Route("/v1/responses/{rid}/cancel", cancel, methods=["POST"])]
