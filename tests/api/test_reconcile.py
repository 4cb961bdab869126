"""Provider bills and reconciliation over HTTP, on SQLite and PostgreSQL: usage goes in as
clients report it, the tenant's bill comes out as FOCUS (meterline's own export), goes back in
as a provider bill and reconciles exactly; a provider's own bill, billing more, less, or what
was never metered, shows as such."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.conftest import ADMIN

D = Decimal


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, field: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    message: str = error["message"]
    return message


def metered_october(client: httpx.Client) -> dict[str, str]:
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": "shop"}), 201)
    key = {"Authorization": "Bearer " + ok(client.post(
        "/api/keys", json={"tenant": "shop"}, headers=ADMIN), 201)["key"]}
    for model in ("test/chat", "test/mini"):
        ok(client.post("/api/prices", headers=ADMIN, json={
            "model": model, "unit": "1M", "currency": "USD", "effective_from": "2020-01-01",
            "prices": {"input_tokens": "0.15", "output_tokens": "0.6"}}), 201)
    events = [{"id": f"e{day}-{model}", "timestamp": f"2026-10-{day:02d}T10:00:00Z",
               "model": model, "usage": {"input_tokens": 1000 * day, "output_tokens": 7}}
              for day in (1, 2, 31) for model in ("test/chat", "test/mini")]
    ok(client.post("/v1/usage", json={"events": events}, headers=key))
    return key


def test_meterlines_own_focus_export_reconciles_exactly(client: httpx.Client) -> None:
    metered_october(client)
    export = client.get("/api/bills/shop/2026-10/export", params={"format": "focus"},
                        headers=ADMIN)
    assert export.status_code == 200, export.text
    imported = ok(client.post("/api/provider-bills", params={"format": "focus"},
                              content=export.content, headers=ADMIN), 201)
    assert imported["providers"] == ["test"] and imported["lines"] == 2
    assert (imported["from"], imported["until"]) == ("2026-10-01", "2026-11-01")
    report = ok(client.get("/api/reconcile", params={"cycle": "2026-10"}, headers=ADMIN))
    assert report["currency"] == "USD" and report["unconverted"] == []
    rows = report["rows"]
    assert [(r["model"], r["date"], r["until"], r["status"], r["difference"]) for r in rows] == [
        ("test/chat", "2026-10-01", "2026-11-01", "match", "0"),
        ("test/mini", "2026-10-01", "2026-11-01", "match", "0")]
    # 34,000 input tokens at 0.15 and 21 output tokens at 0.6 per million, per model
    assert {r["metered"] for r in rows} == {r["billed"] for r in rows} == {"0.0051126"}
    # the same file again replaces, never adds
    ok(client.post("/api/provider-bills", content=export.content, headers=ADMIN), 201)
    assert ok(client.get("/api/reconcile", params={"cycle": "2026-10"},
                         headers=ADMIN))["rows"] == rows


BILL = """ServiceProviderName,x_Model,BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd
test,chat,0.001,USD,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z
test,chat,0.0022,USD,2026-10-02T00:00:00Z,2026-10-03T00:00:00Z
test,mini,0.0013,USD,2026-10-31T00:00:00Z,2026-11-01T00:00:00Z
test,big,5,USD,2026-10-02T00:00:00Z,2026-10-03T00:00:00Z
test,chat,0.01,USD,2026-10-31T00:00:00Z,2026-11-02T00:00:00Z
"""


def test_a_providers_daily_bill_against_the_metered_days(client: httpx.Client) -> None:
    key = metered_october(client)
    # calls of the next month: the chat one falls in a billed period that starts in October,
    # the mini one in none, so it waits for November's reconciliation
    ok(client.post("/v1/usage", headers=key, json={"events": [
        {"id": f"nov-{model}", "timestamp": "2026-11-01T10:00:00Z", "model": model,
         "usage": {"input_tokens": 361, "output_tokens": 0}}
        for model in ("test/chat", "test/mini")]}))
    ok(client.post("/api/provider-bills", content=BILL.encode(), headers=ADMIN), 201)
    report = ok(client.get("/api/reconcile", params={"cycle": "2026-10", "tolerance": "0.05"},
                           headers=ADMIN))
    assert report["tolerance"] == "0.05"
    found = {(r["model"], r["date"]): (r["status"], r["metered"], r["billed"])
             for r in report["rows"]}
    assert found == {
        # day 1: 1000 × 0.15 + 7 × 0.6 per 1M = 0.0001542; billed far more
        ("test/chat", "2026-10-01"): ("over", "0.0001542", "0.001"),
        ("test/chat", "2026-10-02"): ("over", "0.0003042", "0.0022"),
        # a period from the cycle's last day into the next takes in the next day's calls
        ("test/chat", "2026-10-31"): ("over", "0.00470835", "0.01"),
        ("test/mini", "2026-10-01"): ("only_metered", "0.0001542", None),
        ("test/mini", "2026-10-02"): ("only_metered", "0.0003042", None),
        ("test/mini", "2026-10-31"): ("under", "0.0046542", "0.0013"),
        ("test/big", "2026-10-02"): ("only_billed", None, "5"),
    }
    one = ok(client.get("/api/reconcile", params={"cycle": "2026-10", "provider": "nobody"},
                        headers=ADMIN))
    assert one["rows"] == []


def test_bad_bills_and_parameters_are_refused_naming_the_field(client: httpx.Client) -> None:
    bad = BILL.replace("0.0022", "lots")
    assert "line 3" in refused(client.post("/api/provider-bills", content=bad.encode(),
                                           headers=ADMIN), 400, "BilledCost")
    assert "one of focus, aliyun" in refused(client.post(
        "/api/provider-bills", params={"format": "azure"}, content=b"x", headers=ADMIN),
        400, "format")
    refused(client.post("/api/provider-bills", content=b"\xff\xfe", headers=ADMIN), 400, "body")
    refused(client.get("/api/reconcile", params={"cycle": "2026-13"}, headers=ADMIN), 400,
            "cycle")
    refused(client.get("/api/reconcile", params={"cycle": "2026-10", "tolerance": "2"},
                       headers=ADMIN), 400, "tolerance")
    assert client.get("/api/reconcile", params={"cycle": "2026-10"}).status_code == 401
    # nothing of the bad file was stored
    assert ok(client.get("/api/reconcile", params={"cycle": "2026-10"},
                         headers=ADMIN))["rows"] == []


def test_each_difference_names_its_likely_cause(client: httpx.Client) -> None:
    key = metered_october(client)
    # test/chat's price changes on 2 October; a model priced only from 20 October was called on
    # the 2nd (unpriced, so it counts 0 in the metered amount).
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": "test/chat", "unit": "1M", "currency": "USD", "effective_from": "2026-10-02",
        "prices": {"input_tokens": "0.2", "output_tokens": "0.8"}}), 201)
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": "test/late", "unit": "1M", "currency": "USD", "effective_from": "2026-10-20",
        "prices": {"input_tokens": "1", "output_tokens": "1"}}), 201)
    ok(client.post("/v1/usage", headers=key, json={"events": [
        {"id": "late-1", "timestamp": "2026-10-02T09:00:00Z", "model": "test/late",
         "usage": {"input_tokens": 10, "output_tokens": 1}}]}))
    bill = BILL + "test,late,0.5,USD,2026-10-02T00:00:00Z,2026-10-03T00:00:00Z\n"
    ok(client.post("/api/provider-bills", content=bill.encode(), headers=ADMIN), 201)
    report = ok(client.get("/api/reconcile", params={"cycle": "2026-10", "tolerance": "0.05"},
                           headers=ADMIN))
    causes = {(r["model"], r["date"]): [c["code"] for c in r["causes"]] for r in report["rows"]}
    assert causes == {
        # every metered call here was reported to /v1/usage, none passed the gateway
        ("test/chat", "2026-10-01"): ["reported", "price_change"],
        ("test/chat", "2026-10-02"): ["reported", "price_change"],
        ("test/chat", "2026-10-31"): ["reported"],
        ("test/mini", "2026-10-01"): ["reported"],
        ("test/mini", "2026-10-02"): ["reported"],
        ("test/mini", "2026-10-31"): ["reported"],
        ("test/big", "2026-10-02"): ["not_metered"],
        ("test/late", "2026-10-02"): ["unpriced", "reported"],
    }
    late = next(r for r in report["rows"] if r["model"] == "test/late")
    assert late["status"] == "only_billed"
    assert late["causes"][0]["message"].startswith("1 call of these days had no price")
    # the CLI's words are the same (tests/cli/test_reconcile.py runs the command itself)
