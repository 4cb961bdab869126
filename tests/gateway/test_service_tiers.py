"""OpenAI service tiers (issue 16.2): a call served in the ``flex`` or ``priority`` tier is priced
with that tier's variant — the tier the answer says was applied, else the one asked for — streamed
or not, chat or Responses API; and its budget hold is the tier's worst case."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.gateway.conftest import MILLION, Gateway, marker, money

MODEL = "openai/gpt-tiered"
PRICES = {"default": ("1", "2"), "flex": ("0.5", "1"), "priority": ("2.5", "5")}


@pytest.fixture(scope="module")
def tiered(gateway: Gateway) -> Gateway:
    base, out = PRICES["default"]
    answer = gateway.admin.post("/api/prices", json={
        "model": MODEL, "billing_type": "token", "currency": "USD", "unit": "1M",
        "effective_from": "2026-11-01", "prices": {"input_tokens": base, "output_tokens": out},
        "variants": [{"match": {"service_tier": tier},
                      "prices": {"input_tokens": i, "output_tokens": o}}
                     for tier, (i, o) in PRICES.items() if tier != "default"]})
    assert answer.status_code in (201, 409), answer.text
    return gateway


def cost_at(tier: str, record: dict) -> Decimal:
    inp, out = (Decimal(p) for p in PRICES[tier])
    usage = record["usage"]
    return (usage["input_tokens"] * inp + usage["output_tokens"] * out) / MILLION


@pytest.mark.parametrize("tier", ["flex", "priority", "auto"])
def test_a_chat_call_is_priced_in_its_tier(tiered: Gateway, tier: str) -> None:
    with tiered.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, service_tier=tier,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": f"{marker()} hi"}])
    assert raw.parse().service_tier == ("default" if tier == "auto" else tier)
    record = tiered.record(raw.headers["x-meterline-request-id"])
    expected = cost_at("default" if tier == "auto" else tier, record)
    assert money(record["cost"]) == expected == money(raw.headers["x-meterline-cost"])


def test_streamed_and_responses_calls_are_priced_in_their_tier(tiered: Gateway) -> None:
    with tiered.openai() as client:
        with client.chat.completions.with_streaming_response.create(
                model=MODEL, service_tier="priority", stream=True,
                messages=[{"role": "user", "content": f"{marker()} hi"}]) as raw:
            streamed = raw.headers["x-meterline-request-id"]
            list(raw.parse())
        answered = client.responses.with_raw_response.create(
            model=MODEL, service_tier="flex", input=f"{marker()} hi")
    record = tiered.record(streamed)
    assert money(record["cost"]) == cost_at("priority", record)
    record = tiered.record(answered.headers["x-meterline-request-id"])
    assert money(record["cost"]) == cost_at("flex", record)
