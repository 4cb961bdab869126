"""Gemini's own API through the gateway (issue 16, item D), driven with the official
``google-genai`` SDK: ``generateContent`` and ``streamGenerateContent`` pass through in Gemini's
shape, metered from ``usageMetadata`` (``promptTokenCount`` includes the cached tokens,
``thoughtsTokenCount`` is output), the ledger's cost equal to the quote."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.gateway.conftest import TEXT, Gateway, marker, money, token_cost, words

MODEL = "gemini/gemini-2.5-flash"


@pytest.fixture
def client(gateway: Gateway) -> Iterator[genai.Client]:
    with genai_client(gateway, gateway.key) as made:
        yield made


def genai_client(gateway: Gateway, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gateway.url, api_version="v1beta", timeout=30_000))


def quoted(gateway: Gateway, record: dict[str, Any]) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(), json={
            "model": MODEL, "usage": record["usage"], "timestamp": record["timestamp"]})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def request_id(response: Any) -> str:
    headers = response.sdk_http_response.headers
    found: str = headers["x-meterline-request-id"]
    return found


@pytest.mark.parametrize("model", [MODEL, "gemini-2.5-flash"])
def test_generate_content_passes_through_and_is_metered(gateway: Gateway, client: genai.Client,
                                                        model: str) -> None:
    m = marker()
    prompt = f"{m} think hard [[sim cached=20 reasoning=5]]"
    response = client.models.generate_content(
        model=model, contents=prompt,
        config=types.GenerateContentConfig(system_instruction="you are gemini"))
    assert response.text == TEXT
    meta = response.usage_metadata
    assert meta is not None
    n = words(prompt) + words("you are gemini")
    assert (meta.prompt_token_count, meta.cached_content_token_count,
            meta.candidates_token_count, meta.thoughts_token_count) == (n + 20, 20, 16, 5)
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "model" not in sent.body and sent.body["contents"][0]["parts"][0]["text"] == prompt
    record = gateway.record(request_id(response))
    usage = {"input_tokens": n + 20, "cached_input_tokens": 20, "output_tokens": 21,
             "reasoning_tokens": 5}
    assert (record["endpoint"], record["provider"], record["model"], record["user"]) == (
        "gemini", "gemini", MODEL, "bob")
    assert (record["usage"], record["estimated"]) == (usage, False)
    assert money(record["cost"]) == token_cost(usage) == quoted(gateway, record)
    assert money(response.sdk_http_response.headers["x-meterline-cost"]) == money(
        record["cost"])


def test_stream_generate_content_passes_through_and_is_metered(gateway: Gateway,
                                                               client: genai.Client) -> None:
    m = marker()
    prompt = f"{m} count [[sim tokens=5 reasoning=2]]"
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=prompt))
    assert "".join(c.text or "" for c in chunks) == "lorem ipsum dolor sit amet"
    last = chunks[-1].usage_metadata
    assert last is not None and last.candidates_token_count == 5
    sent = gateway.upstream.one(m)
    assert (sent.path, sent.query) == ("/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                                       {"alt": "sse"})
    record = gateway.record(request_id(chunks[0]))
    usage = {"input_tokens": words(prompt), "output_tokens": 7, "reasoning_tokens": 2}
    assert (record["usage"], record["estimated"], record["status"]) == (usage, False,
                                                                        "success")
    assert money(record["cost"]) == token_cost(usage) == quoted(gateway, record)


def test_refusals_come_in_an_error_the_sdk_reads(gateway: Gateway,
                                                 client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model=MODEL, contents="hi [[sim status=429]]")
    assert refused.value.code == 429
    with pytest.raises(errors.ClientError) as unknown:
        client.models.generate_content(model="gemini/no-such-model", contents="hi")
    assert unknown.value.code == 404
    with genai_client(gateway, "sk-wrong") as stranger, \
            pytest.raises(errors.ClientError) as bad_key:
        stranger.models.generate_content(model=MODEL, contents="hi")
    assert bad_key.value.code == 401
    with gateway.http() as http:
        tokens = http.post(f"/v1beta/models/{MODEL}:countTokens", headers=gateway.headers(),
                           json={"contents": []})
        not_sse = http.post(f"/v1beta/models/{MODEL}:streamGenerateContent",
                            headers=gateway.headers(),
                            json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert tokens.status_code == 404 and "countTokens" in tokens.json()["error"]["message"]
    assert not_sse.status_code == 400 and "alt=sse" in not_sse.json()["error"]["message"]


def test_an_openai_format_model_is_refused_on_gemini_api(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="openai/gpt-5-nano", contents="hi")
    assert refused.value.code == 400
    assert "openai-format provider" in (refused.value.message or "")
