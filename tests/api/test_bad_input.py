"""Bad input is a 400 naming its field, never a 500 (SPEC §7.6; issues 12.8, 12.10, 13.5).

Each case here once answered 500 or, worse, was accepted with a meaning nobody intended:
Unicode digits (``str.isdigit`` takes "¹"), a bill file with bare CR line ends, metadata nested
past what the ledger's JSON encoder takes, an event dated 9999-12-31 under a budget, money as
a JSON float, and empty names that widened a budget to every call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, Cli

MODEL = "openai/gpt-5-nano"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def refused(answer: httpx.Response, field: str) -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["field"] == field, error
    return error


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "model": MODEL, "usage": {"input_tokens": 10}, **fields}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("days", ["¹", "١٢", "--5", "1e3"])
def test_days_in_other_digits_are_refused(client: httpx.Client, days: str) -> None:
    refused(client.get("/api/trend/daily", params={"days": days}, headers=ADMIN), "days")


@pytest.mark.parametrize("amount", ["¹²", "٣", "--5", 1.5])
def test_quota_amounts_in_other_digits_are_refused(client: httpx.Client, tenant_key: str,
                                                   amount: object) -> None:
    answer = client.post("/api/quotas/grants", headers=ADMIN, json={
        "tenant": "acme", "type": "text_token", "amount": amount})
    refused(answer, "amount")


def test_the_cli_refuses_a_quota_amount_in_other_digits(run_cli: Cli) -> None:
    assert run_cli("tenants", "create", "acme").exit_code == 0
    result = run_cli("quota", "grant", "--tenant", "acme", "--type", "text_token",
                     "--amount", "²")
    assert result.exit_code == 2, result.output
    assert "amount" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("body", [b"x\ry\rz", b'"' + b"a" * 200_000 + b'"\r\n'])
def test_a_bill_file_that_is_not_csv_is_refused(client: httpx.Client, body: bytes) -> None:
    answer = client.post("/api/provider-bills", content=body, headers={
        **ADMIN, "content-type": "text/csv"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "file"


def test_metadata_nested_too_deep_refuses_its_event_only(client: httpx.Client,
                                                         tenant_key: str) -> None:
    answer = client.post("/v1/usage", headers=bearer(tenant_key), json={"events": [
        event("deep", metadata=nested(300)), event("fine", metadata=nested(5))]})
    assert answer.status_code == 200, answer.text
    deep, fine = answer.json()["results"]
    assert deep["field"] == "metadata" and "nested" in deep["error"], deep
    assert "error" not in fine and fine["status"] == "priced", fine


def cny_rate(client: httpx.Client) -> None:
    """USD budgets cover CNY-priced models of the catalog too: they need a rate."""
    fx = client.post("/api/fx", headers=ADMIN, json={"base": "CNY", "quote": "USD",
                                                     "rate": "0.14"})
    assert fx.status_code == 201, fx.text


def test_event_times_out_of_range_are_refused_under_a_budget(client: httpx.Client,
                                                             tenant_key: str) -> None:
    cny_rate(client)
    budget = client.post("/api/budgets", headers=ADMIN, json={"tenant": "acme", "amount": "100",
                                                               "period": "month"})
    assert budget.status_code == 201, budget.text
    now = datetime.now(UTC)
    out_of_range = ["9999-12-31T23:00:00Z", "9999-12-31T23:59:59-01:00",
                    (now + timedelta(days=3)).isoformat(), "1969-12-31T23:59:59Z",
                    "0001-01-01T00:00:00+01:00"]
    answer = client.post("/v1/usage", headers=bearer(tenant_key), json={"events": [
        event(f"e{i}", timestamp=stamp) for i, stamp in enumerate(out_of_range)]})
    assert answer.status_code == 400, answer.text
    for result in answer.json()["results"]:
        assert result["field"] == "timestamp" and "range" in result["error"], result
    # A time a little ahead (clocks drift) is fine, and counts against the budget.
    soon = (now + timedelta(hours=1)).isoformat()
    answer = client.post("/v1/usage", headers=bearer(tenant_key), json={"events": [
        event("soon", timestamp=soon)]})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("name", "value"), [("end", "0001-01-01T00:00:00Z"),
                                             ("start", "9999-12-31T23:59:59Z")])
def test_report_ranges_at_the_ends_of_time_are_refused(client: httpx.Client, name: str,
                                                       value: str) -> None:
    shanghai = client.post("/api/tenants", headers=ADMIN, json={
        "name": "cn", "currency": "CNY", "timezone": "Asia/Shanghai"})
    assert shanghai.status_code == 201, shanghai.text
    answer = client.get("/api/stats", params={"tenant": "cn", name: value}, headers=ADMIN)
    refused(answer, name)


@pytest.mark.parametrize(("fields", "field"), [
    ({"amount": 10.5}, "amount"),
    ({"amount": 1e2}, "amount"),
    ({"amount": "10", "thresholds": [0.5, 1]}, "thresholds"),
])
def test_budget_money_as_a_json_float_is_refused(client: httpx.Client, tenant_key: str,
                                                 fields: dict[str, Any], field: str) -> None:
    answer = client.post("/api/budgets", headers=ADMIN, json={"tenant": "acme", **fields})
    error = refused(answer, field)
    assert "string" in error["message"]


def test_budget_amounts_as_strings_and_integers_still_work(client: httpx.Client,
                                                           tenant_key: str) -> None:
    cny_rate(client)
    for amount, thresholds in (("10.5", ["0.5", "1"]), (10, None)):
        answer = client.post("/api/budgets", headers=ADMIN, json={
            "tenant": "acme", "amount": amount, "mode": "alert", "period": "day",
            **({"thresholds": thresholds} if thresholds else {})})
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("field", ["key", "tenant", "user", "provider", "model"])
def test_an_empty_budget_scope_is_refused_not_widened(client: httpx.Client, tenant_key: str,
                                                      field: str) -> None:
    answer = client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", field: "", "amount": "1", "mode": "block"})
    refused(answer, field)
    assert client.get("/api/budgets", headers=ADMIN).json()["budgets"] == []


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/quotas/grants", {"tenant": "acme", "user": "", "type": "image", "amount": 1}, "user"),
    ("/api/quotas/grants", {"tenant": "", "type": "image", "amount": 1}, "tenant"),
    ("/api/keys", {"tenant": ""}, "tenant"),
    ("/api/keys", {"tenant": "acme", "user": ""}, "user"),
    ("/api/keys", {"tenant": "acme", "models": [""]}, "models"),
    ("/api/tenants", {"name": ""}, "name"),
    ("/api/plans", {"id": "", "allowances": {"image": 1}}, "id"),
])
def test_empty_names_are_refused(client: httpx.Client, tenant_key: str, path: str,
                                 body: dict[str, Any], field: str) -> None:
    refused(client.post(path, headers=ADMIN, json=body), field)
