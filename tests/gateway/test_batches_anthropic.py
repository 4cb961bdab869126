"""Anthropic's Message Batches through the gateway, driven with the official ``anthropic`` SDK
(``client.messages.batches.create / retrieve / results / cancel / list``): succeeded results
billed once with their message's usage (cache reads and writes included) at the batch price;
errored and cancelled results not billed; batches reachable by their tenant only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import pytest

from meterline.gateway.batches import bill_request_id
from tests.gateway.conftest import Gateway, marker, money, words
from tests.gateway.test_batches_openai import no_record, stranger

#: A catalog model: Anthropic's batch discount applies.
MODEL = "anthropic/claude-haiku-4-5"


def request(custom_id: str, prompt: str, model: str = MODEL) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {
        "model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}}


def quote(gateway: Gateway, record: dict[str, Any], **attributes: str) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(), json={
            "model": MODEL, "usage": record["usage"], "timestamp": record["timestamp"],
            "attributes": attributes})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def test_results_are_billed_once_at_the_batch_price(gateway: Gateway) -> None:
    m = marker()
    prompts = {"hit": f"{m} cached [[sim tokens=6 cached=40 cache_write=8]]",
               "plain": f"{m} plain [[sim tokens=9 polls=2]]",
               "bad": f"{m} broken [[sim status=400]]"}
    with gateway.anthropic() as client:
        batch = client.messages.batches.create(
            requests=[request(c, p) for c, p in prompts.items()])  # type: ignore[misc]
        assert batch.processing_status == "in_progress" and batch.results_url is None
        first = client.messages.batches.with_raw_response.retrieve(batch.id)
        assert first.parse().processing_status == "in_progress"
        assert "x-meterline-billed-lines" not in first.headers
        ended = client.messages.batches.with_raw_response.retrieve(batch.id)
        assert ended.parse().processing_status == "ended"
        assert ended.headers["x-meterline-billed-lines"] == "2"
        # Results are read through the gateway, and bill nothing more.
        assert ended.parse().results_url == f"{gateway.url}/v1/messages/batches/{batch.id}/results"
        results = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
        assert results == {"hit": "succeeded", "plain": "succeeded", "bad": "errored"}
        counts = client.messages.batches.retrieve(batch.id).request_counts
        assert (counts.succeeded, counts.errored) == (2, 1)
    expected = {"hit": {"input_tokens": words(prompts["hit"]) + 48, "cached_input_tokens": 40,
                        "cache_write_tokens": 8, "output_tokens": 6},
                "plain": {"input_tokens": words(prompts["plain"]), "output_tokens": 9}}
    for custom_id, usage in expected.items():
        record = gateway.record(bill_request_id(batch.id, custom_id))
        assert (record["endpoint"], record["provider"], record["usage"]) == (
            "batch", "anthropic", usage)
        assert record["metadata"] == {"batch_id": batch.id, "custom_id": custom_id}
        batch_price = quote(gateway, record, processing="batch")
        assert money(record["cost"]) == batch_price == quote(gateway, record) / 2 > 0
    no_record(gateway, bill_request_id(batch.id, "bad"))


def test_results_read_before_any_poll_bill_the_batch(gateway: Gateway) -> None:
    prompt = f"{marker()} direct [[sim tokens=3]]"
    with gateway.anthropic() as client:
        batch = client.messages.batches.create(requests=[request("only", prompt)])  # type: ignore[misc]
        client.messages.batches.retrieve(batch.id)  # ends it at the provider: billed here
        listed = [b.id for b in client.messages.batches.list()]
        assert batch.id in listed
        again = [r.custom_id for r in client.messages.batches.results(batch.id)]
    assert again == ["only"]
    record = gateway.record(bill_request_id(batch.id, "only"))
    assert record["usage"] == {"input_tokens": words(prompt), "output_tokens": 3}


def test_a_cancelled_batch_bills_its_succeeded_results_only(gateway: Gateway) -> None:
    m = marker()
    with gateway.anthropic() as client:
        batch = client.messages.batches.create(requests=[
            request(f"r{i}", f"{m} item {i} [[sim tokens=4 polls=9]]") for i in range(4)])  # type: ignore[misc]
        assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        assert ended.request_counts.canceled == 2
    for custom_id in ("r0", "r1"):
        assert gateway.record(bill_request_id(batch.id, custom_id))["usage"][
            "output_tokens"] == 4
    for custom_id in ("r2", "r3"):
        no_record(gateway, bill_request_id(batch.id, custom_id))


def test_other_tenants_get_404_and_unknown_models_are_refused(gateway: Gateway) -> None:
    with gateway.anthropic() as client:
        batch = client.messages.batches.create(requests=[request("x", f"{marker()} hi")])  # type: ignore[misc]
        before = gateway.upstream.count()
        with pytest.raises(anthropic.NotFoundError) as unknown:
            client.messages.batches.create(requests=[
                request("a", "hi"), request("b", "hi", "anthropic/claude-nope")])  # type: ignore[misc]
        assert "claude-nope" in unknown.value.message
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=[request("a", "hi"), request("a", "hi")])  # type: ignore[misc]
        assert gateway.upstream.count() == before
    with gateway.anthropic(key=stranger(gateway)) as other:
        for action in (other.messages.batches.retrieve, other.messages.batches.cancel):
            with pytest.raises(anthropic.NotFoundError):
                action(batch.id)
        with pytest.raises(anthropic.NotFoundError):
            list(other.messages.batches.results(batch.id))
        assert [b.id for b in other.messages.batches.list()] == []
    assert gateway.upstream.count() == before
