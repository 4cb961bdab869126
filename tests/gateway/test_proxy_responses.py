"""OpenAI's Responses API through the gateway (issue 16.1), driven with the official ``openai``
SDK: ``POST /v1/responses`` streamed (typed events, passed on as they come) and not, cached and
reasoning tokens metered, the ledger's cost equal to the quote, and a stream the client abandons
billed for what was produced."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.gateway.conftest import TEXT, Gateway, marker, money, token_cost, words

MODEL = "openai/gpt-5-nano"


def quoted(gateway: Gateway, usage: dict[str, int]) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(),
                           json={"model": MODEL, "usage": usage})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def check(record: dict[str, Any], usage: dict[str, int], *, status: str = "success",
          estimated: bool = False) -> None:
    assert (record["status"], record["endpoint"], record["estimated"]) == (
        status, "responses", estimated), record
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage)


def test_a_response_is_metered_with_its_cached_and_reasoning_tokens(gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} plan a trip [[sim cached=40 reasoning=7]]"
    with gateway.openai() as client:
        raw = client.responses.with_raw_response.create(
            model=MODEL, instructions="be brief", input=prompt)
        response = raw.parse()
    assert response.output_text == TEXT
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 40
    assert response.usage.output_tokens_details.reasoning_tokens == 7
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1/responses" and sent.body["model"] == "gpt-5-nano"
    assert "stream_options" not in sent.body
    record = gateway.record(raw.headers["x-meterline-request-id"])
    prompt_tokens = words(f"be brief\n{prompt}") + 40
    usage = {"input_tokens": prompt_tokens, "cached_input_tokens": 40,
             "output_tokens": 16 + 7, "reasoning_tokens": 7}
    check(record, usage)
    assert money(raw.headers["x-meterline-cost"]) == money(record["cost"]) == quoted(
        gateway, usage)


def test_a_streamed_response_is_passed_on_and_metered_from_its_last_event(
        gateway: Gateway) -> None:
    m = marker()
    items = [{"role": "user", "content": [{"type": "input_text",
                                           "text": f"{m} hello [[sim tokens=5]]"}]}]
    with gateway.openai() as client, client.responses.with_streaming_response.create(
            model=MODEL, input=items, stream=True) as raw:  # type: ignore[arg-type]
        request_id = raw.headers["x-meterline-request-id"]
        events = list(raw.parse())
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "lorem ipsum dolor sit amet"
    usage = {"input_tokens": words(f"{m} hello [[sim tokens=5]]"), "output_tokens": 5}
    check(gateway.record(request_id), usage)
    assert money(gateway.record(request_id)["cost"]) == quoted(gateway, usage)


def test_a_streamed_response_cut_short_by_the_client_is_billed_for_what_came(
        gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} tell a story [[sim tokens=40 chunk_delay_ms=200]]"
    with gateway.http() as http, http.stream(
            "POST", "/v1/responses", headers=gateway.headers(),
            json={"model": MODEL, "input": prompt, "stream": True}) as response:
        request_id = response.headers["x-meterline-request-id"]
        seen = ""
        for line in response.iter_lines():
            if '"response.output_text.delta"' in line and line.startswith("data:"):
                seen += line
                if seen.count("delta") >= 3:
                    break
    record = gateway.record(request_id, timeout=30)
    assert (record["status"], record["error"], record["estimated"]) == (
        "cancelled", "client disconnected", True)
    # No usage came: the prompt and the text relayed so far are estimated, and billed.
    assert record["usage"]["input_tokens"] > 0
    assert 0 < record["usage"]["output_tokens"] < 40
    assert money(record["cost"]) == token_cost(record["usage"])


def test_a_refused_response_is_passed_on_and_recorded(gateway: Gateway) -> None:
    with gateway.http() as http:
        answer = http.post("/v1/responses", headers=gateway.headers(),
                           json={"model": MODEL, "input": "x [[sim status=429 retry_after=3]]"})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
    record = gateway.record(answer.headers["x-meterline-request-id"])
    assert (record["status"], record["endpoint"]) == ("error", "responses")
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        missing = http.post("/v1/responses", headers=gateway.headers(), json={"input": "x"})
    assert missing.status_code == 400 and "model" in missing.json()["error"]["message"]
