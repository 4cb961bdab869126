"""The admin API: tenants, keys, prices, FX rates, usage records and rerating."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from meterline.domain.money import convert_at

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN
M1 = {"model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
      "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    return error


def tenant_with_key(client: httpx.Client, name: str, currency: str = "USD") -> dict[str, str]:
    ok(client.post("/api/tenants", json={"name": name, "currency": currency}, headers=ADMIN), 201)
    return bearer(ok(client.post("/api/keys", json={"tenant": name}, headers=ADMIN), 201)["key"])


def ingest(client: httpx.Client, headers: dict[str, str],
           *events: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = ok(client.post("/v1/usage", json={"events": list(events)},
                                                   headers=headers))["results"]
    return results


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": event_id, "timestamp": "2026-11-01T10:00:00Z",
                            "model": "test/m1",
                            "usage": {"input_tokens": 1000, "output_tokens": 500}}
    return base | fields


def records(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(client.get("/api/usage", params=params,
                                                headers=ADMIN))["records"]
    return found


# -- tenants and keys --------------------------------------------------------------------------

def test_tenants_create_and_list(client: httpx.Client) -> None:
    acme = ok(client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN), 201)
    assert (acme["id"], acme["currency"], acme["timezone"]) == ("acme", "USD", "UTC")
    shop = ok(client.post("/api/tenants", headers=ADMIN, json={
        "name": "shop-cn", "currency": "cny", "timezone": "Asia/Shanghai"}), 201)
    assert (shop["id"], shop["currency"], shop["timezone"]) == ("shop-cn", "CNY", "Asia/Shanghai")
    listed = ok(client.get("/api/tenants", headers=ADMIN))["tenants"]
    assert [(t["id"], t["currency"], t["timezone"]) for t in listed] == [
        ("acme", "USD", "UTC"), ("shop-cn", "CNY", "Asia/Shanghai")]

    error = error_of(client.post("/api/tenants", json={"name": "acme", "currency": "EUR"},
                                 headers=ADMIN), 409)
    assert error["code"] == "conflict" and "acme" in error["message"]
    bad: list[tuple[Any, str, str]] = [
        ({"name": "x", "currency": "XYZ"}, "currency", "XYZ"),
        ({"name": "x", "currency": 5}, "currency", ""),
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"name": "has space"}, "name", ""),
        ({"name": ""}, "name", ""),
        ({"name": "x" * 65}, "name", ""),
        ({}, "name", ""),
        ([], "body", "must be a JSON object"),
    ]
    for body, field, mentioned in bad:
        error = error_of(client.post("/api/tenants", json=body, headers=ADMIN), 400)
        assert error["code"] == "invalid_request", body
        assert error.get("field", "") == field, (body, error)
        assert mentioned in error["message"]
    error = error_of(client.post("/api/tenants", content=b"{name", headers=ADMIN), 400)
    assert error["type"] == "invalid_request_error"
    assert [t["id"] for t in ok(client.get("/api/tenants", headers=ADMIN))["tenants"]] == [
        "acme", "shop-cn"]


def test_keys_create_list_revoke(client: httpx.Client) -> None:
    ok(client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN), 201)
    ok(client.post("/api/tenants", json={"name": "globex"}, headers=ADMIN), 201)
    first = ok(client.post("/api/keys", json={"tenant": "acme", "user": "alice", "name": "ci",
                                              "models": ["openai/gpt-5-nano"]},
                           headers=ADMIN), 201)
    assert first["key"].startswith("ml-") and len(first["key"]) > 20
    assert (first["tenant"], first["user"], first["name"], first["models"]) == (
        "acme", "alice", "ci", ["openai/gpt-5-nano"])
    assert first["prefix"] == first["key"][:10]
    second = ok(client.post("/api/keys", json={"tenant": "acme"}, headers=ADMIN), 201)
    third = ok(client.post("/api/keys", json={"tenant": "globex"}, headers=ADMIN), 201)
    assert len({first["key"], second["key"], third["key"]}) == 3

    every = client.get("/api/keys", headers=ADMIN)
    for secret in (first["key"], second["key"], third["key"]):
        assert secret not in every.text  # shown once, never listed
    keys = ok(every)["keys"]
    assert [k["id"] for k in keys] == [first["id"], second["id"], third["id"]]
    assert all("key" not in k for k in keys)
    assert [k["id"] for k in ok(client.get("/api/keys", params={"tenant": "acme"},
                                           headers=ADMIN))["keys"]] == [first["id"], second["id"]]
    error = error_of(client.get("/api/keys", params={"tenant": "nobody"}, headers=ADMIN), 404)
    assert error["code"] == "tenant_not_found"
    # A key bound to a user makes that user known to the tenant.
    assert ok(client.get("/api/tenants/acme/users", headers=ADMIN)) == {"users": ["alice"]}

    revoked = ok(client.post(f"/api/keys/{second['id']}/revoke", headers=ADMIN))
    assert revoked["revoked_at"] is not None and "key" not in revoked
    listed = {k["id"]: k for k in ok(client.get("/api/keys", headers=ADMIN))["keys"]}
    assert listed[second["id"]]["revoked_at"] == revoked["revoked_at"]
    assert listed[first["id"]]["revoked_at"] is None

    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"tenant": "nobody"}, 404, ""),
        ({}, 400, "tenant"),
        ({"tenant": "acme", "expires_at": "2030-01-01T00:00:00"}, 400, "expires_at"),
        ({"tenant": "acme", "expires_at": "next week"}, 400, "expires_at"),
        ({"tenant": "acme", "expires_at": "9999-12-31T23:59:59-01:00"}, 400, "expires_at"),
        ({"tenant": "acme", "models": "openai/gpt-5-nano"}, 400, "models"),
        ({"tenant": "acme", "user": "u" * 129}, 400, "user"),
        ({"tenant": "acme", "name": "n" * 129}, 400, "name"),
        ({"tenant": "t" * 65}, 404, ""),
    ]
    for body, status, field in bad:
        error = error_of(client.post("/api/keys", json=body, headers=ADMIN), status)
        assert error.get("field", "") == field, (body, error)
    assert len(ok(client.get("/api/keys", headers=ADMIN))["keys"]) == 3


# -- prices ------------------------------------------------------------------------------------

def test_prices_list_add_and_conflict(client: httpx.Client, tenant_key: str) -> None:
    created = ok(client.post("/api/prices", json=M1, headers=ADMIN), 201)
    assert created["id"] == "test/m1@2020-01-01T00:00:00+00:00"
    assert (created["model"], created["currency"], created["effective_from"]) == (
        "test/m1", "USD", "2020-01-01T00:00:00+00:00")
    assert created["prices"] == {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}

    error = error_of(client.post("/api/prices", json=M1 | {"prices": {"input_tokens": "9"}},
                                 headers=ADMIN), 409)
    assert error["code"] == "conflict" and "test/m1" in error["message"]
    later = M1 | {"effective_from": "2026-01-01T00:00:00Z",
                  "prices": {"input_tokens": "0.000001", "output_tokens": "0.000002"}}
    ok(client.post("/api/prices", json=later, headers=ADMIN), 201)

    versions = ok(client.get("/api/prices", params={"model": "test/m1"}, headers=ADMIN))
    assert [(v["id"], v["prices"]["input_tokens"]) for v in versions["versions"]] == [
        ("test/m1@2020-01-01T00:00:00+00:00", "0.0000005"),
        ("test/m1@2026-01-01T00:00:00+00:00", "0.000001")]
    # Without a filter, the shipped catalog is listed too.
    every = ok(client.get("/api/prices", headers=ADMIN))["versions"]
    models = {v["model"] for v in every}
    assert {"test/m1", "openai/gpt-5-nano"} <= models
    # A bare or aliased name resolves; an unknown one is a 404 with close names.
    nano = ok(client.get("/api/prices", params={"model": "gpt-5-nano"}, headers=ADMIN))
    assert {v["model"] for v in nano["versions"]} == {"openai/gpt-5-nano"}
    error = error_of(client.get("/api/prices", params={"model": "test/m2"}, headers=ADMIN), 404)
    assert error["code"] == "model_not_found" and "test/m1" in error["candidates"]

    # The new version prices events from its start on, exactly.
    [before, after] = ingest(client, bearer(tenant_key),
                             event("e-2025", timestamp="2025-12-31T23:59:59.999999Z"),
                             event("e-2026", timestamp="2026-06-01T00:00:00Z"))
    assert (before["cost"], after["cost"]) == ("0.00125", "0.002")

    bad: list[tuple[Any, str]] = [
        ({k: v for k, v in M1.items() if k != "model"}, "model"),
        (M1 | {"model": "no-provider"}, "model"),
        (M1 | {"model": "test/m3", "prices": {"input_tokens": 0.5}}, "test/m3.prices.input_tokens"),
        (M1 | {"model": "test/m3", "prices": {"input_tokens": "-1"}},
         "test/m3.prices.input_tokens"),
        (M1 | {"model": "test/m3", "prices": {"input_tokens": "cheap"}},
         "test/m3.prices.input_tokens"),
        (M1 | {"model": "test/m3", "prices": {"tokens": "1"}}, "prices"),
        (M1 | {"model": "test/m3", "prices": None}, "prices"),
        (M1 | {"model": "test/m3", "unit": "2K"}, "unit"),
        (M1 | {"model": "test/m3", "currency": "XYZ"}, "currency"),
        (M1 | {"model": "test/m3", "effective_from": "someday"}, "effective_from"),
        (M1 | {"model": "test/m3", "effective_from": None}, "effective_from"),
        (M1 | {"model": "test/m3", "billing_type": "vibes"}, "billing_type"),
        ([M1], "body"),
    ]
    for body, field in bad:
        error = error_of(client.post("/api/prices", json=body, headers=ADMIN), 400)
        assert (error["code"], error.get("field")) == ("invalid_request", field), (body, error)
    error = error_of(client.post("/api/prices", content=b"{", headers=ADMIN), 400)
    assert error["field"] == "body"
    assert client.get("/api/prices", params={"model": "test/m3"}, headers=ADMIN).status_code == 404


def test_prices_import(client: httpx.Client, tenant_key: str) -> None:
    litellm = {
        "sample_spec": {"input_cost_per_token": 0.0},
        "lite-chat": {"litellm_provider": "openai", "mode": "chat",
                      "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07},
        "deepseek/lite-reasoner": {"litellm_provider": "deepseek", "mode": "chat",
                                   "input_cost_per_token": 5.5e-07,
                                   "output_cost_per_token": 2.19e-06},
        "no-price": {"litellm_provider": "openai", "mode": "chat"},
    }
    summary = ok(client.post("/api/prices/import", params={"format": "litellm"},
                             content=json.dumps(litellm), headers=ADMIN))
    assert (summary["added"], summary["already_present"]) == (2, 0)
    assert any("no-price" in s for s in summary["skipped"]), summary
    headers = bearer(tenant_key)
    usage = {"input_tokens": 1000, "output_tokens": 500}
    quote = ok(client.post("/v1/billing/quote", json={"model": "openai/lite-chat", "usage": usage},
                           headers=headers))
    assert (quote["cost"], quote["currency"]) == ("0.00045", "USD")  # float text, read exactly
    quote = ok(client.post("/v1/billing/quote", headers=headers,
                           json={"model": "deepseek/lite-reasoner", "usage": usage}))
    assert quote["cost"] == "0.001645"
    # The file has no dates: importing it again adds nothing; a changed price adds a version.
    again = ok(client.post("/api/prices/import", params={"format": "litellm"},
                           content=json.dumps(litellm), headers=ADMIN))
    assert (again["added"], again["already_present"]) == (0, 2)
    litellm["lite-chat"]["input_cost_per_token"] = 2e-07
    changed = ok(client.post("/api/prices/import", params={"format": "litellm"},
                             content=json.dumps(litellm), headers=ADMIN))
    assert (changed["added"], changed["already_present"]) == (1, 1)
    versions = ok(client.get("/api/prices", params={"model": "openai/lite-chat"},
                             headers=ADMIN))["versions"]
    assert len(versions) == 2

    # meterline's own catalog format, with a fixed start: importing twice adds nothing new.
    catalog = {"provider": "test", "models": [
        {"model": "cat-1", "currency": "CNY", "unit": "1K", "effective_from": "2024-01-01",
         "prices": {"input_tokens": "0.002", "output_tokens": "0.008"}, "aliases": ["cat-one"]}]}
    for added, present in ((1, 0), (0, 1)):
        summary = ok(client.post("/api/prices/import?format=meterline", content=json.dumps(catalog),
                                 headers=ADMIN))
        assert (summary["added"], summary["already_present"]) == (added, present)
    quote = ok(client.post("/v1/billing/quote", json={"model": "test/cat-one", "usage": usage},
                           headers=headers))
    assert (quote["model"], quote["cost"], quote["currency"]) == ("test/cat-1", "0.006", "CNY")

    # A bad file changes nothing; every problem is a 400 that says what is wrong.
    bad_rows = {"ok-model": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
                "bad-model": {"litellm_provider": "openai", "input_cost_per_token": -1e-06}}
    for fmt, raw, mentioned in [
        ("litellm", json.dumps(bad_rows).encode(), "bad-model"),
        ("litellm", b"{not json", ""),
        ("litellm", b"[1, 2]", ""),
        ("meterline", b"{not json", "JSON"),
        ("meterline", b'{"provider": "test", "models": [{"model": "x"}]}', ""),
        ("csv", b"a,b", "csv"),
    ]:
        answer = client.post(f"/api/prices/import?format={fmt}", content=raw, headers=ADMIN)
        error = error_of(answer, 400)
        assert mentioned in error["message"], (fmt, raw, error)
    error = error_of(client.get("/api/prices", params={"model": "openai/ok-model"},
                                headers=ADMIN), 404)
    assert error["code"] == "model_not_found"


# -- FX ----------------------------------------------------------------------------------------

def test_fx_converts_to_the_tenant_currency_exactly(client: httpx.Client) -> None:
    ok(client.post("/api/prices", json=M1, headers=ADMIN), 201)
    cny = tenant_with_key(client, "shop-cn", "CNY")

    # No rate yet: the cost is recorded in USD and the record is marked.
    [missing] = ingest(client, cny, event("no-rate"))
    assert (missing["cost"], missing["currency"], missing["status"]) == ("0.00125", "USD", "priced")
    assert "USD" in missing["warning"] and "CNY" in missing["warning"]
    [record] = records(client, tenant="shop-cn")
    assert (record["fx_missing"], record["billed_cost"], record["billed_currency"],
            record["fx_rate"]) == (True, None, None, None)

    rate = ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "usd", "quote": "CNY", "rate": "7.123456789",
        "effective_from": "2026-01-01T00:00:00Z"}), 201)
    assert rate == {"base": "USD", "quote": "CNY", "rate": "7.123456789",
                    "effective_from": "2026-01-01T00:00:00+00:00"}
    later = ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.2", "effective_from": "2026-12-01T00:00:00Z"}),
        201)
    assert later["rate"] == "7.2"
    error = error_of(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "8", "effective_from": "2026-12-01T00:00:00Z"}),
        409)
    assert error["code"] == "conflict"
    listed = ok(client.get("/api/fx", headers=ADMIN))["rates"]
    assert sorted(r["rate"] for r in listed) == ["7.123456789", "7.2"]

    ingest(client, cny, event("nov"), event("dec", timestamp="2026-12-05T00:00:00Z"))
    by_id = {r["id"]: r for r in records(client, tenant="shop-cn")}
    nov, dec = by_id["nov"], by_id["dec"]
    assert (nov["cost"], nov["currency"]) == ("0.00125", "USD")
    assert (nov["billed_cost"], nov["billed_currency"], nov["fx_rate"], nov["fx_missing"]) == (
        "0.008904321", "CNY", "7.123456789", False)
    # each charge line at the rate, rounded half-even to 10 places (money.convert_at), added
    assert Decimal(nov["billed_cost"]) == sum(
        convert_at(Decimal(line["amount"]), Decimal(nov["fx_rate"])) for line in nov["lines"])
    assert (dec["billed_cost"], dec["fx_rate"]) == ("0.009", "7.2")  # the rate in force then
    assert by_id["no-rate"]["fx_missing"] is True  # a new rate does not touch stored records
    # ... until `rerate` completes it, once, with the rate in force at the call's time.
    for converted in (1, 0):
        assert ok(client.post("/api/rerate", headers=ADMIN)) == {
            "priced": 0, "still_unpriced": 0, "converted": converted, "still_fx_missing": 0}
    fixed = {r["id"]: r for r in records(client, tenant="shop-cn")}["no-rate"]
    assert (fixed["fx_missing"], fixed["billed_cost"], fixed["billed_currency"],
            fixed["fx_rate"], fixed["warning"]) == (False, "0.008904321", "CNY",
                                                    "7.123456789", None)

    # Only the opposite direction stored: its reciprocal (28 digits) is used and stored.
    ok(client.post("/api/prices", headers=ADMIN, json=M1 | {
        "model": "test/cny", "currency": "CNY", "unit": "1K",
        "prices": {"input_tokens": "0.002", "output_tokens": "0.008"}}), 201)
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "EUR", "quote": "CNY", "rate": "8", "effective_from": "2020-01-01T00:00:00Z"}),
        201)
    eu = tenant_with_key(client, "eu", "EUR")
    [priced] = ingest(client, eu, event("cny-call", model="test/cny"))
    assert (priced["cost"], priced["currency"]) == ("0.006", "CNY")
    [eu_record] = records(client, tenant="eu")
    assert (eu_record["billed_cost"], eu_record["billed_currency"], eu_record["fx_rate"]) == (
        "0.00075", "EUR", "0.125")

    bad: list[tuple[Any, str]] = [
        ({"base": "USD", "quote": "CNY"}, "rate"),
        ({"base": "USD", "quote": "CNY", "rate": "abc"}, "rate"),
        ({"base": "USD", "quote": "CNY", "rate": "0"}, "rate"),
        ({"base": "USD", "quote": "CNY", "rate": "-7"}, "rate"),
        ({"base": "USD", "quote": "CNY", "rate": "Infinity"}, "rate"),
        ({"base": "USD", "quote": "USD", "rate": "1"}, "quote"),
        ({"base": "XXX", "quote": "CNY", "rate": "1"}, "base"),
        ({"base": "USD", "quote": "CNY", "rate": "7", "effective_from": "2026-01-02T00:00:00"},
         "effective_from"),
        ({"base": "USD", "quote": "CNY", "rate": "7", "effective_from": "tomorrow"},
         "effective_from"),
        ({"base": "USD", "quote": "CNY", "rate": "7",
          "effective_from": "0001-01-01T00:00:00+01:00"}, "effective_from"),
    ]
    for body, field in bad:
        error = error_of(client.post("/api/fx", json=body, headers=ADMIN), 400)
        assert error.get("field") == field, (body, error)
    assert len(ok(client.get("/api/fx", headers=ADMIN))["rates"]) == 3


# -- usage records and rerating ----------------------------------------------------------------

def test_rerate_prices_unpriced_records(client: httpx.Client, tenant_key: str) -> None:
    headers = bearer(tenant_key)
    ingest(client, headers, event("r-1", model="test/new"),
           event("r-2", model="test/new", usage={"input_tokens": 10}),
           event("r-3", model="test/never"))
    assert {r["pricing"] for r in records(client, tenant="acme")} == {"unpriced"}
    assert ok(client.post("/api/rerate", headers=ADMIN)) == {
        "priced": 0, "still_unpriced": 3, "converted": 0, "still_fx_missing": 0}

    ok(client.post("/api/prices", json=M1 | {"model": "test/new"}, headers=ADMIN), 201)
    assert ok(client.post("/api/rerate", headers=ADMIN)) == {
        "priced": 2, "still_unpriced": 1, "converted": 0, "still_fx_missing": 0}
    by_id = {r["id"]: r for r in records(client, tenant="acme")}
    assert (by_id["r-1"]["pricing"], by_id["r-1"]["cost"], by_id["r-1"]["currency"],
            by_id["r-1"]["billed_cost"]) == ("priced", "0.00125", "USD", "0.00125")
    assert by_id["r-1"]["price_version"] == "test/new@2020-01-01T00:00:00+00:00"
    assert [(ln["meter"], ln["amount"]) for ln in by_id["r-1"]["lines"]] == [
        ("input_tokens", "0.0005"), ("output_tokens", "0.00075")]
    assert (by_id["r-2"]["cost"], by_id["r-3"]["pricing"]) == ("0.000005", "unpriced")
    # Rerating again charges nothing twice.
    assert ok(client.post("/api/rerate", headers=ADMIN)) == {
        "priced": 0, "still_unpriced": 1, "converted": 0, "still_fx_missing": 0}
    again = {r["id"]: r for r in records(client, tenant="acme")}
    assert len(again["r-1"]["lines"]) == 2 and again["r-1"]["cost"] == "0.00125"
    # A duplicate of a rerated event now reports the price.
    [dup] = ingest(client, headers, event("r-1", model="test/new"))
    assert (dup["duplicate"], dup["status"], dup["cost"]) == (True, "priced", "0.00125")


def test_usage_filters(client: httpx.Client, tenant_key: str) -> None:
    ok(client.post("/api/prices", json=M1, headers=ADMIN), 201)
    headers = bearer(tenant_key)
    other = tenant_with_key(client, "globex")
    ingest(client, headers,
           event("a1", user="alice", timestamp="2026-11-01T00:00:00Z"),
           event("a2", user="alice", timestamp="2026-11-02T00:00:00Z", status="error"),
           event("b1", user="bob", timestamp="2026-11-03T00:00:00Z",
                 model="openai/gpt-5-nano"),
           event("n1", timestamp="2026-11-04T00:00:00Z"))
    ingest(client, other, event("g1", user="alice"))

    def ids(**params: str) -> list[str]:
        return sorted(r["id"] for r in records(client, **params))

    assert ids() == ["a1", "a2", "b1", "g1", "n1"]
    assert ids(tenant="acme") == ["a1", "a2", "b1", "n1"]
    assert ids(tenant="acme", user="alice") == ["a1", "a2"]
    assert ids(user="alice") == ["a1", "a2", "g1"]
    assert ids(tenant="acme", model="openai/gpt-5-nano") == ["b1"]
    assert ids(tenant="acme", provider="test") == ["a1", "a2", "n1"]
    assert ids(tenant="acme", status="error") == ["a2"]
    assert ids(tenant="acme", status="success") == ["a1", "b1", "n1"]
    assert ids(tenant="acme", start="2026-11-01T12:00:00Z") == ["a2", "b1", "n1"]
    assert ids(tenant="acme", end="2026-11-02T12:00:00Z") == ["a1", "a2"]
    assert ids(tenant="acme", start="2026-11-01T12:00:00Z", end="2026-11-03T12:00:00Z") == [
        "a2", "b1"]
    assert ids(tenant="acme", start="2026-11-02T07:00:00+08:00",
               end="2026-11-03T00:00:01Z") == ["a2", "b1"]
    error = error_of(client.get("/api/usage", params={"tenant": "nobody"}, headers=ADMIN), 404)
    assert error["code"] == "tenant_not_found"  # as stats and keys answer
    key_id = ok(client.get("/api/keys", params={"tenant": "acme"}, headers=ADMIN))["keys"][0]["id"]
    assert ids(key=key_id) == ["a1", "a2", "b1", "n1"]
    a1 = records(client, tenant="acme", user="alice", end="2026-11-01T12:00:00Z")[0]
    assert ids(request_id=a1["request_id"]) == ["a1"]
    newest = records(client, tenant="acme", limit="2")
    assert [r["id"] for r in newest] == ["n1", "b1"]  # newest first
    assert ok(client.get("/api/tenants/acme/users", headers=ADMIN)) == {"users": ["alice", "bob"]}

    for query, field in [("start=2026-11-05&end=2026-11-01", "end"),
                         ("start=yesterday", "start"), ("end=2026-13-01", "end"),
                         ("limit=0", "limit"), ("limit=ten", "limit"),
                         ("limit=10001", "limit")]:
        error = error_of(client.get(f"/api/usage?{query}", headers=ADMIN), 400)
        assert error.get("field") == field, (query, error)
    error = error_of(client.get("/api/tenants/nobody/users", headers=ADMIN), 404)
    assert error["code"] == "tenant_not_found"


def test_usage_time_filters_include_start_and_exclude_end(client: httpx.Client,
                                                          tenant_key: str) -> None:
    # (SQLite once stored times as '2026-11-02 00:00:00' and compared with '… 00:00:00.000000'.)
    ok(client.post("/api/prices", json=M1, headers=ADMIN), 201)
    ingest(client, bearer(tenant_key), event("t1", timestamp="2026-11-01T00:00:00Z"),
           event("t2", timestamp="2026-11-02T00:00:00Z"),
           event("t3", timestamp="2026-11-02T00:00:00.000001Z"),
           event("t4", timestamp="2026-11-03T00:00:00+08:00"))

    def ids(**params: str) -> list[str]:
        return sorted(r["id"] for r in records(client, **params))

    assert ids(start="2026-11-02T00:00:00Z") == ["t2", "t3", "t4"]
    assert ids(end="2026-11-02T00:00:00Z") == ["t1"]
    assert ids(start="2026-11-02", end="2026-11-02T16:00:00Z") == ["t2", "t3"]  # t4 is at end
    assert ids(start="2026-11-02T08:00:00+08:00", end="2026-11-02T00:00:00.000001Z") == ["t2"]
    assert [r["timestamp"] for r in records(client, request_id=records(
        client, start="2026-11-02T00:00:00.000001Z", end="2026-11-02T00:00:00.000002Z")[0][
            "request_id"])] == ["2026-11-02T00:00:00.000001+00:00"]


def test_fx_reciprocal_rate_is_stored_exactly(client: httpx.Client) -> None:
    ok(client.post("/api/prices", json=M1 | {"model": "test/cny", "currency": "CNY"},
                   headers=ADMIN), 201)
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.123456789",
        "effective_from": "2020-01-01T00:00:00Z"}), 201)
    usd = tenant_with_key(client, "acme")
    ingest(client, usd, event("cny-in-usd", model="test/cny"))
    [record] = records(client, tenant="acme")
    inverse = "0.1403812825178071000158066657"  # 1 / 7.123456789 to 28 significant digits
    assert (record["cost"], record["currency"]) == ("0.00125", "CNY")
    assert (record["fx_rate"], record["billed_currency"], record["fx_missing"]) == (
        inverse, "USD", False)
    # each charge line converted at it and rounded half-even to 10 places, then added
    # (0.0000701906 + 0.0001052860), not the 33 places of the exact product
    assert record["billed_cost"] == "0.0001754766"
