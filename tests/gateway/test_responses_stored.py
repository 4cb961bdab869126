"""Responses API objects after their creation (issue 16, item C), driven with the official
``openai`` SDK: ``client.responses.retrieve``, ``delete`` and ``cancel`` through the gateway,
reachable only by the tenant (and bound user) that created them; background responses
(``background=True``) billed once when a poll sees them finished, however often and however
concurrently they are polled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import pytest
from sqlalchemy import update

from meterline.gateway.responses import bill_request_id
from meterline.store.schema import upstream_responses
from tests.gateway.conftest import Gateway, marker, money, token_cost, words

MODEL = "openai/gpt-5-nano"


def quoted(gateway: Gateway, record: dict[str, Any]) -> Decimal:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(), json={
            "model": MODEL, "usage": record["usage"], "timestamp": record["timestamp"]})
    assert answer.status_code == 200, answer.text
    return money(answer.json()["cost"])


def upstream_calls(gateway: Gateway, response_id: str) -> int:
    return sum(n for path, n in gateway.upstream.sim.requests.items() if response_id in path)


def test_a_response_is_retrieved_and_deleted_by_its_tenant(gateway: Gateway) -> None:
    with gateway.openai() as client:
        created = client.responses.create(model=MODEL, input=f"{marker()} hello")
        again = client.responses.retrieve(created.id)
        assert (again.id, again.status, again.output_text) == (created.id, "completed",
                                                               created.output_text)
        client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(created.id)  # the provider's own 404, passed on


def test_other_tenants_and_other_users_get_404_and_never_reach_the_provider(
        gateway: Gateway) -> None:
    with gateway.openai() as client:
        created = client.responses.create(model=MODEL, input=f"{marker()} private")
    created_tenant = gateway.admin.post("/api/tenants", json={"name": f"t{marker()}"})
    assert created_tenant.status_code == 201, created_tenant.text
    stranger = gateway.admin.post("/api/keys", json={"tenant": created_tenant.json()["id"]})
    assert stranger.status_code == 201, stranger.text
    alice, _ = gateway.new_key(user="alice")
    unbound, _ = gateway.new_key()
    before = upstream_calls(gateway, created.id)
    for key in (stranger.json()["key"], alice):
        with gateway.openai(key=key) as client:
            for action in (client.responses.retrieve, client.responses.delete,
                           client.responses.cancel):
                with pytest.raises(openai.NotFoundError) as refused:
                    action(created.id)
                assert "tenant" in refused.value.message
    assert upstream_calls(gateway, created.id) == before
    # The tenant's other keys, unbound, reach it.
    with gateway.openai(key=unbound) as client:
        assert client.responses.retrieve(created.id).id == created.id
    with gateway.openai() as client, pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_never_made")


def test_a_background_response_is_billed_once_when_a_poll_sees_it_done(
        gateway: Gateway) -> None:
    prompt = f"{marker()} research this [[sim polls=3 tokens=9 cached=20 reasoning=4]]"
    with gateway.openai() as client:
        raw = client.responses.with_raw_response.create(model=MODEL, input=prompt,
                                                        background=True)
        queued = raw.parse()
        assert (queued.status, queued.usage) == ("queued", None)
        creation = gateway.record(raw.headers["x-meterline-request-id"])
        # Nothing was used yet: the creating call costs nothing, and is not an estimate.
        assert (creation["usage"], money(creation["cost"]), creation["estimated"]) == (
            {}, Decimal(0), False)
        polls = [client.responses.with_raw_response.retrieve(queued.id) for _ in range(5)]
    statuses = [p.parse().status for p in polls]
    assert statuses == ["in_progress", "in_progress", "completed", "completed", "completed"]
    billed = [p.headers.get("x-meterline-billed-request-id") for p in polls]
    assert billed == [None, None, bill_request_id(queued.id), None, None]
    record = gateway.record(bill_request_id(queued.id))
    usage = {"input_tokens": words(prompt) + 20, "cached_input_tokens": 20,
             "output_tokens": 13, "reasoning_tokens": 4}
    assert (record["status"], record["endpoint"], record["estimated"], record["user"]) == (
        "success", "responses", False, "bob")
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage) == quoted(gateway, record)
    assert record["timestamp"] == creation["timestamp"]  # priced as of its creation


def test_concurrent_polls_bill_a_background_response_once(gateway: Gateway) -> None:
    prompt = f"{marker()} busy [[sim tokens=5]]"
    with gateway.openai() as client:
        queued = client.responses.create(model=MODEL, input=prompt, background=True)

        def poll(_: int) -> str:
            return client.responses.retrieve(queued.id).status

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(poll, range(16)))
    assert set(statuses) == {"completed"}
    # ``record`` insists on exactly one ledger record with the bill's request id.
    record = gateway.record(bill_request_id(queued.id))
    usage = {"input_tokens": words(prompt), "output_tokens": 5}
    assert record["usage"] == usage and money(record["cost"]) == token_cost(usage)
    with gateway.http() as http:
        mine = http.get(f"/v1/responses/{queued.id}", headers=gateway.headers())
    assert mine.status_code == 200 and "x-meterline-billed-request-id" not in mine.headers


def test_a_cancelled_background_response_is_billed_for_its_prompt(gateway: Gateway) -> None:
    prompt = f"{marker()} long job [[sim polls=50]]"
    with gateway.openai() as client:
        queued = client.responses.create(model=MODEL, input=prompt, background=True)
        cancelled = client.responses.cancel(queued.id)
        assert cancelled.status == "cancelled"
        assert client.responses.retrieve(queued.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError):
            client.responses.cancel(queued.id)
    record = gateway.record(bill_request_id(queued.id))
    usage = {"input_tokens": words(prompt)}
    assert (record["status"], record["usage"]) == ("cancelled", usage)
    assert money(record["cost"]) == token_cost(usage)


def test_a_streamed_background_response_is_billed_by_its_stream_only(gateway: Gateway) -> None:
    prompt = f"{marker()} stream it [[sim tokens=4]]"
    with gateway.openai() as client:
        with client.responses.with_streaming_response.create(
                model=MODEL, input=prompt, background=True, stream=True) as raw:
            request_id = raw.headers["x-meterline-request-id"]
            events = list(raw.parse())
        response_id = events[-1].response.id  # type: ignore[union-attr]
        polled = client.responses.with_raw_response.retrieve(response_id)
    assert polled.parse().status == "completed"
    assert "x-meterline-billed-request-id" not in polled.headers
    usage = {"input_tokens": words(prompt), "output_tokens": 4}
    assert gateway.record(request_id)["usage"] == usage
    none = gateway.admin.get("/api/usage", params={"request_id": bill_request_id(response_id)})
    assert none.json()["records"] == []


def test_a_bill_journaled_again_is_kept_once(gateway: Gateway) -> None:
    """A process that journals a bill and dies before marking the row billed leaves it
    pending: the next poll journals the same bill again, and the ledger keeps it once."""
    with gateway.openai() as client:
        queued = client.responses.create(model=MODEL, input=f"{marker()} twice [[sim tokens=3]]",
                                         background=True)
        first = client.responses.with_raw_response.retrieve(queued.id)
        engine = gateway.app.state.gateway.metering.engine
        with engine.begin() as conn:
            conn.execute(update(upstream_responses).values(billed_at=None)
                         .where(upstream_responses.c.response_id == queued.id))
        second = client.responses.with_raw_response.retrieve(queued.id)
        # The journal drains in order: once a later call is in the ledger, so is the bill
        # journaled again.
        later = client.responses.with_raw_response.create(model=MODEL, input=f"{marker()} x")
    bill = bill_request_id(queued.id)
    assert first.headers["x-meterline-billed-request-id"] == bill
    assert second.headers["x-meterline-billed-request-id"] == bill
    gateway.record(later.headers["x-meterline-request-id"])
    records = gateway.admin.get("/api/usage", params={"request_id": bill}).json()["records"]
    assert len(records) == 1 and records[0]["usage"]["output_tokens"] == 3
