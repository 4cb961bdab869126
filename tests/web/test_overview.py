"""The dashboard's overview (meterline/web/overview.py) over real HTTP, on SQLite and
PostgreSQL: its figures are the admin API's (/api/summary, /api/trend/daily, /api/stats) for the
same data, rounded for reading with the exact value in the tooltip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from markupsafe import escape

from meterline.domain.money import readable
from tests.conftest import ADMIN
from tests.web.conftest import data_block, price_m1, report, sign_in, tooltip_of

SCRIPT_USER = "<script>alert(1)</script>"


def _usage(client: httpx.Client, key: str) -> datetime:
    """Calls today, 3 days ago and 40 days ago; returns the time of today's."""
    price_m1(client)
    now = datetime.now(UTC)
    events = [
        {"id": "today-1", "timestamp": now.isoformat(), "model": "test/m1", "user": "alice",
         "usage": {"input_tokens": 1000, "output_tokens": 500}},
        {"id": "today-2", "timestamp": now.isoformat(), "model": "test/m1",
         "user": SCRIPT_USER, "status": "error", "usage": {"input_tokens": 10}},
        {"id": "recent", "timestamp": (now - timedelta(days=3)).isoformat(),
         "model": "test/m1", "user": "bob", "usage": {"input_tokens": 7000,
                                                      "output_tokens": 3333}},
        {"id": "old", "timestamp": (now - timedelta(days=40)).isoformat(), "model": "test/m1",
         "user": "bob", "usage": {"input_tokens": 90000}},
    ]
    report(client, key, events)
    return now


def _api(client: httpx.Client, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_cards_are_the_api_summary_rounded_with_the_exact_value_in_the_tooltip(
        client: httpx.Client, tenant_key: str) -> None:
    _usage(client, tenant_key)
    sign_in(client)
    for tenant in ("acme", None):
        params = {"tenant": tenant} if tenant else {}
        page = client.get("/", params=params)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        summary = _api(client, "/api/summary", **params)
        currency = summary["currency"]
        for label, field in (("Total", "total"), ("This month", "month"), ("Today", "today")):
            exact = summary[field]
            assert tooltip_of(page.text, label) == f"{exact} {currency}", label
            assert f">{readable(Decimal(exact), currency)} {currency}</span>" in page.text
        assert f"<span>Calls</span><b>{summary['calls']}</b>" in page.text
        rate = Decimal(str(summary["success_rate"])) * 100
        assert f"<span>Success rate</span><b>{rate:.1f}%</b>" in page.text
    # today's spend, 0.00125 + 0.000005, is shown as 0.0013 with 0.001255 in the tooltip
    acme = client.get("/", params={"tenant": "acme"}).text
    assert tooltip_of(acme, "Today") == "0.001255 USD"
    assert '<span class="money" title="0.001255 USD">0.0013 USD</span>' in acme


def test_the_chart_data_is_the_api_trend_and_breakdowns(
        client: httpx.Client, tenant_key: str) -> None:
    _usage(client, tenant_key)
    sign_in(client)
    for days in (7, 30, 90):
        page = client.get("/", params={"tenant": "acme", "days": days}).text
        chart: Any = data_block(page, "chart-data")
        trend = _api(client, "/api/trend/daily", tenant="acme", days=days)
        assert chart["currency"] == "USD" == trend["currency"]
        assert chart["trend"]["days"] == [d["date"] for d in trend["days"]]
        assert chart["trend"]["costs"] == [d["cost"] for d in trend["days"]]
        assert chart["trend"]["calls"] == [d["calls"] for d in trend["days"]]
        assert chart["trend"]["average"] == trend["average"]
        for group, key in (("provider", "providers"), ("model", "models")):
            stats = _api(client, "/api/stats", tenant="acme", group_by=group,
                         start=trend["days"][0]["date"], end=trend["days"][-1]["date"])
            assert chart[key] == [{"name": g["key"], "cost": g["cost"]}
                                  for g in stats["groups"]]
        for label, field in (("Highest", "max"), ("Lowest", "min"), ("Average a day", "average")):
            figure = page.index(label)
            assert f'title="{trend[field]} USD"' in page[figure:figure + 200], label
    # 40 days ago counts in 90 days, not in 30
    ninety: Any = data_block(client.get("/", params={"tenant": "acme", "days": 90}).text,
                             "chart-data")
    thirty: Any = data_block(client.get("/", params={"tenant": "acme"}).text, "chart-data")
    assert len(thirty["trend"]["days"]) == 30 and len(ninety["trend"]["days"]) == 90
    assert sum(map(Decimal, ninety["trend"]["costs"])) - sum(
        map(Decimal, thirty["trend"]["costs"])) == Decimal("0.045")


def test_a_chosen_range(client: httpx.Client, tenant_key: str) -> None:
    now = _usage(client, tenant_key)
    sign_in(client)
    start, end = (now - timedelta(days=45)).date(), (now - timedelta(days=2)).date()
    page = client.get("/", params={"tenant": "acme", "start": start.isoformat(),
                                   "end": end.isoformat()})
    assert page.status_code == 200
    chart: Any = data_block(page.text, "chart-data")
    days = chart["trend"]["days"]
    assert days[0] == start.isoformat() and days[-1] == end.isoformat() and len(days) == 44
    # the old call and the one of 3 days ago; today's are outside
    assert sum(map(Decimal, chart["trend"]["costs"])) == Decimal("0.045") + Decimal(
        "0.0084995")
    assert f'value="{start.isoformat()}"' in page.text
    backwards = client.get("/", params={"start": end.isoformat(), "end": start.isoformat()})
    assert backwards.status_code == 400 and "before start" in backwards.text
    assert client.get("/", params={"days": "0"}).status_code == 400
    assert client.get("/", params={"start": "soon"}).status_code == 400


def test_top_users_and_keys_and_budget_use(client: httpx.Client, tenant_key: str) -> None:
    _usage(client, tenant_key)
    made = client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.004", "currency": "USD",
        "period": "month",
        "mode": "alert"})
    assert made.status_code == 201, made.text
    sign_in(client)
    page = client.get("/", params={"tenant": "acme"}).text
    users = _api(client, "/api/stats", tenant="acme", group_by="user",
                 start=data_block(page, "chart-data")["trend"]["days"][0])  # type: ignore[index]
    shown = page[page.index("Top users"):page.index("Top keys")]
    order = [shown.index(f"<td>{escape(g['key'])}</td>") for g in users["groups"]]
    assert order == sorted(order) and len(order) == 3  # biggest cost first
    assert SCRIPT_USER not in page and escape(SCRIPT_USER) in shown
    keys = page[page.index("Top keys"):]
    key_id = client.get("/api/keys", params={"tenant": "acme"}, headers=ADMIN).json()
    assert any(f"<td>{k['id']}</td>" in keys for k in key_id["keys"])
    month = Decimal(_api(client, "/api/summary", tenant="acme")["month"])
    use = month / Decimal("0.004") * 100
    assert f"<span>Budget use</span><b>{use:,.1f}%</b>" in page
    assert "fullest of 1 budget: tenant acme · model test/m1 · month" in page


def test_an_unknown_tenant_is_the_api_answer_escaped(client: httpx.Client) -> None:
    sign_in(client)
    for tenant in ("nobody", SCRIPT_USER):
        page = client.get("/", params={"tenant": tenant})
        api = client.get("/api/summary", params={"tenant": tenant}, headers=ADMIN)
        assert page.status_code == api.status_code == 404
        assert escape(api.json()["error"]["message"]) in page.text
    assert SCRIPT_USER not in page.text


def test_nothing_yet(client: httpx.Client) -> None:
    sign_in(client)
    page = client.get("/").text
    assert "Spend: all tenants" in page and "No calls in this range." in page
    assert "<span>Success rate</span><b>-</b>" in page
