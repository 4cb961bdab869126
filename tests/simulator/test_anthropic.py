"""Anthropic messages through the official SDK (and raw httpx) over real HTTP."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from meterline.simulator import SimState


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.strip().split("\n\n"):
        kind, data = block.split("\n")
        assert kind.startswith("event: ") and data.startswith("data: ")
        out.append((kind[len("event: ") :], orjson.loads(data[len("data: ") :])))
    return out


def test_non_stream_usage_excludes_cache(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        system="you are terse",
        messages=ask("hello there [[sim cached=100 cache_write=20 reasoning=5 tokens=4]]"),
    )
    assert (message.type, message.role, message.model) == (
        "message",
        "assistant",
        "claude-sonnet-4-6",
    )
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "lorem ipsum dolor sit"
    usage = message.usage
    assert usage.input_tokens == 5  # "you are terse" + "hello there"
    assert usage.cache_read_input_tokens == 100
    assert usage.cache_creation_input_tokens == 20
    assert usage.output_tokens == 9


def test_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=2, messages=ask("hi"))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


def test_stream_through_the_sdk(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=ask("hi [[sim cached=7 tokens=6]]")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "lorem ipsum dolor sit amet consectetur"
    assert final.usage.input_tokens == 1
    assert final.usage.cache_read_input_tokens == 7
    assert final.usage.output_tokens == 6
    assert final.stop_reason == "end_turn"


def test_stream_events_and_cumulative_output(http: httpx.Client) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "stream": True,
        "messages": ask("a b c [[sim tokens=4 cached=2 cache_write=3]]"),
    }
    response = http.post("/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response.text)
    kinds = [kind for kind, _ in got]
    assert kinds == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "message_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == kind for kind, data in got)
    start = got[0][1]["message"]["usage"]
    assert start["input_tokens"] == 3
    assert start["cache_read_input_tokens"] == 2
    assert start["cache_creation_input_tokens"] == 3
    assert start["output_tokens"] == 1
    deltas = [data["usage"]["output_tokens"] for kind, data in got if kind == "message_delta"]
    assert deltas == [2, 4]


def test_no_usage_stream(http: httpx.Client) -> None:
    body = {"model": "c", "max_tokens": 9, "stream": True, "messages": ask("[[sim no_usage]]")}
    got = events(http.post("/v1/messages", json=body).text)
    assert "usage" not in got[0][1]["message"]
    assert [kind for kind, _ in got].count("message_delta") == 1
    assert all("usage" not in data for _, data in got)
    body["stream"] = False
    assert "usage" not in http.post("/v1/messages", json=body).json()


def test_break_after_gives_the_sdk_an_incomplete_stream(claude: anthropic.Anthropic) -> None:
    seen: list[str] = []
    try:
        with claude.messages.stream(
            model="c", max_tokens=100, messages=ask("[[sim break_after=3 tokens=10]]")
        ) as stream:
            seen.extend(stream.text_stream)
    except Exception as exc:  # the SDK lets its HTTP library's transport error through
        assert "incomplete chunked read" in str(exc) or isinstance(exc, anthropic.APIError)
    else:
        pytest.fail("the SDK read a broken stream to its end")
    assert "".join(seen) == "lorem ipsum dolor"


def test_break_after_raw(http: httpx.Client) -> None:
    body = {
        "model": "c",
        "max_tokens": 99,
        "stream": True,
        "messages": ask("[[sim break_after=1]]"),
    }
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with http.stream("POST", "/v1/messages", json=body) as response:
            for part in response.iter_bytes():
                received += part
    assert received.count(b"event: content_block_delta") == 1
    assert b"message_stop" not in received


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_errors_in_anthropic_shape(
    claude: anthropic.Anthropic,
    sim: SimState,
    status: int,
    error: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    with pytest.raises(error) as raised:
        claude.messages.create(model="c", max_tokens=5, messages=ask(f"x [[sim status={status}]]"))
    assert raised.value.status_code == status
    assert raised.value.response.json() == {
        "type": "error",
        "error": {"type": kind, "message": f"Simulated error (HTTP {status})."},
    }
    assert sim.requests == {"/v1/messages": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 5, "messages": ask("x")},
        {"model": "c", "messages": ask("x")},
        {"model": "c", "max_tokens": 5, "messages": []},
        {"model": "c", "max_tokens": 5, "messages": ask("[[sim tokens=x]]")},
    ],
)
def test_bad_requests(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_model_list(claude: anthropic.Anthropic) -> None:
    assert "claude-sonnet-4-6" in [m.id for m in claude.models.list()]
