"""Anthropic messages through the gateway (``POST /v1/messages``), driven with the official
``anthropic`` SDK, sync and async, streamed and not. Anthropic's ``input_tokens`` leaves out
cache reads and writes; the ledger's ``input_tokens`` counts them (SPEC §1)."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from meterline.simulator.anthropic import anthropic_error
from tests.gateway.conftest import TEXT, UPSTREAM_KEY, marker, money, token_cost, words

MODEL = "anthropic/claude-sonnet-4-6"
META = {"x-meterline-tags": "a,b", "x-meterline-metadata": '{"purpose":"x"}'}


def check_record(record, usage, *, status="success", user="bob"):
    assert record["status"] == status, record
    assert record["endpoint"] == "messages"
    assert record["provider"] == "anthropic"
    assert record["model"] == MODEL
    assert record["user"] == user
    assert record["usage"] == usage
    assert record["estimated"] is False
    assert money(record["cost"]) == token_cost(usage)
    assert record["currency"] == "USD"
    assert record["latency_ms"] is not None


def test_one_hour_cache_writes_are_priced_apart(gateway):
    m = marker()
    prompt = f"{m} keep this an hour [[sim cache_write=20 cache_write_1h=30]]"
    with gateway.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": prompt}])
        message = raw.parse()
    assert message.usage.cache_creation_input_tokens == 50
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 30
    record = gateway.record(raw.headers["x-meterline-request-id"])
    n = words(prompt)
    assert record["usage"] == {"input_tokens": n + 50, "cache_write_tokens": 50,
                               "cache_write_1h_tokens": 30, "output_tokens": 16}
    # n * 1 + 20 * 1.25 + 30 * 2 + 16 * 2 per 1M: the hour's writes at their own price
    assert money(record["cost"]) * 1_000_000 == n + 25 + 60 + 32
    assert [(line["meter"], line["quantity"]) for line in record["lines"]] == [
        ("input_tokens", str(n)), ("cache_write_tokens", "20"),
        ("cache_write_1h_tokens", "30"), ("output_tokens", "16")]


def test_message_non_streamed_sync_with_cache_read_and_write(gateway):
    m = marker()
    prompt = f"{m} tell me a story [[sim cached=100 cache_write=50]]"
    with gateway.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, system="you are terse",
            messages=[{"role": "user", "content": prompt}], extra_headers=META)
        message = raw.parse()
    assert message.content[0].text == TEXT
    assert message.model == "claude-sonnet-4-6"
    n = words(prompt) + words("you are terse")
    # The client sees Anthropic's own usage, untouched.
    assert message.usage.input_tokens == n
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.cache_creation_input_tokens == 50
    assert message.usage.output_tokens == 16

    record = gateway.record(raw.headers["x-meterline-request-id"])
    usage = {"input_tokens": n + 150, "cached_input_tokens": 100, "cache_write_tokens": 50,
             "output_tokens": 16}
    check_record(record, usage)
    # n * 1 + 100 * 0.1 + 50 * 1.25 + 16 * 2 per 1M
    assert money(record["cost"]) * 1_000_000 == n + 10 + 62.5 + 32
    assert raw.headers["x-meterline-cost"] == record["cost"]
    assert raw.headers["x-meterline-currency"] == "USD"
    assert record["tags"] == ["a", "b"] and record["metadata"] == {"purpose": "x"}
    assert record["ttft_ms"] is None and record["http_status"] == 200

    sent = gateway.upstream.one(m)
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in sent.headers
    # The client's API version goes upstream.
    assert sent.headers["anthropic-version"] == client.default_headers["anthropic-version"]
    assert sent.body["model"] == "claude-sonnet-4-6"
    assert sent.body["system"] == "you are terse"
    assert "stream_options" not in sent.body
    assert UPSTREAM_KEY not in raw.http_response.text


def test_message_streamed_sync_counts_cumulative_deltas_once(gateway):
    m = marker()
    prompt = f"{m} stream a story [[sim cached=100 cache_write=50 tokens=20]]"
    key, _ = gateway.new_key()  # bound to no user, so that it may name one
    with gateway.anthropic(key) as client, client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": prompt}],
            extra_headers={"x-meterline-user": "carol"}) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        assert "x-meterline-cost" not in stream.response.headers
        events = list(stream)
        final = stream.get_final_message()
    from meterline.simulator.directives import generated_text
    assert final.content[0].text == generated_text(20)
    # Every event the upstream sent reaches the client: two cumulative message_delta events.
    deltas = [e for e in events if e.type == "message_delta"]
    assert [d.usage.output_tokens for d in deltas] == [10, 20]
    assert final.usage.output_tokens == 20
    n = words(prompt)
    record = gateway.record(request_id)
    usage = {"input_tokens": n + 150, "cached_input_tokens": 100, "cache_write_tokens": 50,
             "output_tokens": 20}
    check_record(record, usage, user="carol")
    assert record["ttft_ms"] is not None
    assert gateway.upstream.one(m).body["stream"] is True


def test_message_async_streamed_and_not(gateway):
    prompt = "two calls [[sim cached=7 cache_write=3 reasoning=4]]"

    async def run():
        async with gateway.async_anthropic() as client:
            raw = await client.messages.with_raw_response.create(
                model="claude-sonnet-4-6", max_tokens=50,
                messages=[{"role": "user", "content": prompt}])
            stream = await client.messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": prompt}],
                stream=True)
            async with stream:
                events = [e async for e in stream]
                streamed_id = stream.response.headers["x-meterline-request-id"]
            return raw, await raw.parse(), events, streamed_id

    raw, message, events, streamed_id = asyncio.run(run())
    assert message.content[0].text == TEXT
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == TEXT
    assert events[-1].type == "message_stop"
    n = words(prompt)
    # Thinking tokens are part of Anthropic's output_tokens.
    usage = {"input_tokens": n + 10, "cached_input_tokens": 7, "cache_write_tokens": 3,
             "output_tokens": 20}
    for request_id in (raw.headers["x-meterline-request-id"], streamed_id):
        check_record(gateway.record(request_id), usage)


def test_upstream_errors_keep_anthropics_shape(gateway):
    with gateway.anthropic() as client:
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.with_raw_response.create(
                model=MODEL, max_tokens=10,
                messages=[{"role": "user", "content": "busy [[sim status=429 retry_after=7]]"}])
        with pytest.raises(anthropic.InternalServerError) as broken:
            client.messages.create(
                model=MODEL, max_tokens=10,
                messages=[{"role": "user", "content": "boom [[sim status=500]]"}])
    for caught, status, kind in ((limited, 429, "rate_limit_error"),
                                 (broken, 500, "api_error")):
        response = caught.value.response
        assert response.status_code == status
        assert response.content == anthropic_error(status,
                                                   f"Simulated error (HTTP {status}).").body
        assert response.json()["error"]["type"] == kind
        record = gateway.record(response.headers["x-meterline-request-id"])
        assert record["status"] == "error"
        assert record["http_status"] == status
        assert record["endpoint"] == "messages"
        assert f"HTTP {status}" in record["error"]
        assert record["usage"] == {}
        assert money(record["cost"]) == 0
    assert limited.value.response.headers["retry-after"] == "7"


def test_gateway_errors_take_anthropics_shape(gateway):
    count = gateway.upstream.count()
    with gateway.anthropic(key="ml-not-a-key") as client, \
            pytest.raises(anthropic.AuthenticationError) as denied:
        client.messages.create(model=MODEL, max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    body = denied.value.response.json()
    assert body["type"] == "error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"]
    with gateway.anthropic() as client:
        with pytest.raises(anthropic.NotFoundError) as unknown:
            client.messages.create(model="anthropic/claude-sonet-4-6", max_tokens=10,
                                   messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.BadRequestError) as wrong_format:
            client.messages.create(model="openai/gpt-5-nano", max_tokens=10,
                                   messages=[{"role": "user", "content": "hi"}])
    unknown_body = unknown.value.response.json()
    assert unknown_body["type"] == "error"
    assert unknown_body["error"]["code"] == "model_not_found"
    assert "anthropic/claude-sonnet-4-6" in unknown_body["error"]["candidates"]
    wrong = wrong_format.value.response.json()
    assert wrong["type"] == "error"
    assert wrong["error"]["code"] == "invalid_request"
    assert wrong["error"]["field"] == "model"
    assert gateway.upstream.count() == count  # none of them reached the provider


def test_plain_http_client_without_an_api_version(gateway):
    """A client that sends no ``anthropic-version`` gets the gateway's default upstream; the
    gateway's key may come as ``x-api-key``."""
    m = marker()
    with gateway.http() as http:
        answer = http.post("/v1/messages", headers={"x-api-key": gateway.key}, json={
            "model": MODEL, "max_tokens": 5,
            "messages": [{"role": "user", "content": f"{m} hello"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"][0]["text"] == "lorem ipsum dolor sit amet"
    assert answer.json()["stop_reason"] == "max_tokens"
    sent = gateway.upstream.one(m)
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY
    record = gateway.record(answer.headers["x-meterline-request-id"])
    check_record(record, {"input_tokens": 2, "output_tokens": 5})
    assert answer.headers["x-meterline-cost"] == record["cost"] == "0.000012"
