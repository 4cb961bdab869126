"""Budgets and their alerts over HTTP, on SQLite and PostgreSQL (issue 13.9): a budget set
below what was already spent alerts at once; small amounts read as themselves in alert texts;
a deleted budget's alerts are resolved; the budget list and the forecast project a budget the
same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from tests.conftest import ADMIN

D = Decimal


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def acme(client: httpx.Client) -> dict[str, str]:
    """Tenant acme (USD, UTC) and ``test/m1`` at 0.0000005 USD per input token."""
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}), 201)
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": "acme"}), 201)
    key = ok(client.post("/api/keys", json={"tenant": "acme"}, headers=ADMIN), 201)["key"]
    return {"Authorization": f"Bearer {key}"}


def spend(client: httpx.Client, key: dict[str, str], event_id: str, input_tokens: int,
          at: datetime | None = None) -> None:
    event: dict[str, Any] = {"id": event_id, "model": "test/m1",
                             "usage": {"input_tokens": input_tokens}}
    if at is not None:
        event["timestamp"] = at.isoformat()
    results = ok(client.post("/v1/usage", json={"events": [event]}, headers=key))
    assert all("error" not in r for r in results["results"]), results


def alerts(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(client.get("/api/alerts", headers=ADMIN,
                                                params={"tenant": "acme", **params}))["alerts"]
    return sorted(found, key=lambda a: D(a["threshold"]))


def test_a_budget_set_below_what_was_spent_alerts_at_once(client: httpx.Client) -> None:
    key = acme(client)
    spend(client, key, "a", 7000)  # 0.0035 USD this month
    budget = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.004", "mode": "alert"}), 201)
    assert budget["spent"] == "0.0035"
    # 87.5 % of the limit: the 50 % and 80 % thresholds stand crossed, not yet 100 %
    found = alerts(client)
    assert [(a["threshold"], a["level"], a["budget_id"]) for a in found] == [
        ("0.5", "info", budget["id"]), ("0.8", "warning", budget["id"])]
    # a small budget reads as itself, not "0.00 of 0.00 USD"
    assert all("reached 87.5% (0.0035 of 0.004 USD)" in a["message"] for a in found), found
    # setting it again raises nothing new; a call that crosses 100 % still does
    ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.004", "mode": "alert"}), 201)
    assert len(alerts(client)) == 2
    spend(client, key, "b", 2000)
    crossed = alerts(client)
    assert [a["threshold"] for a in crossed] == ["0.5", "0.8", "1"]
    assert "reached 112.5% (0.0045 of 0.004 USD)" in crossed[-1]["message"]


def test_a_small_budget_reads_as_itself_in_alert_texts(client: httpx.Client) -> None:
    key = acme(client)
    ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.004", "mode": "alert"}), 201)
    spend(client, key, "a", 7000)  # crosses 50 and 80 % at once
    found = alerts(client)
    assert [a["threshold"] for a in found] == ["0.5", "0.8"]
    # two significant digits below a cent, not "0.00 of 0.00 USD"
    assert all("reached 87.5% (0.0035 of 0.004 USD)" in a["message"] for a in found), found
    assert (found[0]["amount"], found[0]["limit"]) == ("0.0035", "0.004")  # exact in JSON


def test_deleting_a_budget_resolves_its_open_alerts(client: httpx.Client) -> None:
    key = acme(client)
    budget = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.006", "mode": "alert"}), 201)
    other = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.006", "period": "day",
        "mode": "alert"}), 201)
    spend(client, key, "a", 10_000)  # 0.005: past 50 and 80 % of both
    assert len(alerts(client, resolved="false")) == 4
    assert ok(client.delete(f"/api/budgets/{budget['id']}", headers=ADMIN)) == {
        "deleted": budget["id"]}
    still_open = alerts(client, resolved="false")
    assert {a["budget_id"] for a in still_open} == {other["id"]}
    resolved = alerts(client, resolved="true")
    assert [(a["budget_id"], a["resolved"]) for a in resolved] == [(budget["id"], True)] * 2
    assert all(a["resolved_at"] for a in resolved)


def test_the_budget_list_and_the_forecast_project_a_budget_alike(client: httpx.Client) -> None:
    key = acme(client)
    now = datetime.now(UTC)
    # Ten complete days of history and a call today: a recent pace to project from.
    for days in range(1, 11):
        spend(client, key, f"d{days}", 40_000 * days, now - timedelta(days=days))
    spend(client, key, "today", 1000, now - timedelta(seconds=5))
    month = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "5", "mode": "alert"}), 201)
    day = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "5", "period": "day",
        "mode": "alert"}), 201)
    listed = {b["id"]: b for b in ok(client.get("/api/budgets", headers=ADMIN,
                                                params={"tenant": "acme"}))["budgets"]}
    forecast = {b["id"]: b for b in ok(client.get("/api/forecast", headers=ADMIN,
                                                  params={"tenant": "acme"}))["budgets"]}
    for made in (month, day):
        mine, theirs = listed[made["id"]], forecast[made["id"]]
        assert mine["method"] == theirs["method"]
        assert mine["spent"] == theirs["spent"]
        # The same method on the same ledger; only the moment differs (the two requests are
        # a few milliseconds apart, and the rest of today counts by the clock).
        assert abs(D(mine["projected"]) - D(theirs["projected"])) <= \
            D(theirs["projected"]) * D("0.001"), (mine, theirs)
    assert listed[month["id"]]["method"] in ("recent-pace", "recent-pace+weekday")
    assert listed[day["id"]]["method"] == "linear"
