"""The OpenAI Batch API through the gateway, driven with the official ``openai`` SDK
(``client.files.create / content``, ``client.batches.create / retrieve / cancel / list``): a
batch's succeeded lines billed once, at the batch price, when a retrieval sees it ended; its
files and batches reachable by their tenant only; bad lines and exhausted budgets refused
before the provider is called."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest

from meterline.gateway.batches import bill_request_id
from tests.gateway.conftest import Gateway, marker, money, words

#: A catalog model (not one of the tests' own prices): OpenAI's batch discount applies.
MODEL = "openai/gpt-4.1-nano"
URL = "/v1/chat/completions"


def jsonl(*lines: tuple[str, str], model: str = MODEL) -> bytes:
    """Chat lines (custom_id, prompt) as a batch input file."""
    return b"".join(orjson.dumps({
        "custom_id": cid, "method": "POST", "url": URL,
        "body": {"model": model, "max_tokens": 64,
                 "messages": [{"role": "user", "content": prompt}]}}) + b"\n"
        for cid, prompt in lines)


def quote(gateway: Gateway, record: dict[str, Any], **attributes: str) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(), json={
            "model": MODEL, "usage": record["usage"], "timestamp": record["timestamp"],
            "attributes": attributes})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def no_record(gateway: Gateway, request_id: str) -> None:
    answer = gateway.admin.get("/api/usage", params={"request_id": request_id})
    assert answer.status_code == 200 and answer.json()["records"] == [], answer.text


def stranger(gateway: Gateway) -> str:
    tenant = gateway.admin.post("/api/tenants", json={"name": f"t{marker()}"})
    assert tenant.status_code == 201, tenant.text
    key = gateway.admin.post("/api/keys", json={"tenant": tenant.json()["id"]})
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def test_a_batch_is_billed_once_at_the_batch_price(gateway: Gateway) -> None:
    m = marker()
    prompts = {"a": f"{m} first [[sim tokens=7 cached=3]]", "b": f"{m} second [[sim tokens=11]]",
               "bad": f"{m} broken [[sim status=400]]"}
    with gateway.openai() as client:
        uploaded = client.files.create(file=("in.jsonl", jsonl(*prompts.items())),
                                       purpose="batch")
        assert client.files.retrieve(uploaded.id).purpose == "batch"
        # The provider got its own model id.
        sent = client.files.content(uploaded.id).text
        assert '"model":"gpt-4.1-nano"' in sent and MODEL not in sent
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=URL,
                                      completion_window="24h")
        polls = [client.batches.with_raw_response.retrieve(batch.id) for _ in range(2)]
        done = polls[0].parse()
        assert done.status == "completed" and done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
        assert [p.headers.get("x-meterline-billed-lines") for p in polls] == ["2", None]
        assert done.output_file_id and done.error_file_id
        output = [orjson.loads(line) for line in
                  client.files.content(done.output_file_id).text.splitlines()]
        errors = client.files.content(done.error_file_id).text
    assert sorted(line["custom_id"] for line in output) == ["a", "b"]
    assert '"custom_id":"bad"' in errors
    expected = {"a": {"input_tokens": words(prompts["a"]) + 3, "cached_input_tokens": 3,
                      "output_tokens": 7},
                "b": {"input_tokens": words(prompts["b"]), "output_tokens": 11}}
    for custom_id, usage in expected.items():
        record = gateway.record(bill_request_id(batch.id, custom_id))
        assert (record["endpoint"], record["status"], record["estimated"]) == (
            "batch", "success", False)
        assert record["usage"] == usage
        assert record["metadata"] == {"batch_id": batch.id, "custom_id": custom_id}
        assert record["user"] == "bob"
        batch_price = quote(gateway, record, processing="batch")
        assert money(record["cost"]) == batch_price == quote(gateway, record) / 2
        assert batch_price > 0
    no_record(gateway, bill_request_id(batch.id, "bad"))  # errored lines are not billed
    listed = gateway.admin.get("/api/usage", params={"endpoint": "batch", "limit": 1000})
    assert listed.status_code == 200, listed.text
    mine = [r for r in listed.json()["records"] if (r.get("metadata") or {}).get("batch_id")
            == batch.id]
    assert sorted(r["metadata"]["custom_id"] for r in mine) == ["a", "b"]


def test_concurrent_polls_bill_each_line_once(gateway: Gateway) -> None:
    m = marker()
    lines = [(f"c{i}", f"{m} line {i} [[sim tokens={i + 1} polls=3]]") for i in range(4)]
    with gateway.openai() as client:
        uploaded = client.files.create(file=("in.jsonl", jsonl(*lines)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=URL,
                                      completion_window="24h")

        def poll(_: int) -> tuple[str, str | None]:
            raw = client.batches.with_raw_response.retrieve(batch.id)
            return raw.parse().status, raw.headers.get("x-meterline-billed-lines")

        with ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(poll, range(16)))
    assert [billed for _, billed in seen if billed is not None] == ["4"]
    for i, (custom_id, prompt) in enumerate(lines):
        record = gateway.record(bill_request_id(batch.id, custom_id))  # exactly one
        assert record["usage"] == {"input_tokens": words(prompt), "output_tokens": i + 1}


def test_a_cancelled_batch_bills_its_finished_lines(gateway: Gateway) -> None:
    m = marker()
    lines = [(f"k{i}", f"{m} job {i} [[sim tokens=5 polls=9]]") for i in range(4)]
    with gateway.openai() as client:
        uploaded = client.files.create(file=("in.jsonl", jsonl(*lines)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=URL,
                                      completion_window="24h")
        assert client.batches.cancel(batch.id).status == "cancelling"
        ended = client.batches.retrieve(batch.id)
        assert ended.status == "cancelled"
        listed = [b.id for b in client.batches.list()]
        assert batch.id in listed
    for custom_id in ("k0", "k1"):
        record = gateway.record(bill_request_id(batch.id, custom_id))
        assert record["usage"]["output_tokens"] == 5
    for custom_id in ("k2", "k3"):
        no_record(gateway, bill_request_id(batch.id, custom_id))


def test_another_tenant_gets_404_and_the_provider_is_not_asked(gateway: Gateway) -> None:
    with gateway.openai() as client:
        uploaded = client.files.create(file=("in.jsonl", jsonl(("x", f"{marker()} hi"))),
                                       purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=URL,
                                      completion_window="24h")
    before = gateway.upstream.count()
    with gateway.openai(key=stranger(gateway)) as other:
        for action in (lambda: other.batches.retrieve(batch.id),
                       lambda: other.batches.cancel(batch.id),
                       lambda: other.files.retrieve(uploaded.id),
                       lambda: other.files.content(uploaded.id),
                       lambda: other.batches.create(input_file_id=uploaded.id, endpoint=URL,
                                                    completion_window="24h")):
            with pytest.raises(openai.NotFoundError):
                action()
        assert [b.id for b in other.batches.list()] == []
    assert gateway.upstream.count() == before


def test_bad_lines_are_refused_before_the_provider_is_called(gateway: Gateway) -> None:
    before = gateway.upstream.count()
    with gateway.openai() as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            client.files.create(file=("in.jsonl", jsonl(("u", "hi"), model="openai/gpt-nope")),
                                purpose="batch")
        assert "gpt-nope" in unknown.value.message
        twice = jsonl(("same", "one")) + jsonl(("same", "two"))
        with pytest.raises(openai.BadRequestError):
            client.files.create(file=("in.jsonl", twice), purpose="batch")
        with pytest.raises(openai.BadRequestError):
            client.files.create(file=("in.jsonl", b"{not json\n"), purpose="batch")
        mixed = jsonl(("o", "hi")) + jsonl(("d", "hi"), model="deepseek/deepseek-chat")
        with pytest.raises(openai.BadRequestError) as providers:
            client.files.create(file=("in.jsonl", mixed), purpose="batch")
        assert "one provider" in providers.value.message
    assert gateway.upstream.count() == before


def test_an_exhausted_budget_refuses_the_batch(gateway: Gateway) -> None:
    key, key_id = gateway.new_key()
    with gateway.openai(key=key) as client:
        uploaded = client.files.create(file=("in.jsonl", jsonl(("x", f"{marker()} hi"))),
                                       purpose="batch")
    budget = gateway.admin.post("/api/budgets", json={
        "key": key_id, "model": MODEL, "amount": "0.000001", "currency": "USD", "period": "day",
        "mode": "block"})
    assert budget.status_code == 201, budget.text
    gateway.app.state.gateway.admission._loaded_at = float("-inf")  # read the new budget now
    before = gateway.upstream.count()
    with gateway.openai(key=key) as client, pytest.raises(openai.APIStatusError) as refused:
        client.batches.create(input_file_id=uploaded.id, endpoint=URL, completion_window="24h")
    assert refused.value.status_code == 402
    assert "budget" in refused.value.message
    assert gateway.upstream.count() == before
