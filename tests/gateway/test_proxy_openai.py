"""OpenAI-format chat through the gateway (SPEC §3), driven with the official ``openai`` SDK,
sync and async, streamed and not: what the client sees, what went upstream, what the ledger says.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from decimal import Decimal

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from meterline.config import ProviderConfig, Secret
from meterline.simulator import serve_in_thread
from tests.gateway.conftest import (
    TEXT,
    UPSTREAM_KEY,
    marker,
    money,
    token_cost,
    words,
)

META = {"x-meterline-tags": "a,b", "x-meterline-metadata": '{"purpose":"x"}'}


def check_record(record, *, usage, status="success", endpoint="chat", provider="openai",
                 model="openai/gpt-5-nano", user="bob", estimated=False):
    assert record["status"] == status, record
    assert record["endpoint"] == endpoint
    assert record["provider"] == provider
    assert record["model"] == model
    assert record["user"] == user
    assert record["source"] == "gateway"
    assert record["usage"] == usage
    assert record["estimated"] is estimated
    assert record["pricing"] == "priced"
    assert money(record["cost"]) == token_cost(usage)
    assert record["currency"] == "USD"
    assert record["latency_ms"] is not None and record["latency_ms"] >= 0


def test_chat_non_streamed_sync(gateway):
    m = marker()
    prompt = f"{m} say something nice [[sim cached=40 reasoning=7]]"
    with gateway.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-5-nano", messages=[{"role": "user", "content": prompt}],
            extra_headers=META)
        completion = raw.parse()
    # The client gets the upstream's answer as it was: text, usage, the upstream model id.
    assert completion.choices[0].message.content == TEXT
    assert completion.model == "gpt-5-nano"
    n = words(prompt)
    assert completion.usage.prompt_tokens == n + 40
    assert completion.usage.completion_tokens == 16 + 7
    assert completion.usage.prompt_tokens_details.cached_tokens == 40
    assert completion.usage.completion_tokens_details.reasoning_tokens == 7
    request_id = raw.headers["x-meterline-request-id"]
    assert UPSTREAM_KEY not in raw.http_response.text
    assert all(UPSTREAM_KEY not in v for v in raw.headers.values())

    record = gateway.record(request_id)
    usage = {"input_tokens": n + 40, "cached_input_tokens": 40, "output_tokens": 23,
             "reasoning_tokens": 7}
    check_record(record, usage=usage)
    assert token_cost(usage) == Decimal(n + 40 - 40 + 4 + 46) / 1_000_000
    assert record["tags"] == ["a", "b"]
    assert record["metadata"] == {"purpose": "x"}
    assert record["http_status"] == 200
    assert record["ttft_ms"] is None
    assert record["error"] is None
    assert record["key_id"] == gateway.key_id
    assert record["price_version"] == "openai/gpt-5-nano@2026-11-01T00:00:00+00:00"
    # x-meterline-cost is the ledger's cost, to the last digit.
    assert raw.headers["x-meterline-cost"] == record["cost"]
    assert raw.headers["x-meterline-currency"] == "USD"

    # Upstream: the configured provider key (not the client's), the model without its prefix,
    # the body otherwise unchanged.
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert gateway.key not in json.dumps(sent.headers)
    assert not any(h.startswith("x-meterline") for h in sent.headers)
    assert sent.body == {"model": "gpt-5-nano", "messages": [{"role": "user", "content": prompt}]}


def test_end_user_header_names_the_user_of_an_unbound_key(gateway):
    key, _ = gateway.new_key()  # a bound key's user cannot be changed (test_bound_user.py)
    with gateway.openai(key) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-meterline-user": "alice"})
        raw.parse()
    record = gateway.record(raw.headers["x-meterline-request-id"])
    # A bare model name resolves to the one configured provider whose catalog has it.
    check_record(record, usage={"input_tokens": 1, "output_tokens": 16}, user="alice")
    assert record["tags"] == [] and record["metadata"] == {}
    users = gateway.admin.get(f"/api/tenants/{gateway.tenant}/users").json()["users"]
    assert "alice" in users


def test_chat_streamed_without_include_usage_sync(gateway):
    m = marker()
    prompt = f"{m} stream please [[sim cached=3 reasoning=2]]"
    with gateway.openai() as client, client.chat.completions.create(
            model="openai/gpt-5-nano", messages=[{"role": "user", "content": prompt}],
            stream=True, extra_headers=META) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        assert "x-meterline-cost" not in stream.response.headers
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    # The client did not ask for usage: the usage chunk the gateway asked for is not passed on.
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = gateway.upstream.one(m)
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["stream"] is True

    record = gateway.record(request_id)
    n = words(prompt)
    usage = {"input_tokens": n + 3, "cached_input_tokens": 3, "output_tokens": 18,
             "reasoning_tokens": 2}
    check_record(record, usage=usage)
    assert record["ttft_ms"] is not None and record["ttft_ms"] <= record["latency_ms"]
    assert record["tags"] == ["a", "b"] and record["metadata"] == {"purpose": "x"}
    assert record["http_status"] == 200


def test_chat_streamed_with_include_usage_async(gateway):
    m = marker()
    prompt = f"{m} stream with usage [[sim tokens=20]]"

    async def run():
        async with gateway.async_openai() as client:
            stream = await client.chat.completions.create(
                model="openai/gpt-5-nano", messages=[{"role": "user", "content": prompt}],
                stream=True, stream_options={"include_usage": True})
            async with stream:
                chunks = [c async for c in stream]
                return stream.response.headers["x-meterline-request-id"], chunks

    request_id, chunks = asyncio.run(run())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    from meterline.simulator.directives import generated_text
    assert text == generated_text(20)
    # The client asked for usage: exactly one usage chunk, last, with no choices.
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    n = words(prompt)
    assert chunks[-1].usage.prompt_tokens == n
    assert chunks[-1].usage.completion_tokens == 20
    # The client's own stream_options went upstream unchanged.
    assert gateway.upstream.one(m).body["stream_options"] == {"include_usage": True}
    record = gateway.record(request_id)
    check_record(record, usage={"input_tokens": n, "output_tokens": 20})
    assert record["ttft_ms"] is not None


def test_chat_non_streamed_async_with_cost_headers(gateway):
    async def run():
        async with gateway.async_openai() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="openai/gpt-5-nano", max_completion_tokens=5,
                messages=[{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "count to ten"}])
            return raw.headers, raw.parse()

    headers, completion = asyncio.run(run())
    assert completion.choices[0].message.content == "lorem ipsum dolor sit amet"
    assert completion.choices[0].finish_reason == "length"
    record = gateway.record(headers["x-meterline-request-id"])
    check_record(record, usage={"input_tokens": 5, "output_tokens": 5})
    assert headers["x-meterline-cost"] == record["cost"] == "0.000015"
    assert headers["x-meterline-currency"] == record["currency"] == "USD"


def test_deepseek_cache_hit_tokens(gateway):
    m = marker()
    prompt = f"{m} deep thoughts [[sim cached=30]]"
    with gateway.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="deepseek/deepseek-chat", messages=[{"role": "user", "content": prompt}])
        completion = raw.parse()
        with client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": prompt}],
                stream=True) as stream:
            streamed_id = stream.response.headers["x-meterline-request-id"]
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    n = words(prompt)
    body = raw.http_response.json()
    assert body["usage"]["prompt_cache_hit_tokens"] == 30
    assert body["usage"]["prompt_cache_miss_tokens"] == n
    assert completion.choices[0].message.content == streamed == TEXT
    usage = {"input_tokens": n + 30, "cached_input_tokens": 30, "output_tokens": 16}
    for request_id in (raw.headers["x-meterline-request-id"], streamed_id):
        record = gateway.record(request_id)
        check_record(record, usage=usage, provider="deepseek", model="deepseek/deepseek-chat")
    assert raw.headers["x-meterline-cost"] == gateway.record(
        raw.headers["x-meterline-request-id"])["cost"]
    assert all(r.body["model"] == "deepseek-chat" for r in gateway.upstream.requests(m))


def test_openrouter_upstream_cost(gateway):
    model = "openrouter/openai/gpt-4o-mini"
    # Ours: 2 prompt words and 16 output tokens = 2 * 1 + 16 * 2 per 1M = 0.000034.
    ours = Decimal("0.000034")
    with gateway.openai() as client:
        same = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "say hi [[sim cost=0.000034]]"}])
        close = client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": "say hi [[sim cost=0.0000343]]"}])
        far = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "say hi [[sim cost=0.00005]]"}])
        with client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "say hi [[sim cost=0.0001]]"}],
                stream=True) as stream:
            streamed_id = stream.response.headers["x-meterline-request-id"]
            assert all(c.usage is None for c in stream)
    usage = {"input_tokens": 2, "output_tokens": 16}
    expected = [(same, "0.000034", False), (close, "0.0000343", False), (far, "0.00005", True)]
    for raw, upstream_cost, mismatch in expected:
        raw.parse()
        record = gateway.record(raw.headers["x-meterline-request-id"])
        check_record(record, usage=usage, provider="openrouter", model=model)
        assert money(record["cost"]) == ours
        assert record["upstream_cost"] == upstream_cost
        assert record["cost_mismatch"] is mismatch, (upstream_cost, record)
        assert raw.headers["x-meterline-cost"] == "0.000034"
    record = gateway.record(streamed_id)
    check_record(record, usage=usage, provider="openrouter", model=model)
    assert record["upstream_cost"] == "0.0001"
    assert record["cost_mismatch"] is True
    # The upstream gets OpenRouter's own model id, provider prefix and all.
    assert {r.body["model"] for r in gateway.upstream.requests("say hi")} == {"openai/gpt-4o-mini"}


def test_openrouter_model_without_a_price_is_recorded_unpriced(gateway):
    with gateway.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="openrouter/acme/brand-new-model",
            messages=[{"role": "user", "content": "hello [[sim cost=0.001]]"}])
        assert raw.parse().choices[0].message.content == TEXT
    assert "x-meterline-cost" not in raw.headers
    record = gateway.record(raw.headers["x-meterline-request-id"])
    assert record["status"] == "success"
    assert record["pricing"] == "unpriced"
    assert record["model"] == "openrouter/acme/brand-new-model"
    assert record["provider"] == "openrouter"
    assert record["cost"] is None
    assert record["upstream_cost"] == "0.001"
    assert record["usage"] == {"input_tokens": 1, "output_tokens": 16}
    assert record["warning"]


def test_models_lists_what_the_key_may_use(gateway):
    with gateway.openai() as client:
        everything = [m.id for m in client.models.list()]
    assert "openai/gpt-5-nano" in everything
    assert "deepseek/deepseek-chat" in everything
    assert "anthropic/claude-sonnet-4-6" in everything
    assert "gemini/gemini-2.5-flash" in everything
    assert all(m.split("/", 1)[0] in {"openai", "anthropic", "gemini", "deepseek", "openrouter"}
               for m in everything)
    key, _ = gateway.new_key(models=["openai/gpt-5-nano", "deepseek-chat"])
    with gateway.openai(key) as client:
        listed = client.models.list()
        assert [(m.id, m.owned_by) for m in listed] == [
            ("deepseek/deepseek-chat", "deepseek"), ("openai/gpt-5-nano", "openai")]


def test_stream_bytes_as_a_plain_http_client_sees_them(gateway):
    """Without ``stream_options`` no usage is in the bytes at all; the stream ends in [DONE]."""
    m = marker()
    with gateway.http() as http, http.stream(
            "POST", "/v1/chat/completions", headers=gateway.headers(),
            json={"model": "openai/gpt-5-nano", "stream": True,
                  "messages": [{"role": "user", "content": f"{m} [[sim tokens=3]]"}]}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["usage"] is None and c["choices"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) \
        == "lorem ipsum dolor"
    assert gateway.upstream.one(m).body["stream_options"] == {"include_usage": True}
    record = gateway.record(response.headers["x-meterline-request-id"])
    assert record["usage"] == {"input_tokens": 1, "output_tokens": 3}


def compressed_upstream() -> Starlette:
    """An OpenAI-compatible upstream that gzips its answers, streams included."""
    def chunk(choices, usage=None):
        return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": choices,
                                       "usage": usage}).encode() + b"\n\n"

    async def chat(request):
        body = await request.json()
        usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
        if body.get("stream"):
            raw = b"".join([
                chunk([{"index": 0, "delta": {"content": "packed"}, "finish_reason": None}]),
                chunk([{"index": 0, "delta": {"content": " words"}, "finish_reason": "stop"}]),
                chunk([], usage), b"data: [DONE]\n\n"])
            media = "text/event-stream"
        else:
            raw = json.dumps({"id": "c2", "object": "chat.completion", "created": 1,
                              "model": "m", "usage": usage, "choices": [{
                                  "index": 0, "finish_reason": "stop", "message": {
                                      "role": "assistant", "content": "packed words"}}]}).encode()
            media = "application/json"
        return Response(gzip.compress(raw), media_type=media,
                        headers={"content-encoding": "gzip"})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_compressed_upstream_answers_are_decoded(gateway_factory):
    with serve_in_thread(compressed_upstream()) as zipped:
        gw = gateway_factory(providers=(ProviderConfig(
            "zipped", "openai", zipped + "/v1", Secret("k"), allow_unknown_models=True),))
        with gw.openai() as client:
            with client.chat.completions.create(
                    model="zipped/m", messages=[{"role": "user", "content": "hi"}],
                    stream=True) as stream:
                request_id = stream.response.headers["x-meterline-request-id"]
                chunks = list(stream)
            plain = client.chat.completions.with_raw_response.create(
                model="zipped/m", messages=[{"role": "user", "content": "hi"}])
            assert plain.parse().choices[0].message.content == "packed words"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "packed words"
    assert all(c.usage is None for c in chunks)
    for rid in (request_id, plain.headers["x-meterline-request-id"]):
        record = gw.record(rid)
        assert record["status"] == "success"
        assert record["usage"] == {"input_tokens": 7, "output_tokens": 2}
        assert record["estimated"] is False
        assert record["pricing"] == "unpriced"
