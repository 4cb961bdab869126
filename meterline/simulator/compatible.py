"""OpenAI-compatible Chinese providers, each with its own usage fields and stream habits.

They all take OpenAI's chat request, but each documents its own answer: where cache hits and
reasoning tokens are counted, and where a stream's usage comes (a chunk of its own after the last
choice, the chunk that finishes the choice, or inside that choice). The simulator serves each at
its real path (so a provider configured with the real ``base_url``'s path reaches its dialect),
and the two that share OpenAI's ``/v1`` path by their model names:

============  ==================================  ===========================================
dialect       path (model prefix)                 usage
============  ==================================  ===========================================
deepseek      ``/chat/completions``               ``prompt_cache_hit_tokens`` + ``..._miss_
                                                  tokens`` = prompt; ``completion_tokens_
                                                  details.reasoning_tokens``; own usage chunk
qwen          ``/compatible-mode/v1/...``         ``prompt_tokens_details.cached_tokens`` and,
                                                  for explicit cache writes, ``.cache_creation_
                                                  input_tokens``; own usage chunk
volcano       ``/api/v3/...``                     ``prompt_tokens_details.cached_tokens``,
                                                  ``completion_tokens_details.reasoning_tokens``;
                                                  own usage chunk
zhipu         ``/api/paas/v4/...``                ``prompt_tokens_details.cached_tokens``;
                                                  usage on the finishing chunk, always; no
                                                  ``object`` field
baidu         ``/v2/...``                         OpenAI's details; usage on the finishing chunk
                                                  when asked for
minimax       ``/v1/...`` (``MiniMax-``)          ``total_characters``, ``completion_tokens_
                                                  details.reasoning_tokens``; usage on the
                                                  finishing chunk, always; ``base_resp``
moonshot      ``/v1/...`` (``kimi-``,             top-level ``cached_tokens``; in a stream the
              ``moonshot-``)                      usage sits inside the finishing choice
============  ==================================  ===========================================

Reasoning (``reasoning=N``) comes as ``reasoning_content`` text of N words, before the answer,
and counts in ``completion_tokens`` (Zhipu reports no split). ``cost=X`` and ``cost_in=PATH``
put a per-call cost into the answer as for OpenAI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from meterline.simulator.common import EventStream, SimState
from meterline.simulator.directives import Plan, content_pieces, generated_text

#: Where a stream's usage comes: a chunk of its own (``choices: []``, only when the request
#: asked with ``stream_options.include_usage``), the chunk that finishes the choice, or inside
#: that chunk's choice.
UsagePlace = Literal["own_chunk", "finish_chunk", "in_choice"]


def _tokens(p: Plan, writes: bool = False) -> tuple[int, int]:
    """(prompt, completion) tokens; cache writes count only where the dialect reports them."""
    return p.prompt + p.cached + (p.cache_write if writes else 0), p.output + p.reasoning


def _deepseek(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": p.cached},
            "prompt_cache_hit_tokens": p.cached, "prompt_cache_miss_tokens": prompt - p.cached,
            "completion_tokens_details": {"reasoning_tokens": p.reasoning}}


def _qwen(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p, writes=True)
    details: dict[str, Any] = {"cached_tokens": p.cached}
    if p.cache_write:
        details.update(cache_creation_input_tokens=p.cache_write, cache_type="ephemeral",
                       cache_creation={"ephemeral_5m_input_tokens": p.cache_write})
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion,
                             "prompt_tokens_details": details}
    if p.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": p.reasoning}
    return usage


def _volcano(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"completion_tokens": completion, "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": p.cached},
            "completion_tokens_details": {"reasoning_tokens": p.reasoning}}


def _zhipu(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": p.cached},
            "total_tokens": prompt + completion}


def _baidu(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": p.cached},
            "completion_tokens_details": {"reasoning_tokens": p.reasoning}}


def _minimax(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"total_tokens": prompt + completion, "total_characters": 0,
            "prompt_tokens": prompt, "completion_tokens": completion,
            "completion_tokens_details": {"reasoning_tokens": p.reasoning}}


def _moonshot(p: Plan) -> dict[str, Any]:
    prompt, completion = _tokens(p)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "cached_tokens": p.cached}


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    usage: Callable[[Plan], dict[str, Any]]
    place: UsagePlace
    #: Usage comes in a stream even when the request did not ask for it.
    always_usage: bool = False
    #: Chunks say ``"object": "chat.completion.chunk"`` (Zhipu's do not).
    has_object: bool = True
    #: Chunks without usage say ``"usage": null``.
    null_usage: bool = True
    extra: tuple[tuple[str, Any], ...] = ()


DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    Dialect("deepseek", _deepseek, "own_chunk"),
    Dialect("qwen", _qwen, "own_chunk", null_usage=False),
    Dialect("volcano", _volcano, "own_chunk", extra=(("service_tier", "default"),)),
    Dialect("zhipu", _zhipu, "finish_chunk", always_usage=True, has_object=False,
            null_usage=False),
    Dialect("baidu", _baidu, "finish_chunk", null_usage=False),
    Dialect("minimax", _minimax, "finish_chunk", always_usage=True, null_usage=False,
            extra=(("input_sensitive", False), ("output_sensitive", False),
                   ("base_resp", {"status_code": 0, "status_msg": ""}))),
    Dialect("moonshot", _moonshot, "in_choice", always_usage=True, null_usage=False),
)}
#: The providers' own paths to chat completions (below their documented base URLs).
PATHS = {"/chat/completions": "deepseek", "/compatible-mode/v1/chat/completions": "qwen",
         "/api/v3/chat/completions": "volcano", "/api/paas/v4/chat/completions": "zhipu",
         "/v2/chat/completions": "baidu"}
_PREFIXES = (("minimax-", "minimax"), ("kimi-", "moonshot"), ("moonshot-", "moonshot"))


def dialect_of(path: str, model: str) -> Dialect | None:
    """The dialect a request at ``path`` for ``model`` gets; None: OpenAI's own."""
    name = PATHS.get(path)
    if name is None:
        lowered = model.lower()
        name = next((n for prefix, n in _PREFIXES if lowered.startswith(prefix)), None)
    return DIALECTS[name] if name is not None else None


def put_cost(p: Plan, body: dict[str, Any], usage: dict[str, Any]) -> None:
    """``cost=X``: the per-call cost in ``usage.cost``, or at ``cost_in=PATH`` (dotted, from
    the answer's top) when given."""
    cost = p.directives.cost
    if cost is None:
        return
    path = p.directives.cost_in
    if path is None:
        usage["cost"] = cost
        return
    *parents, last = path.split(".")
    holder = body
    for name in parents:
        holder = holder.setdefault(name, {})
    holder[last] = cost


def completion(d: Dialect, cid: str, model: str, p: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": generated_text(p.output)}
    if p.reasoning:
        message["reasoning_content"] = generated_text(p.reasoning)
    answer: dict[str, Any] = {"id": cid, "created": int(time.time()), "model": model,
                              "choices": [{"index": 0, "message": message,
                                           "finish_reason": "length" if p.truncated
                                           else "stop"}]}
    if d.has_object:
        answer["object"] = "chat.completion"
    answer.update(d.extra)
    if not p.directives.no_usage:
        answer["usage"] = usage = d.usage(p)
        put_cost(p, answer, usage)
    return answer


def stream(sim: SimState, d: Dialect, cid: str, model: str, p: Plan,
           include_usage: bool) -> EventStream:
    head_fields: dict[str, Any] = {"id": cid, "created": int(time.time()), "model": model}
    if d.has_object:
        head_fields["object"] = "chat.completion.chunk"
    head_fields.update(d.extra)

    def event(choices: list[Any], usage: dict[str, Any] | None = None,
              **more: Any) -> bytes:
        chunk = {**head_fields, "choices": choices, **more}
        if usage is not None or d.null_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(part: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": part, "finish_reason": finish}]

    reasoning = [event(delta({"reasoning_content": text}))
                 for text, _ in content_pieces(p.reasoning)] if p.reasoning else []
    content = [*reasoning, *(event(delta({"content": text}))
                             for text, _ in content_pieces(p.output))]
    head = [event(delta({"role": "assistant", "content": ""}))]
    finish = delta({}, "length" if p.truncated else "stop")
    usage: dict[str, Any] | None = None
    more: dict[str, Any] = {}
    if not p.directives.no_usage and (include_usage or d.always_usage):
        usage = d.usage(p)
        put_cost(p, more, usage)
    if usage is None or d.place == "own_chunk":
        tail = [event(finish)]
        if usage is not None:
            tail.append(event([], usage, **more))
    elif d.place == "finish_chunk":
        tail = [event(finish, usage, **more)]
    else:
        finish[0]["usage"] = usage
        tail = [event(finish, **more)]
    tail.append(b"data: [DONE]\n\n")
    return EventStream(head, content, tail, p.directives, sim)
