"""Money that reads as money (issue 13.7): amounts converted through an FX rate — here through
the reciprocal of the one stored rate, 28 significant digits — carry at most
``CONVERTED_PLACES`` (10) decimal places wherever the API shows them: the ledger's billed cost,
/api/summary, /api/stats, /api/trend/daily and budgets (docs/decisions.md, "Converted amounts").
Before, they carried the thirty-odd places of the exact product.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from meterline.domain.money import CONVERTED_PLACES, decimal_places

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def tenant_with_key(client: httpx.Client, name: str, currency: str,
                    timezone: str = "UTC") -> dict[str, str]:
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": name, "currency": currency,
                                                        "timezone": timezone}), 201)
    key = ok(client.post("/api/keys", json={"tenant": name}, headers=ADMIN), 201)["key"]
    return {"Authorization": f"Bearer {key}"}


def ingest(client: httpx.Client, headers: dict[str, str], *tokens: tuple[int, int]) -> None:
    """Calls of ``test/cny`` (priced in CNY) made now, one per (input, output) tokens."""
    events = [{"id": f"e{n}-{i}-{o}", "model": "test/cny",
               "usage": {"input_tokens": i, "output_tokens": o}}
              for n, (i, o) in enumerate(tokens)]
    results = ok(client.post("/v1/usage", json={"events": events}, headers=headers))
    assert all("error" not in r for r in results["results"]), results


def short(text: str) -> Decimal:
    """A money string from the API with at most CONVERTED_PLACES places, as a Decimal."""
    value = Decimal(text)
    assert decimal_places(value) <= CONVERTED_PLACES, text
    return value


def test_converted_amounts_have_at_most_ten_places(client: httpx.Client) -> None:
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": "test/cny", "unit": "1", "currency": "CNY", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}), 201)
    # Only USD -> CNY is stored: CNY -> USD is its reciprocal, 0.1408450704225352112676056338.
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.1",
        "effective_from": "2020-01-01T00:00:00Z"}), 201)
    acme = tenant_with_key(client, "acme", "USD")
    shop = tenant_with_key(client, "shop", "CNY", "Asia/Shanghai")
    # A budget that counts calls as they are written (converted call by call) ...
    counted = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "shop", "currency": "USD", "amount": "100", "mode": "alert"}), 201)
    ingest(client, acme, (1000, 500), (1234, 567), (7, 3))
    ingest(client, shop, (1000, 500), (1234, 567), (7, 3))
    # ... and budgets that start from what the ledger holds (summed, or converted per call).
    seeded = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "amount": "100", "mode": "alert"}), 201)
    everyone = ok(client.post("/api/budgets", headers=ADMIN, json={
        "amount": "100", "currency": "USD", "mode": "alert"}), 201)

    records = ok(client.get("/api/usage", params={"tenant": "acme"}, headers=ADMIN))["records"]
    assert len(records) == 3
    billed = [short(r["billed_cost"]) for r in records]
    assert all(r["billed_currency"] == "USD" for r in records)

    mine = ok(client.get("/api/summary", params={"tenant": "acme"}, headers=ADMIN))
    assert mine["currency"] == "USD"
    assert short(mine["total"]) == short(mine["today"]) == sum(billed)  # an exact sum
    assert short(mine["month"]) == sum(billed)
    everything = ok(client.get("/api/summary", headers=ADMIN))
    assert everything["currency"] == "USD" and everything["calls"] == 6
    total = short(everything["total"])
    short(everything["today"])
    short(everything["month"])
    stats = ok(client.get("/api/stats", params={"group_by": "tenant", "start": "2020-01-01"},
                          headers=ADMIN))
    assert short(stats["total_cost"]) == total
    assert sum(short(g["cost"]) for g in stats["groups"]) == total
    trend = ok(client.get("/api/trend/daily", params={"days": "3"}, headers=ADMIN))
    assert sum(short(d["cost"]) for d in trend["days"]) == short(trend["total"])

    budgets = {b["id"]: b for b in ok(client.get("/api/budgets", headers=ADMIN))["budgets"]}
    assert short(budgets[seeded["id"]]["spent"]) == sum(billed)
    for made in (counted, seeded, everyone):
        found = budgets[made["id"]]
        assert short(found["spent"]) > 0, found
        assert short(found["remaining"]) == Decimal("100") - short(found["spent"])
    # The budget counting calls as they came and one seeded from the ledger agree exactly.
    again = ok(client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "shop", "currency": "USD", "amount": "100", "period": "day",
        "mode": "alert"}), 201)
    assert short(again["spent"]) == short(budgets[counted["id"]]["spent"])
