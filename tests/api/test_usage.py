"""POST /v1/usage and POST /v1/billing/quote over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN

RESULT_KEYS = {"id", "request_id", "cost", "currency", "duplicate", "status"}
QUOTE_KEYS = {"model", "cost", "currency", "price_version", "lines"}
LINE_KEYS = {"meter", "quantity", "unit", "unit_price", "amount"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": event_id, "timestamp": "2026-11-01T10:00:00Z",
                            "model": "openai/gpt-5-nano",
                            "usage": {"input_tokens": 1000, "output_tokens": 500}}
    return base | fields


def add_price(client: httpx.Client, model: str, prices: dict[str, str], *, unit: str = "1",
              currency: str = "USD", effective_from: str = "2020-01-01",
              **extra: Any) -> dict[str, Any]:
    body = {"model": model, "unit": unit, "currency": currency, "prices": prices,
            "effective_from": effective_from, **extra}
    answer = client.post("/api/prices", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def records(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/usage", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["records"]
    return found


def ingest(client: httpx.Client, headers: dict[str, str], *events: dict[str, Any],
           expect: int = 200) -> list[dict[str, Any]]:
    answer = client.post("/v1/usage", json={"events": list(events)}, headers=headers)
    assert answer.status_code == expect, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    assert len(results) == len(events)
    return results


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    return error


# -- ingestion -------------------------------------------------------------------------------

def test_usage_is_priced_and_idempotent(client: httpx.Client, tenant_key: str) -> None:
    headers = {"Authorization": f"Bearer {tenant_key}"}
    event = {"id": "evt-1", "timestamp": "2026-11-01T10:00:00Z", "model": "openai/gpt-5-nano",
             "usage": {"input_tokens": 1000, "output_tokens": 500}}
    first = client.post("/v1/usage", json={"events": [event]}, headers=headers)
    assert first.status_code == 200, first.text
    result = first.json()["results"][0]
    assert (result["cost"], result["currency"], result["duplicate"]) == ("0.00025", "USD", False)
    again = client.post("/v1/usage", json={"events": [event]}, headers=headers).json()
    assert again["results"][0]["duplicate"] is True
    assert again["results"][0]["cost"] == "0.00025"


def test_result_shape_and_batch_idempotency(client: httpx.Client, tenant_key: str) -> None:
    headers = bearer(tenant_key)
    batch = [event("evt-1", user="alice", metadata={"purpose": "chat"}),
             event("evt-2", usage={"input_tokens": 2000, "output_tokens": 0}),
             event("evt-3", status="error", usage={"input_tokens": 10})]
    first = ingest(client, headers, *batch)
    assert [set(r) for r in first] == [RESULT_KEYS] * 3
    assert [r["id"] for r in first] == ["evt-1", "evt-2", "evt-3"]
    # gpt-5-nano: 0.05 / 1M input, 0.40 / 1M output
    assert [r["cost"] for r in first] == ["0.00025", "0.0001", "0.0000005"]
    assert {r["currency"] for r in first} == {"USD"}
    assert [r["duplicate"] for r in first] == [False] * 3
    assert [r["status"] for r in first] == ["priced"] * 3
    assert len({r["request_id"] for r in first}) == 3

    # The same batch again, and once more with different quantities: nothing is charged twice.
    again = ingest(client, headers, *batch)
    assert [r["duplicate"] for r in again] == [True] * 3
    assert [(r["cost"], r["request_id"]) for r in again] == [
        (r["cost"], r["request_id"]) for r in first]
    changed = ingest(client, headers, event("evt-1", usage={"input_tokens": 9_000_000}))
    assert changed[0]["duplicate"] is True
    assert changed[0]["cost"] == "0.00025"

    stored = records(client, tenant="acme")
    assert sorted(r["id"] for r in stored) == ["evt-1", "evt-2", "evt-3"]
    by_id = {r["id"]: r for r in stored}
    one = by_id["evt-1"]
    assert (one["request_id"], one["cost"], one["currency"], one["user"], one["status"]) == (
        first[0]["request_id"], "0.00025", "USD", "alice", "success")
    assert one["usage"] == {"input_tokens": 1000, "output_tokens": 500}
    assert one["metadata"] == {"purpose": "chat"}
    assert one["timestamp"] == "2026-11-01T10:00:00+00:00"
    assert [(ln["meter"], ln["amount"]) for ln in one["lines"]] == [
        ("input_tokens", "0.00005"), ("output_tokens", "0.0002")]
    assert by_id["evt-3"]["status"] == "error"


def test_mixed_batch_refuses_only_the_bad_events(client: httpx.Client,
                                                 tenant_key: str) -> None:
    headers = bearer(tenant_key)
    results = ingest(client, headers, event("good-1"),
                     event("bad", usage={"input_tokens": -5}), event("good-2"))
    assert results[1] == {"id": "bad", "field": "usage.input_tokens",
                          "error": "events[1].usage.input_tokens: must not be negative, got -5"}
    assert [(r["id"], r["cost"], r["duplicate"]) for r in (results[0], results[2])] == [
        ("good-1", "0.00025", False), ("good-2", "0.00025", False)]
    assert sorted(r["id"] for r in records(client, tenant="acme")) == ["good-1", "good-2"]

    # Every event refused: the batch as a whole is a bad request, and nothing is written.
    refused = ingest(client, headers, event("bad-a", usage={"input_tokens": -1}),
                     event("bad-b", model=""), expect=400)
    assert [r["id"] for r in refused] == ["bad-a", "bad-b"]
    assert all("error" in r and "cost" not in r for r in refused)
    assert refused[1]["field"] == "model"
    assert sorted(r["id"] for r in records(client, tenant="acme")) == ["good-1", "good-2"]


def test_bad_events_name_the_field_and_the_problem(client: httpx.Client,
                                                   tenant_key: str) -> None:
    headers = bearer(tenant_key)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (event("neg", usage={"input_tokens": -1}), "usage.input_tokens", "must not be negative"),
        (event("frac", usage={"output_tokens": 1.5}), "usage.output_tokens", "whole number"),
        (event("str", usage={"input_tokens": "many"}), "usage.input_tokens", "must be a number"),
        (event("bool", usage={"images": True}), "usage.images", "must be a number"),
        (event("meter", usage={"input_tokenz": 5}), "usage.input_tokenz", "unknown meter"),
        (event("usage", usage=[1, 2]), "usage", "must be an object"),
        (event("cache", usage={"input_tokens": 10, "cached_input_tokens": 20}),
         "usage.input_tokens", "must not exceed"),
        (event("stamp", timestamp="yesterday"), "timestamp", "not an ISO 8601 timestamp"),
        (event("stamp2", timestamp=1700000000), "timestamp", "ISO 8601"),
        (event("status", status="exploded"), "status", "not one of"),
        (event("meta", metadata=["x"]), "metadata", "must be an object"),
        (event("tags", tags="a,b"), "tags", "list of strings"),
        ({"model": "openai/gpt-5-nano"}, "id", "missing"),
        (event("x" * 201), "id", "at most 200"),
        (event("nomodel", model=None), "model", "missing"),
    ]
    for raw, field, problem in cases:
        answer = client.post("/v1/usage", json={"events": [raw]}, headers=headers)
        assert answer.status_code == 400, (raw, answer.text)
        result = answer.json()["results"][0]
        assert result["id"] == raw.get("id"), result
        # (the timestamp's field comes back as "events[0].timestamp", the others bare)
        assert result["field"].removeprefix("events[0].") == field, (raw, result)
        assert result["error"].startswith("events[0]."), result
        assert field in result["error"] and problem in result["error"], (raw, result)
    assert records(client, tenant="acme") == []

    # Whole-batch problems: nothing of the batch is written.
    too_many = client.post("/v1/usage", headers=headers,
                           json={"events": [event(f"e{i}") for i in range(1001)]})
    error = error_of(too_many, 400)
    assert (error["code"], error["field"]) == ("invalid_request", "events")
    assert "at most 1000" in error["message"] and "1001" in error["message"]
    twice = client.post("/v1/usage", headers=headers,
                        json={"events": [event("a"), event("same"), event("same")]})
    error = error_of(twice, 400)
    assert error["field"] == "id"
    assert "'same'" in error["message"] and "twice" in error["message"]
    for body, field in [(b"{not json", "body"), (b"", "body"), (b'{"evts": []}', "events"),
                        (b'{"events": {}}', "events"), (b'{"events": []}', "events"),
                        (b"[]", "events"), (b"null", "events")]:
        error = error_of(client.post("/v1/usage", content=body, headers=headers), 400)
        assert error["field"] == field, (body, error)
        assert error["type"] == "invalid_request_error"
    assert records(client, tenant="acme") == []

    # Exactly 1000 is allowed.
    full = ingest(client, headers, *[event(f"e{i}") for i in range(1000)])
    assert {r["status"] for r in full} == {"priced"}
    assert len(records(client, tenant="acme", limit="5000")) == 1000


def test_unknown_model_is_recorded_unpriced(client: httpx.Client, tenant_key: str) -> None:
    headers = bearer(tenant_key)
    [result] = ingest(client, headers, event("u-1", model="acme-ai/secret-model"))
    assert result["status"] == "unpriced"
    assert (result["cost"], result["currency"], result["duplicate"]) == (None, None, False)
    assert "acme-ai/secret-model" in result["warning"]
    [again] = ingest(client, headers, event("u-1", model="acme-ai/secret-model"))
    assert (again["status"], again["duplicate"], again["cost"]) == ("unpriced", True, None)
    [stored] = records(client, tenant="acme")
    assert (stored["pricing"], stored["cost"], stored["model"], stored["provider"]) == (
        "unpriced", None, "acme-ai/secret-model", "acme-ai")
    assert "acme-ai/secret-model" in stored["warning"]
    assert stored["usage"] == {"input_tokens": 1000, "output_tokens": 500}
    assert stored["lines"] == []

    # A known model with no price yet at the event's time is unpriced too, with the reason.
    add_price(client, "test/late", {"input_tokens": "0.000001"}, effective_from="2027-01-01")
    [early] = ingest(client, headers, event("u-2", model="test/late"))
    assert early["status"] == "unpriced"
    assert "2027-01-01" in early["warning"]


# -- money exactness ---------------------------------------------------------------------------

def test_exact_money_for_every_billing_type(client: httpx.Client, tenant_key: str) -> None:
    add_price(client, "test/m1", {"input_tokens": "0.0000005", "output_tokens": "0.0000015"})
    add_price(client, "test/cny", {"input_tokens": "0.002", "output_tokens": "0.008"},
              unit="1K", currency="CNY")
    add_price(client, "test/tts", {"characters": "0.000001"}, billing_type="character")
    add_price(client, "test/img", {"images": "0.01"}, billing_type="count")
    add_price(client, "test/video", {"seconds": "0.001"}, billing_type="second")

    cases: list[tuple[str, dict[str, Any], str, str, list[tuple[str, str, str, str, str]]]] = [
        ("test/m1", {"input_tokens": 1000, "output_tokens": 500}, "0.00125", "USD",
         [("input_tokens", "1000", "token", "0.0000005", "0.0005"),
          ("output_tokens", "500", "token", "0.0000015", "0.00075")]),
        ("test/cny", {"input_tokens": 1000, "output_tokens": 500}, "0.006", "CNY",
         [("input_tokens", "1000", "1K tokens", "0.002", "0.002"),
          ("output_tokens", "500", "1K tokens", "0.008", "0.004")]),
        ("test/cny", {"input_tokens": 1, "output_tokens": 3}, "0.000026", "CNY",
         [("input_tokens", "1", "1K tokens", "0.002", "0.000002"),
          ("output_tokens", "3", "1K tokens", "0.008", "0.000024")]),
        ("test/tts", {"characters": 500}, "0.0005", "USD",
         [("characters", "500", "character", "0.000001", "0.0005")]),
        ("test/img", {"images": 1}, "0.01", "USD", [("images", "1", "image", "0.01", "0.01")]),
        ("test/video", {"seconds": 30}, "0.03", "USD",
         [("seconds", "30", "second", "0.001", "0.03")]),
        ("test/video", {"seconds": 2.5}, "0.0025", "USD",
         [("seconds", "2.5", "second", "0.001", "0.0025")]),
    ]
    headers = bearer(tenant_key)
    for index, (model, usage, cost, currency, lines) in enumerate(cases):
        answer = client.post("/v1/billing/quote", json={"model": model, "usage": usage},
                             headers=headers)
        assert answer.status_code == 200, answer.text
        quote = answer.json()
        assert set(quote) == QUOTE_KEYS
        assert (quote["model"], quote["cost"], quote["currency"]) == (model, cost, currency)
        assert quote["price_version"] == f"{model}@2020-01-01T00:00:00+00:00"
        assert all(set(line) == LINE_KEYS for line in quote["lines"])
        assert [tuple(line[k] for k in ("meter", "quantity", "unit", "unit_price", "amount"))
                for line in quote["lines"]] == lines, model

        [result] = ingest(client, headers, event(f"money-{index}", model=model, usage=usage))
        assert (result["cost"], result["currency"], result["status"]) == (
            cost, currency, "priced"), model

    # The ledger keeps the same exact amounts (no float, no rounding) on both databases.
    stored = {r["id"]: r for r in records(client, tenant="acme")}
    assert [stored[f"money-{i}"]["cost"] for i in range(len(cases))] == [c[2] for c in cases]
    assert stored["money-6"]["usage"] == {"seconds": "2.5"}
    assert [ln["amount"] for ln in stored["money-1"]["lines"]] == ["0.002", "0.004"]
    # The quote recorded nothing on its own: one record per ingested event.
    assert len(stored) == len(cases)


def test_ledger_keeps_every_digit(client: httpx.Client, tenant_key: str) -> None:
    # (SQLite once bound money through float into REAL here, losing digits past the 15th.)
    add_price(client, "test/precise", {"input_tokens": "0.123456789012345678",
                                       "output_tokens": "1.000000000000000001"}, unit="1M")
    usage = {"input_tokens": 7, "output_tokens": 3}
    cost = "0.000003864197523086419749"  # 7 × 0.123456789012345678/1M + 3 × 1.0…01/1M
    quote = client.post("/v1/billing/quote", json={"model": "test/precise", "usage": usage},
                        headers=bearer(tenant_key)).json()
    assert quote["cost"] == cost
    [result] = ingest(client, bearer(tenant_key), event("p-1", model="test/precise", usage=usage))
    assert result["cost"] == cost
    [stored] = records(client, tenant="acme")
    assert (stored["cost"], stored["billed_cost"]) == (cost, cost)
    assert [(ln["unit_price"], ln["amount"]) for ln in stored["lines"]] == [
        ("0.123456789012345678", "0.000000864197523086419746"),
        ("1.000000000000000001", "0.000003000000000000000003")]


# -- quotes ------------------------------------------------------------------------------------

def test_quote_picks_the_version_in_force_and_the_variant(client: httpx.Client,
                                                          tenant_key: str) -> None:
    headers = bearer(tenant_key)
    add_price(client, "test/m1", {"input_tokens": "0.0000005", "output_tokens": "0.0000015"})
    add_price(client, "test/m1", {"input_tokens": "0.000001", "output_tokens": "0.000003"},
              effective_from="2025-01-01")
    usage = {"input_tokens": 1000, "output_tokens": 500}

    def quote(**body: Any) -> dict[str, Any]:
        answer = client.post("/v1/billing/quote", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    old = quote(model="test/m1", usage=usage, timestamp="2024-12-31T23:59:59Z")
    assert (old["cost"], old["price_version"]) == ("0.00125", "test/m1@2020-01-01T00:00:00+00:00")
    new = quote(model="test/m1", usage=usage, timestamp="2025-01-01T00:00:00Z")
    assert (new["cost"], new["price_version"]) == ("0.0025", "test/m1@2025-01-01T00:00:00+00:00")
    assert quote(model="test/m1", usage=usage)["cost"] == "0.0025"  # now
    # The admin token may quote too.
    answer = client.post("/v1/billing/quote", json={"model": "test/m1", "usage": usage,
                                                    "timestamp": "2021-06-01T00:00:00+08:00"},
                         headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["cost"] == "0.00125"

    before = client.post("/v1/billing/quote", headers=headers,
                         json={"model": "test/m1", "usage": usage,
                               "timestamp": "2019-12-31T23:59:59Z"})
    error = error_of(before, 404)
    assert error["code"] == "price_not_found"
    assert "test/m1" in error["message"] and "2020-01-01" in error["message"]

    add_price(client, "test/image", {"images": "0.04"}, billing_type="count",
              variants=[{"match": {"size": "1024x1024", "quality": "high"},
                         "prices": {"images": "0.17"}},
                        {"match": {"size": "1024x1024"}, "prices": {"images": "0.011"}}])
    base = quote(model="test/image", usage={"images": 2})
    assert (base["cost"], base["lines"][0]["unit_price"]) == ("0.08", "0.04")
    high = quote(model="test/image", usage={"images": 2},
                 attributes={"size": "1024x1024", "quality": "high"})
    assert (high["cost"], high["lines"][0]["unit_price"]) == ("0.34", "0.17")
    low = quote(model="test/image", usage={"images": 3}, attributes={"size": "1024x1024"})
    assert low["cost"] == "0.033"
    # Ingestion applies the same variant from the event's attributes.
    [result] = ingest(client, headers, event("img-1", model="test/image", usage={"images": 2},
                                             attributes={"size": "1024x1024",
                                                         "quality": "high"}))
    assert result["cost"] == "0.34"

    # A bare model name resolves when exactly one provider has it.
    assert quote(model="gpt-5-nano", usage=usage)["model"] == "openai/gpt-5-nano"
    # Quoting records nothing.
    assert [r["id"] for r in records(client, tenant="acme")] == ["img-1"]


def test_quote_errors(client: httpx.Client, tenant_key: str) -> None:
    headers = bearer(tenant_key)
    usage = {"input_tokens": 1}
    close = client.post("/v1/billing/quote", json={"model": "openai/gpt-5-nanp", "usage": usage},
                        headers=headers)
    error = error_of(close, 404)
    assert error["code"] == "model_not_found"
    assert "openai/gpt-5-nano" in error["candidates"]
    assert "openai/gpt-5-nanp" in error["message"]
    far = client.post("/v1/billing/quote", json={"model": "zz/qqqqqqqqqq", "usage": usage},
                      headers=headers)
    error = error_of(far, 404)
    assert error["code"] == "model_not_found"
    assert error.get("candidates", []) == []

    bad: list[tuple[Any, str]] = [
        ({"usage": usage}, "model"),
        ({"model": 5, "usage": usage}, "model"),
        ({"model": "openai/gpt-5-nano", "usage": {"input_tokens": -1}}, "usage.input_tokens"),
        ({"model": "openai/gpt-5-nano", "usage": {"input_tokens": 0.5}}, "usage.input_tokens"),
        ({"model": "openai/gpt-5-nano", "usage": {"tokens": 5}}, "usage.tokens"),
        ({"model": "openai/gpt-5-nano", "usage": "lots"}, "usage"),
        ({"model": "openai/gpt-5-nano", "usage": usage, "timestamp": "soon"}, "timestamp"),
        ({"model": "openai/gpt-5-nano", "usage": usage, "timestamp": 17}, "timestamp"),
        ({"model": "openai/gpt-5-nano", "usage": usage, "attributes": ["size"]}, "attributes"),
        ([1, 2], "body"),
        ("text", "body"),
    ]
    for body, field in bad:
        answer = client.post("/v1/billing/quote", json=body, headers=headers)
        error = error_of(answer, 400)
        assert error["field"] == field, (body, error)
        assert error["code"] == "invalid_request"
    error = error_of(client.post("/v1/billing/quote", content=b"{oops", headers=headers), 400)
    assert error["field"] == "body" and "not valid JSON" in error["message"]
    # A meter the model has no price for.
    error = error_of(client.post("/v1/billing/quote", headers=headers, json={
        "model": "openai/gpt-5-nano", "usage": {"characters": 10}}), 404)
    assert error["code"] == "price_not_found" and "characters" in error["message"]
