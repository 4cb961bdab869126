"""One rule for every request body and every tenant filter (issue 13, item 10).

* A JSON body is read as JSON whatever its ``Content-Type`` (``curl -d`` labels it a form).
* A field an endpoint does not know is refused by name (400), never silently dropped.
* A tenant filter naming a tenant that does not exist is a 404, on every endpoint.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN
FORM = "application/x-www-form-urlencoded"  # what curl -d sends
PRICE = {"model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
         "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post(client: httpx.Client, path: str, body: Any, content_type: str | None,
         headers: dict[str, str] = ADMIN, method: str = "POST") -> httpx.Response:
    sent = dict(headers)
    if content_type is not None:
        sent["content-type"] = content_type
    return client.request(method, path, content=orjson.dumps(body), headers=sent)


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    return error


@pytest.mark.parametrize("content_type", [None, FORM, "text/plain"])
def test_every_json_endpoint_reads_json_whatever_the_content_type(
        client: httpx.Client, content_type: str | None) -> None:
    calls: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/tenants", {"name": "acme"}, 201),
        ("POST", "/api/keys", {"tenant": "acme"}, 201),
        ("POST", "/api/fx", {"base": "USD", "quote": "CNY", "rate": "7.1"}, 201),
        ("POST", "/api/prices", PRICE, 201),
        ("POST", "/api/budgets", {"tenant": "acme", "amount": "10"}, 201),
        ("POST", "/api/plans", {"id": "basic", "allowances": {"text_token": 1000}}, 201),
        ("PUT", "/api/tenants/acme/plan", {"plan": "basic"}, 200),
        ("POST", "/api/quotas/grants", {"tenant": "acme", "type": "text_token",
                                        "amount": 5}, 201),
        ("POST", "/api/alerts/resolve", {"ids": ["none"]}, 404),  # read, then not found
    ]
    for method, path, body, status in calls:
        answer = post(client, path, body, content_type, method=method)
        assert answer.status_code == status, f"{method} {path}: {answer.text}"
    key = client.get("/api/keys", headers=ADMIN).json()["keys"][0]
    assert key["tenant"] == "acme"


@pytest.mark.parametrize(("path", "body"), [
    ("/api/tenants", {"name": "acme", "curency": "CNY"}),
    ("/api/keys", {"tenant": "acme", "expires": "2020-01-01T00:00:00Z"}),
    ("/api/fx", {"base": "USD", "quote": "CNY", "rate": "7.1", "effective": "2020-01-01"}),
    ("/api/prices", PRICE | {"model": "test/m2", "minimum": "1"}),
    ("/api/budgets", {"tenant": "acme", "amount": "10", "tenat": "acme"}),
    ("/api/quotas/grants", {"tenant": "acme", "type": "text_token", "amount": 5,
                            "expiry": "2030-01-01"}),
    ("/api/plans", {"id": "basic", "allowances": {"text_token": 1}, "price": "9"}),
    ("/api/alerts/resolve", {"ids": ["a"], "all": True}),
])
def test_unknown_fields_are_refused_by_name(client: httpx.Client, path: str,
                                            body: dict[str, Any]) -> None:
    assert client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN).status_code == 201
    before = {p: client.get(p, headers=ADMIN).json() for p in
              ("/api/tenants", "/api/keys", "/api/fx", "/api/budgets", "/api/plans")}
    known = {"curency", "expires", "effective", "minimum", "tenat", "expiry", "price", "all"}
    [name] = known & set(body)
    error = error_of(client.post(path, json=body, headers=ADMIN), 400)
    assert error["field"] == name
    assert error["message"].startswith(f"{name}: unknown field"), error
    after = {p: client.get(p, headers=ADMIN).json() for p in before}
    assert after == before  # nothing was created


def test_unknown_fields_of_a_quote_and_of_an_event_are_refused(client: httpx.Client,
                                                               tenant_key: str) -> None:
    headers = bearer(tenant_key)
    error = error_of(client.post("/v1/billing/quote", headers=headers, json={
        "model": "openai/gpt-4o-mini", "usage": {"input_tokens": 1}, "at": "2026-01-01"}), 400)
    assert error["field"] == "at" and "unknown field" in error["message"]
    good = {"id": "e-1", "model": "openai/gpt-4o-mini", "usage": {"input_tokens": 10}}
    answer = client.post("/v1/usage", headers=headers, json={"events": [
        good, {"id": "e-2", "model": "openai/gpt-4o-mini", "usgae": {"input_tokens": 10}}]})
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["results"]
    assert "error" not in first
    assert second["field"] == "usgae"
    assert second["error"].startswith("events[1].usgae: unknown field"), second


@pytest.mark.parametrize("path", [
    "/api/usage", "/api/keys", "/api/budgets", "/api/alerts", "/api/bills",
    "/api/stats", "/api/summary", "/api/trend/daily",
])
def test_an_unknown_tenant_filter_is_a_404_everywhere(client: httpx.Client, path: str) -> None:
    error = error_of(client.get(path, params={"tenant": "nope"}, headers=ADMIN), 404)
    assert error["code"] == "tenant_not_found"
    assert "nope" in error["message"]


@pytest.mark.parametrize("quantity", [1e26, 10**26, "1e26", 1e15])
def test_a_huge_quantity_is_too_large_not_fractional(client: httpx.Client, tenant_key: str,
                                                     quantity: object) -> None:
    headers = bearer(tenant_key)
    answer = client.post("/v1/usage", headers=headers, json={"events": [
        {"id": "big", "model": "openai/gpt-4o-mini", "usage": {"input_tokens": quantity}}]})
    [result] = answer.json()["results"]
    assert result["field"] == "usage.input_tokens"
    assert "too large" in result["error"] and "whole number" not in result["error"], result
    quote = error_of(client.post("/v1/billing/quote", headers=headers, json={
        "model": "openai/gpt-4o-mini", "usage": {"seconds": 1e26}}), 400)
    assert "too large" in quote["message"], quote
