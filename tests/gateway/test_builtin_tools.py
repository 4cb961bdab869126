"""Built-in tools billed per use (issue 16.1): OpenAI's web search, file search and code
interpreter in the Responses API (output items), Anthropic's web search (``server_tool_use``),
driven with the official SDKs. Their uses are meters of their own, priced by the provider's
``tools`` entry of the catalog; the ledger's cost equals the quote; a block budget holds what
the declared tools may cost before the provider is called."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.gateway.conftest import TEXT, Gateway, marker, money, token_cost, words
from tests.gateway.test_admission import limited_gateway, set_budget, settled

MODEL = "openai/gpt-5-nano"
#: The shipped catalog's openai/tools and anthropic/tools prices, per use.
WEB_SEARCH, FILE_SEARCH, CODE_SESSION = Decimal("0.01"), Decimal("0.0025"), Decimal("0.03")
TOOLS = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]},
         {"type": "code_interpreter", "container": {"type": "auto"}}]


def quoted(gateway: Gateway, model: str, usage: dict[str, int]) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(),
                           json={"model": model, "usage": usage})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def lines(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {line["meter"]: (line["quantity"], line["unit_price"]) for line in record["lines"]}


def test_responses_tool_calls_are_metered_and_priced_per_use(gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} look it up [[sim searches=3 file_searches=2 code_sessions=1]]"
    with gateway.openai() as client:
        raw = client.responses.with_raw_response.create(model=MODEL, input=prompt,
                                                        tools=TOOLS)  # type: ignore[arg-type]
        response = raw.parse()
    assert response.output_text == TEXT
    assert [item.type for item in response.output] == [
        "web_search_call"] * 3 + ["file_search_call"] * 2 + ["code_interpreter_call"] * 2 + [
        "message"]
    record = gateway.record(raw.headers["x-meterline-request-id"])
    tokens = {"input_tokens": words(prompt), "output_tokens": 16}
    # Two code interpreter calls ran in one container the tool made itself: one session.
    usage = {**tokens, "web_search_calls": 3, "file_search_calls": 2,
             "code_interpreter_sessions": 1}
    assert record["usage"] == usage
    assert lines(record)["web_search_calls"] == ("3", "0.01")
    assert lines(record)["code_interpreter_sessions"] == ("1", "0.03")
    expected = token_cost(tokens) + 3 * WEB_SEARCH + 2 * FILE_SEARCH + CODE_SESSION
    assert money(record["cost"]) == expected == quoted(gateway, MODEL, usage)
    assert money(raw.headers["x-meterline-cost"]) == expected


def test_a_container_named_by_the_request_is_not_a_new_session(gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} run it [[sim code_sessions=1]]"
    with gateway.openai() as client:
        raw = client.responses.with_raw_response.create(
            model=MODEL, input=prompt,
            tools=[{"type": "code_interpreter", "container": "cntr_made_before"}])
    record = gateway.record(raw.headers["x-meterline-request-id"])
    assert "code_interpreter_sessions" not in record["usage"]
    assert money(record["cost"]) == token_cost(record["usage"])


def test_a_streamed_response_counts_its_tool_calls(gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} search [[sim tokens=4 searches=2]]"
    with gateway.openai() as client, client.responses.with_streaming_response.create(
            model=MODEL, input=prompt, stream=True,
            tools=[{"type": "web_search"}]) as raw:  # type: ignore[arg-type]
        request_id = raw.headers["x-meterline-request-id"]
        events = list(raw.parse())
    assert [e.item.type for e in events if e.type == "response.output_item.done"] == [
        "web_search_call", "web_search_call"]
    usage = {"input_tokens": words(prompt), "output_tokens": 4, "web_search_calls": 2}
    record = gateway.record(request_id)
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage) + 2 * WEB_SEARCH == quoted(
        gateway, MODEL, usage)


def test_a_stream_left_early_still_bills_the_searches_already_made(gateway: Gateway) -> None:
    m = marker()
    prompt = f"{m} search long [[sim tokens=40 searches=2 chunk_delay_ms=200]]"
    with gateway.http() as http, http.stream(
            "POST", "/v1/responses", headers=gateway.headers(),
            json={"model": MODEL, "input": prompt, "stream": True,
                  "tools": [{"type": "web_search"}]}) as answer:
        request_id = answer.headers["x-meterline-request-id"]
        for line in answer.iter_lines():
            if "response.output_text.delta" in line:
                break  # the searches are done, the answer has begun: leave
    record = gateway.record(request_id)
    assert record["usage"]["web_search_calls"] == 2
    assert lines(record)["web_search_calls"] == ("2", "0.01")


def test_anthropic_web_searches_are_metered_from_server_tool_use(gateway: Gateway) -> None:
    model = "anthropic/claude-sonnet-4-6"
    m = marker()
    prompt = f"{m} what is new [[sim searches=4]]"
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    with gateway.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=100, tools=[tool],  # type: ignore[list-item]
            messages=[{"role": "user", "content": prompt}])
        message = raw.parse()
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 4
    record = gateway.record(raw.headers["x-meterline-request-id"])
    tokens = {"input_tokens": words(prompt), "output_tokens": 16}
    assert record["usage"] == {**tokens, "web_search_calls": 4}
    assert money(record["cost"]) == token_cost(tokens) + 4 * WEB_SEARCH == quoted(
        gateway, model, record["usage"])
    with gateway.anthropic() as client, client.messages.stream(
            model=model, max_tokens=100, tools=[tool],  # type: ignore[list-item]
            messages=[{"role": "user", "content": f"{m} again [[sim searches=2]]"}]) as stream:
        final = stream.get_final_message()
        streamed_id = stream.response.headers["x-meterline-request-id"]
    assert final.usage.server_tool_use is not None
    assert gateway.record(streamed_id)["usage"]["web_search_calls"] == 2


def test_an_operator_price_for_the_tools_overrides_the_catalog(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    added = gw.admin.post("/api/prices", json={
        "model": "openai/tools", "billing_type": "count", "unit": "1", "currency": "USD",
        "effective_from": "2026-11-01T00:00:00Z", "prices": {"web_search_calls": "0.025"}})
    assert added.status_code == 201, added.text
    usage = {"input_tokens": 10, "output_tokens": 5, "web_search_calls": 2}
    assert quoted(gw, MODEL, usage) == token_cost(usage) + 2 * Decimal("0.025")
    # A tool the operator's version does not price is not priced by an older layer: the call
    # cannot be priced (PriceNotFound, 404 from the quote), never priced silently at zero.
    with gw.http() as http:
        refused = http.post("/v1/billing/quote", headers=gw.headers(), json={
            "model": MODEL, "usage": {"input_tokens": 10, "file_search_calls": 1}})
    assert refused.status_code == 404 and "file_search_calls" in refused.text


def test_a_budget_holds_what_the_declared_tools_may_cost(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    # Enough for the tokens of a short call and five searches, not for twenty.
    created = set_budget(gw, key=gw.key_id, amount="0.1", currency="USD", period="day")
    with gw.openai() as client:
        with pytest.raises(openai.APIStatusError) as refused:  # it may search 20 times
            client.responses.create(model=MODEL, input="hello", max_output_tokens=20,
                                    tools=[{"type": "web_search"}])
        assert refused.value.status_code == 402
        raw = client.responses.with_raw_response.create(
            model=MODEL, input="hello [[sim searches=2]]", max_output_tokens=20,
            max_tool_calls=5, tools=[{"type": "web_search"}])
    record = gw.record(raw.headers["x-meterline-request-id"])
    assert record["usage"]["web_search_calls"] == 2
    assert money(settled(gw, created["id"])["spent"]) == money(record["cost"])
