"""Chat completions through the official OpenAI SDK (and raw httpx) over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from meterline.simulator import SimState


def ask(text: str) -> list[Any]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def sse_data(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]


def test_non_stream_usage(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=ask("hello there world"))
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    assert len((reply.choices[0].message.content or "").split()) == 16
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 16, 21)
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_cached_reasoning_tokens_and_cost(oai: openai.OpenAI) -> None:
    text = "two words [[sim cached=40 reasoning=6 tokens=4 cost=0.0123]]"
    reply = oai.chat.completions.create(model="gpt-4o", messages=ask(text))
    assert reply.choices[0].message.content == "lorem ipsum dolor sit"
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (44, 10, 54)
    assert usage.prompt_tokens_details.cached_tokens == 40
    assert usage.completion_tokens_details.reasoning_tokens == 6
    assert usage.model_extra and usage.model_extra["cost"] == 0.0123
    assert "prompt_cache_hit_tokens" not in usage.model_extra


def test_deepseek_cache_fields(http: httpx.Client) -> None:
    body = {"model": "deepseek-chat", "messages": ask("a b c [[sim cached=10]]")}
    usage = http.post("/v1/chat/completions", json=body).json()["usage"]
    assert usage["prompt_cache_hit_tokens"] == 10
    assert usage["prompt_cache_miss_tokens"] == 5
    assert usage["prompt_tokens"] == usage["prompt_cache_hit_tokens"] + 5
    assert "cost" not in usage


def test_max_tokens_truncates(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o", messages=ask("hi"), max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    reply = oai.chat.completions.create(
        model="o3-mini", messages=ask("hi [[sim tokens=2]]"), max_completion_tokens=3
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 2


def test_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=ask("one two [[sim tokens=5 cached=3]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "lorem ipsum dolor sit amet"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (7, 5)


def test_stream_without_include_usage_has_no_usage_chunk(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": ask("hi [[sim tokens=2]]"), "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert len(chunks) == 4  # role, two words, finish
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)


def test_no_usage(http: httpx.Client) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": ask("hi [[sim no_usage]]")}
    assert "usage" not in http.post("/v1/chat/completions", json=body).json()
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    data = sse_data(http.post("/v1/chat/completions", json=body).text)
    assert data[-1] == "[DONE]"
    assert all(orjson.loads(d)["choices"] for d in data[:-1])


def test_break_after_gives_the_sdk_an_incomplete_stream(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=ask("hi [[sim break_after=3]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError), stream:
        seen.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "".join(seen) == "lorem ipsum dolor"


def test_break_after_raw(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": ask("[[sim break_after=2]]"), "stream": True}
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            for part in response.iter_bytes():
                received += part
    assert received.count(b"data: ") == 3
    assert b"[DONE]" not in received


def test_delays(http: httpx.Client) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": ask("[[sim delay_ms=150]]")}
    started = time.perf_counter()
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    assert time.perf_counter() - started >= 0.15
    body = {
        "model": "gpt-4o",
        "messages": ask("[[sim chunk_delay_ms=20 tokens=5]]"),
        "stream": True,
    }
    started = time.perf_counter()
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        first = next(lines)
        assert time.perf_counter() - started < 0.1
        assert first.startswith("data: ")
        rest = [line for line in lines if line]
    assert time.perf_counter() - started >= 0.14  # 8 events, 7 gaps of 20 ms
    assert rest[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, openai.BadRequestError, "invalid_request"),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "service_unavailable"),
    ],
)
def test_status_directive(
    oai: openai.OpenAI, sim: SimState, status: int, error: type[openai.APIStatusError], code: str
) -> None:
    with pytest.raises(error) as raised:
        oai.chat.completions.create(model="gpt-4o", messages=ask(f"[[sim status={status}]]"))
    assert raised.value.status_code == status
    assert raised.value.code == code
    body = raised.value.response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    assert sim.requests == {"/v1/chat/completions": 1}  # max_retries=0: no retry


def test_status_on_a_stream_is_a_json_error(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o",
        "messages": ask("[[sim status=429 retry_after=3]]"),
        "stream": True,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "requests"


def test_sdk_retries_are_counted(sim: SimState, sim_url: str) -> None:
    client = openai.OpenAI(base_url=f"{sim_url}/v1", api_key="k", max_retries=1)
    with client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=ask("[[sim status=500]]"))
    assert sim.requests["/v1/chat/completions"] == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o", "messages": []}', "messages"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "[[sim nope]]"}]}', "nope"),
    ],
)
def test_bad_requests(http: httpx.Client, body: bytes, message: str) -> None:
    response = http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_content_parts_count_as_text(http: httpx.Client, sim: SimState) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "c [[sim tokens=1]]"}]},
    ]
    body = {"model": "gpt-4o", "messages": messages}
    usage = http.post("/v1/chat/completions", json=body).json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (3, 1)
    assert sim.received[-1].body == body


def test_a_paced_stream_stops_when_the_client_leaves(http: httpx.Client, sim: SimState) -> None:
    body = {
        "model": "gpt-4o",
        "messages": ask("[[sim chunk_delay_ms=50 tokens=60]]"),
        "stream": True,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert next(response.iter_lines()).startswith("data: ")
    deadline = time.monotonic() + 2
    while sim.abandoned == 0:
        assert time.monotonic() < deadline, "the simulator kept streaming to nobody"
        time.sleep(0.01)
