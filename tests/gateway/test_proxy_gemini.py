"""Gemini through the OpenAI endpoint: an OpenAI client calls ``gemini/…``; the gateway speaks
``generateContent`` / ``streamGenerateContent`` upstream and answers in OpenAI's format. Gemini's
``promptTokenCount`` includes cached tokens and ``thoughtsTokenCount`` is billed as output."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.gateway.conftest import TEXT, UPSTREAM_KEY, marker, money, token_cost, words

MODEL = "gemini/gemini-2.5-flash"


def check_record(record, usage, *, status="success", estimated=False):
    assert record["status"] == status, record
    assert record["endpoint"] == "chat"
    assert record["provider"] == "gemini"
    assert record["model"] == MODEL
    assert record["user"] == "bob"
    assert record["usage"] == usage
    assert record["estimated"] is estimated
    assert money(record["cost"]) == token_cost(usage)


def test_non_streamed_with_cached_and_thoughts_tokens(gateway):
    m = marker()
    prompt = f"{m} think hard [[sim cached=20 reasoning=5]]"
    with gateway.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "system", "content": "you are gemini"},
                                   {"role": "user", "content": prompt}],
            extra_headers={"x-meterline-tags": "g"})
        completion = raw.parse()
    n = words(prompt) + words("you are gemini")
    assert raw.headers["content-type"].startswith("application/json")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    # The usage the client sees is the usage billed.
    assert completion.usage.prompt_tokens == n + 20
    assert completion.usage.completion_tokens == 16 + 5
    assert completion.usage.prompt_tokens_details.cached_tokens == 20
    assert completion.usage.completion_tokens_details.reasoning_tokens == 5

    record = gateway.record(raw.headers["x-meterline-request-id"])
    usage = {"input_tokens": n + 20, "cached_input_tokens": 20, "output_tokens": 21,
             "reasoning_tokens": 5}
    check_record(record, usage)
    assert record["tags"] == ["g"]
    assert raw.headers["x-meterline-cost"] == record["cost"]
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert "authorization" not in sent.headers
    assert sent.body["systemInstruction"] == {"parts": [{"text": "you are gemini"}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]


@pytest.mark.parametrize("include_usage", [False, True])
def test_streamed(gateway, include_usage):
    m = marker()
    prompt = f"{m} stream it [[sim cached=4 reasoning=3]]"
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with gateway.openai() as client, client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
            **options) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finished[-1] == "stop" and set(finished[:-1]) == {None}
    n = words(prompt)
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
        assert chunks[-1].choices == []
        assert chunks[-1].usage.prompt_tokens == n + 4
        assert chunks[-1].usage.completion_tokens == 19
    else:
        assert with_usage == []
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    record = gateway.record(request_id)
    check_record(record, {"input_tokens": n + 4, "cached_input_tokens": 4, "output_tokens": 19,
                          "reasoning_tokens": 3})
    assert record["ttft_ms"] is not None


def test_async_stream_and_plain(gateway):
    async def run():
        async with gateway.async_openai() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gemini-2.5-flash", messages=[{"role": "user", "content": "one two"}])
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "one two"}], stream=True)
            async with stream:
                text = "".join([c.choices[0].delta.content or "" async for c in stream
                                if c.choices])
                return raw, text, stream.response.headers["x-meterline-request-id"]

    raw, text, streamed_id = asyncio.run(run())
    assert raw.parse().choices[0].message.content == text == TEXT
    for request_id in (raw.headers["x-meterline-request-id"], streamed_id):
        check_record(gateway.record(request_id), {"input_tokens": 2, "output_tokens": 16})


def test_stream_without_usage_is_estimated_from_the_request_and_text(gateway):
    prompt = "a fairly long question about the weather in many cities [[sim no_usage]]"
    with gateway.openai() as client, client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
            stream_options={"include_usage": True}) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert all(c.usage is None for c in chunks)
    record = gateway.record(request_id)
    assert record["status"] == "success"
    assert record["estimated"] is True
    usage = record["usage"]
    # Estimates: about 4 characters a token, plus a little per message.
    assert usage["input_tokens"] >= len(prompt) // 4
    assert usage["output_tokens"] == -(-len(TEXT) // 4)
    assert money(record["cost"]) == token_cost(usage)


def test_upstream_error_in_openai_shape(gateway):
    with gateway.openai() as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x [[sim status=429]]"}])
    response = caught.value.response
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == 429
    assert "Simulated error (HTTP 429)" in error["message"]
    record = gateway.record(response.headers["x-meterline-request-id"])
    assert record["status"] == "error" and record["http_status"] == 429
    assert record["provider"] == "gemini"
