"""Quotas at the gateway: a call is held at its worst-case units before the provider is called,
refused with 402 ``quota_exceeded`` when they are not there, and consumes its real units from
plan allowance first, then packages, in the quota ledger."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway.conftest import Gateway

MODEL = "openai/gpt-5-nano"


def grant(gw: Gateway, **fields: Any) -> dict[str, Any]:
    answer = gw.admin.post("/api/quotas/grants", json={"tenant": "acme", **fields})
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def show(gw: Gateway) -> dict[str, Any]:
    answer = gw.admin.get("/api/quotas/acme")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def settled(gw: Gateway) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        found = show(gw)
        if found["types"]["text_token"]["reserved"] == 0 or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_plan_allowance_first_then_package_then_refusal(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    plan = gw.admin.post("/api/plans", json={"id": "starter",
                                             "allowances": {"text_token": 150}})
    assert plan.status_code == 201, plan.text
    subscribed = gw.admin.put("/api/tenants/acme/plan", json={"plan": "starter"})
    assert subscribed.json()["granted"] == 1
    package = grant(gw, type="text_token", amount=100, bonus=20, source="package",
                    reference="order-7", reason="bought")
    assert package["credited"] == 120
    before = show(gw)
    assert before["types"]["text_token"]["by_source"] == {"plan": 150, "package": 120,
                                                          "admin_grant": 0}
    used = 0
    request_ids = []
    with gw.openai() as client:
        for _ in range(20):
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            except openai.APIStatusError as exc:
                assert exc.status_code == 402
                error = exc.response.json()["error"]
                assert error["code"] == "quota_exceeded"
                assert "text_token has" in error["message"] and "resets at" in error["message"]
                break
            request_ids.append(raw.headers["x-meterline-request-id"])
            record = gw.record(request_ids[-1])
            used += record["usage"]["input_tokens"] + record["usage"]["output_tokens"]
            settled(gw)
        else:
            raise AssertionError("the quota never ran out")
    after = settled(gw)
    balance = after["types"]["text_token"]
    assert balance["available"] == 270 - used
    # The plan allowance went first: the package is only touched once the plan is spent.
    assert balance["by_source"]["plan"] == max(0, 150 - used)
    consumed = [e for e in after["history"] if e["kind"] == "consume"]
    assert sum(-e["delta"] for e in consumed) == used
    assert {e["request_id"] for e in consumed} == set(request_ids)


def test_no_quota_left_refuses_in_anthropic_shape(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    grant(gw, type="text_token", amount=5)
    with gw.anthropic() as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="anthropic/claude-sonnet-4-6", max_tokens=50,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 402
    assert caught.value.response.json()["error"]["code"] == "quota_exceeded"


def test_images_quota_counts_images(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    grant(gw, type="image", amount=3)
    with gw.openai() as client:
        raw = client.images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a",
                                                       n=2)
        gw.record(raw.headers["x-meterline-request-id"])
        with pytest.raises(openai.APIStatusError) as caught:
            client.images.generate(model="openai/gpt-image-1", prompt="b", n=2)
    assert caught.value.status_code == 402
    deadline = time.monotonic() + 10
    while show(gw)["types"]["image"]["reserved"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert show(gw)["types"]["image"]["available"] == 1


@pytest.mark.parametrize("fields, field", [
    ({"type": "tokens", "amount": 5}, "type"),
    ({"type": "image", "amount": 0}, "amount"),
    ({"type": "image", "amount": -3}, "amount"),
    ({"type": "image", "amount": 1.5}, "amount"),
    ({"type": "image", "amount": 5, "source": "gift"}, "source"),
    ({"type": "image", "amount": 5, "bonus": 2}, "bonus"),
])
def test_bad_grants_get_400_naming_the_field(gateway_factory: Any, fields: dict[str, Any],
                                             field: str) -> None:
    gw: Gateway = gateway_factory()
    answer = gw.admin.post("/api/quotas/grants", json={"tenant": "acme", **fields})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
