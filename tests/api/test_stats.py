"""GET /api/summary, /api/stats and /api/trend/daily over HTTP, on SQLite and PostgreSQL.

Usage goes in the way clients send it (POST /v1/usage with a tenant key); every total must equal
the sum of the ledger's charge lines exactly (SPEC §7.1).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from meterline.config import Config
from meterline.domain.money import convert_at
from meterline.store.engine import make_engine
from meterline.store.rollup_writes import SUM_CONTEXT
from meterline.store.schema import charge_lines, usage_records
from meterline.store.types import money_sum

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN
D = Decimal
NOW = datetime.now(UTC)
TODAY = NOW.date()


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def error_field(answer: httpx.Response, status: int) -> str | None:
    assert answer.status_code == status, answer.text
    field: str | None = answer.json()["error"].get("field")
    return field


def add_price(client: httpx.Client, model: str, currency: str = "USD") -> None:
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": model, "unit": "1", "currency": currency, "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}), 201)


def tenant_with_key(client: httpx.Client, name: str, currency: str = "USD",
                    timezone: str = "UTC") -> dict[str, str]:
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": name, "currency": currency,
                                                        "timezone": timezone}), 201)
    key = ok(client.post("/api/keys", json={"tenant": name}, headers=ADMIN), 201)["key"]
    return {"Authorization": f"Bearer {key}"}


def event(event_id: str, days_ago: int = 0, **fields: Any) -> dict[str, Any]:
    at = datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), UTC)
    base: dict[str, Any] = {"id": event_id, "timestamp": (at + timedelta(hours=12)).isoformat(),
                            "model": "test/m1",
                            "usage": {"input_tokens": 1000, "output_tokens": 500}}
    return base | fields


def ingest(client: httpx.Client, headers: dict[str, str], *events: dict[str, Any]) -> None:
    results = ok(client.post("/v1/usage", json={"events": list(events)}, headers=headers))
    assert all("error" not in r for r in results["results"]), results


def ledger_lines(config: Config, tenant: str | None = None, since: date | None = None,
                 currency: str = "USD") -> Decimal:
    """The sum of the ledger's charge lines (of records priced in ``currency``)."""
    engine = make_engine(config.database_url)
    try:
        c = usage_records.c
        query = select(money_sum(charge_lines.c.amount)).join(
            usage_records, c.request_id == charge_lines.c.request_id).where(
            c.currency == currency)
        if tenant is not None:
            query = query.where(c.tenant_id == tenant)
        if since is not None:
            query = query.where(c.occurred_at >= datetime.combine(since, datetime.min.time(),
                                                                  UTC))
        with engine.connect() as conn:
            return conn.execute(query).scalar_one() or D(0)
    finally:
        engine.dispose()


@pytest.fixture
def acme(client: httpx.Client) -> dict[str, str]:
    """Tenant acme (USD, UTC) with usage: today, 3 and 40 days ago, a duplicate, an error."""
    add_price(client, "test/m1")
    add_price(client, "test/m2")
    headers = tenant_with_key(client, "acme")
    ingest(client, headers,
           event("a", user="alice", tags=["chat", "beta"], metadata={"purpose": "support"}),
           event("b", user="bob", model="test/m2", usage={"input_tokens": 7, "output_tokens": 3}),
           event("c", 3, user="alice", status="error", tags=["chat"]),
           event("d", 40, usage={"input_tokens": 123456789}))
    ingest(client, headers, event("a", user="mallory"))  # a duplicate: charged once
    return headers


def test_summary_of_a_tenant_equals_its_charge_lines(client: httpx.Client, config: Config,
                                                     acme: dict[str, str]) -> None:
    found = ok(client.get("/api/summary", params={"tenant": "acme"}, headers=ADMIN))
    assert set(found) >= {"currency", "total", "month", "today", "calls", "success_rate"}
    assert found["currency"] == "USD" and found["calls"] == 4
    assert D(found["total"]) == ledger_lines(config, "acme")
    assert D(found["today"]) == ledger_lines(config, "acme", TODAY)
    assert D(found["month"]) == ledger_lines(config, "acme", TODAY.replace(day=1))
    assert found["success_rate"] == 0.75
    assert found["unconverted"] == [] and found["unpriced_calls"] == 0
    assert isinstance(found["total"], str)


@pytest.mark.parametrize("group_by", ["provider", "model", "user", "key", "meter", "status",
                                      "tag", "purpose", "day"])
def test_stats_groups_add_up_to_the_total(client: httpx.Client, config: Config,
                                          acme: dict[str, str], group_by: str) -> None:
    start = (TODAY - timedelta(days=10)).isoformat()
    found = ok(client.get("/api/stats", params={"tenant": "acme", "start": start,
                                                "group_by": group_by}, headers=ADMIN))
    assert found["currency"] == "USD" and found["calls"] == 3
    total = D(found["total_cost"])
    assert total == ledger_lines(config, "acme", TODAY - timedelta(days=10))
    costs = [D(g["cost"]) for g in found["groups"]]
    if group_by == "tag":  # a record counts under each of its tags
        assert {g["key"]: g["calls"] for g in found["groups"]} == {"chat": 2, "beta": 1,
                                                                  None: 1}
    else:
        exact = D(0)
        for cost in costs:
            exact = SUM_CONTEXT.add(exact, cost)
        assert exact == total
    for group in found["groups"]:
        assert {"key", "cost", "calls", "input_tokens", "output_tokens"} <= set(group)


def test_stats_breakdowns(client: httpx.Client, acme: dict[str, str]) -> None:
    def groups(group_by: str, **params: str) -> dict[Any, dict[str, Any]]:
        found = ok(client.get("/api/stats", params={"tenant": "acme", "group_by": group_by,
                                                    "start": "2020-01-01", **params},
                              headers=ADMIN))
        return {g["key"]: g for g in found["groups"]}

    by_user = groups("user")
    assert {k: v["calls"] for k, v in by_user.items()} == {"alice": 2, "bob": 1, None: 1}
    assert by_user["bob"]["cost"] == "0.000008"  # 7 × 0.0000005 + 3 × 0.0000015
    assert by_user[None]["input_tokens"] == 123456789
    assert {k: v["calls"] for k, v in groups("status").items()} == {"success": 3, "error": 1}
    meters = groups("meter")
    assert meters["input_tokens"]["quantity"] == str(1000 + 7 + 1000 + 123456789)
    assert meters["input_tokens"]["input_tokens"] is None
    assert {k: v["calls"] for k, v in groups("purpose").items()} == {"support": 1, None: 3}
    today = groups("model", start=TODAY.isoformat(), end=TODAY.isoformat())
    assert {k: v["calls"] for k, v in today.items()} == {"test/m1": 1, "test/m2": 1}
    # ISO times are taken as their day in the tenant's timezone
    same = groups("model", start=f"{TODAY.isoformat()}T23:00:00Z", end=TODAY.isoformat())
    assert same == today
    # ... and a time that ends the range is exclusive
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    assert groups("model", start=TODAY.isoformat(), end=f"{tomorrow}T00:00:00Z") == today


def test_trend_fills_empty_days(client: httpx.Client, config: Config,
                                acme: dict[str, str]) -> None:
    found = ok(client.get("/api/trend/daily", params={"tenant": "acme", "days": "5"},
                          headers=ADMIN))
    assert [d["date"] for d in found["days"]] == [
        (TODAY - timedelta(days=n)).isoformat() for n in range(4, -1, -1)]
    by_date = {d["date"]: d for d in found["days"]}
    assert by_date[TODAY.isoformat()]["calls"] == 2
    assert by_date[(TODAY - timedelta(days=3)).isoformat()]["calls"] == 1
    assert by_date[(TODAY - timedelta(days=1)).isoformat()] == {
        "date": (TODAY - timedelta(days=1)).isoformat(), "cost": "0", "calls": 0}
    total = D(found["total"])
    assert total == ledger_lines(config, "acme", TODAY - timedelta(days=4))
    assert D(found["average"]) == (total / 5).quantize(D("1E-12"))
    assert (found["max"], found["min"]) == (by_date[TODAY.isoformat()]["cost"], "0")
    assert found["currency"] == "USD"


def test_days_are_the_tenants_days(client: httpx.Client) -> None:
    add_price(client, "test/m1")
    headers = tenant_with_key(client, "tokyo", timezone="Asia/Tokyo")
    # 20:00 UTC three days ago is 05:00 in Tokyo two days ago.
    at = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), UTC) + \
        timedelta(hours=20)
    ingest(client, headers, event("late", timestamp=at.isoformat()))
    found = ok(client.get("/api/trend/daily", params={"tenant": "tokyo", "days": "7"},
                          headers=ADMIN))
    tokyo_day = at.astimezone(ZoneInfo("Asia/Tokyo")).date().isoformat()
    assert [d["date"] for d in found["days"] if d["calls"]] == [tokyo_day]
    assert found["days"][-1]["date"] == NOW.astimezone(ZoneInfo("Asia/Tokyo")).date().isoformat()


def test_all_tenants_in_the_reporting_currency(client: httpx.Client, config: Config,
                                               acme: dict[str, str]) -> None:
    add_price(client, "test/cny", "CNY")
    add_price(client, "test/eur", "EUR")
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.2", "effective_from": "2020-01-01T00:00:00Z"}),
        201)
    shop = tenant_with_key(client, "shop", "CNY", "Asia/Shanghai")
    ingest(client, shop, event("u"),  # priced in USD, billed in CNY
           event("c", model="test/cny"),  # priced and billed in CNY
           event("e", model="test/eur"))  # EUR: no rate to CNY or USD
    everything = ok(client.get("/api/summary", headers=ADMIN))
    assert everything["currency"] == "USD" and everything["calls"] == 7
    cny = ledger_lines(config, "shop", currency="CNY")
    # USD records count as they are; CNY at the stored rate (its reciprocal, to 28 digits),
    # the day's sum converted once and rounded to 10 places (money.convert_at).
    in_usd = convert_at(cny, Context(prec=28).divide(D(1), D("7.2")))
    assert D(everything["total"]) == SUM_CONTEXT.add(ledger_lines(config), in_usd)
    [eur] = everything["unconverted"]
    assert (eur["currency"], D(eur["amount"]), eur["calls"]) == (
        "EUR", ledger_lines(config, "shop", currency="EUR"), 1)
    # the tenant's own view: its billed amounts, in CNY; EUR was never converted
    own = ok(client.get("/api/summary", params={"tenant": "shop"}, headers=ADMIN))
    assert own["currency"] == "CNY"
    assert D(own["total"]) == SUM_CONTEXT.add(
        SUM_CONTEXT.multiply(ledger_lines(config, "shop"), D("7.2")), cny)
    assert [u["currency"] for u in own["unconverted"]] == ["EUR"]
    stats = ok(client.get("/api/stats", params={"group_by": "tenant", "start": "2020-01-01"},
                          headers=ADMIN))
    assert {g["key"] for g in stats["groups"]} == {"acme", "shop"}
    assert D(stats["total_cost"]) == D(everything["total"])


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/stats", {"start": "2026-02-01", "end": "2026-01-31"}, "end"),
    ("/api/stats", {"group_by": "colour"}, "group_by"),
    ("/api/stats", {"start": "yesterday"}, "start"),
    ("/api/stats", {"end": "2026-13-01"}, "end"),
    ("/api/stats", {"start": "0001-01-01"}, "start"),
    ("/api/trend/daily", {"days": "0"}, "days"),
    ("/api/trend/daily", {"days": "3661"}, "days"),
    ("/api/trend/daily", {"days": "ten"}, "days"),
    ("/api/trend/daily", {"days": "-1"}, "days"),
])
def test_bad_input_is_a_400_naming_the_field(client: httpx.Client, path: str,
                                             params: dict[str, str], field: str) -> None:
    assert error_field(client.get(path, params=params, headers=ADMIN), 400) == field


def test_unknown_tenant_is_a_404_and_admin_only(client: httpx.Client,
                                                tenant_key: str) -> None:
    for path in ("/api/summary", "/api/stats", "/api/trend/daily"):
        answer = client.get(path, params={"tenant": "nobody"}, headers=ADMIN)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "tenant_not_found"
        tenant = {"Authorization": f"Bearer {tenant_key}"}
        assert client.get(path, params={"tenant": "acme"}, headers=tenant).status_code == 401
        assert client.get(path).status_code == 401


def test_no_usage_yet(client: httpx.Client, tenant_key: str) -> None:
    found = ok(client.get("/api/summary", params={"tenant": "acme"}, headers=ADMIN))
    assert (found["total"], found["calls"], found["success_rate"]) == ("0", 0, None)
    trend = ok(client.get("/api/trend/daily", params={"days": "1"}, headers=ADMIN))
    assert [d["calls"] for d in trend["days"]] == [0]
    assert (trend["total"], trend["average"], trend["max"], trend["min"]) == ("0", "0", "0",
                                                                              "0")
    assert ok(client.get("/api/stats", headers=ADMIN))["groups"] == []
