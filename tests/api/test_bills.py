"""Bills over HTTP, on SQLite and PostgreSQL: SPEC §5's bill shape, status changes (one and
batches), exports, refunds, and SPEC §7.1 — a bill's total is the ledger's billed cost exactly,
the issued total that rounded once, and every export adds up to it to the cent.

Usage goes in as clients send it (POST /v1/usage with a tenant key): several models and meters,
a CNY-priced model billed in USD through an FX rate, a model rerated after it got a price, a
model priced in a currency without a rate (never guessed), and a refund.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from sqlalchemy import select

from meterline.config import Config
from meterline.domain.money import quantize_minor
from meterline.store.engine import make_engine
from meterline.store.rollup_writes import SUM_CONTEXT
from meterline.store.schema import usage_records
from meterline.store.types import money_sum
from tests.conftest import ADMIN

D = Decimal
OCT_START, OCT_END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
XLSX_NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    if field is not None:
        assert error.get("field") == field, error
    return error


def price(client: httpx.Client, model: str, currency: str, **prices: str) -> None:
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": model, "unit": "1M", "currency": currency, "effective_from": "2020-01-01",
        "prices": prices}), 201)


def usage(client: httpx.Client, key: dict[str, str], *events: dict[str, Any]) -> list[str]:
    results = ok(client.post("/v1/usage", json={"events": list(events)}, headers=key))
    assert all("error" not in r for r in results["results"]), results
    return [r["request_id"] for r in results["results"]]


def event(event_id: str, day: int, user: str, model: str, **quantities: int) -> dict[str, Any]:
    return {"id": event_id, "timestamp": f"2026-10-{day:02d}T{day % 24:02d}:30:00Z",
            "user": user, "model": model, "usage": quantities}


@pytest.fixture
def shop(client: httpx.Client) -> dict[str, Any]:
    """Tenant shop (USD) with October usage of alice and bob in five models."""
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": "shop"}), 201)
    key = {"Authorization": "Bearer " + ok(client.post(
        "/api/keys", json={"tenant": "shop"}, headers=ADMIN), 201)["key"]}
    price(client, "test/chat", "USD", input_tokens="0.15", cached_input_tokens="0.075",
          output_tokens="0.6")
    price(client, "test/qwen", "CNY", input_tokens="2.4", output_tokens="9.6")
    price(client, "test/euro", "EUR", input_tokens="1", output_tokens="1")
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "CNY", "quote": "USD", "rate": "0.1406993", "effective_from":
        "2020-01-01T00:00:00Z"}), 201)
    ids = usage(client, key, *(
        event(f"e{i}", 1 + i % 28, ("alice", "bob")[i % 2],
              ("test/chat", "test/qwen", "test/later")[i % 3],
              input_tokens=1000 * i + 333, output_tokens=77 * i + 1,
              **({"cached_input_tokens": 100 * i} if i % 3 == 0 else {}))
        for i in range(12)))
    usage(client, key, event("eu", 9, "bob", "test/euro", input_tokens=5000))  # no EUR rate
    usage(client, key, event("nov", 3, "alice", "test/chat", input_tokens=5)
          | {"timestamp": "2026-11-03T00:00:00Z"})
    price(client, "test/later", "CNY", input_tokens="0.8", output_tokens="2")
    assert ok(client.post("/api/rerate", headers=ADMIN))["priced"] == 4
    refund = ok(client.post(f"/api/usage/{ids[4]}/refund", headers=ADMIN,
                            json={"reason": "bad answer"}), 201)
    assert refund["refund"]["status"] == "refunded" and not refund["duplicate"]
    return {"key": key, "ids": ids}


def billed_cost(config: Config, user: str | None = None) -> Decimal:
    """The ledger's billed cost (USD) of shop's October records, read from the records."""
    engine = make_engine(config.database_url)
    c = usage_records.c
    query = select(money_sum(c.billed_cost)).where(
        c.tenant_id == "shop", c.billed_currency == "USD", c.occurred_at >= OCT_START,
        c.occurred_at < OCT_END)
    if user is not None:
        query = query.where(c.user_id == user)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def exact_sum(values: Any) -> Decimal:
    total = D(0)
    for value in values:
        total = SUM_CONTEXT.add(total, D(value))
    return total


def export(client: httpx.Client, fmt: str, **params: str) -> httpx.Response:
    answer = client.get("/api/bills/shop/2026-10/export", headers=ADMIN,
                        params={"format": fmt, **params})
    assert answer.status_code == 200, answer.text
    return answer


def csv_amounts(content: bytes) -> tuple[list[Decimal], Decimal]:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[-1][0] in ("total", "合计")
    return [D(row[7]) for row in rows[1:-1]], D(rows[-1][7])


def xlsx_amounts(content: bytes) -> tuple[list[Decimal], Decimal]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    amounts = [D(cell.findtext("x:v", namespaces=XLSX_NS) or "")
               for cell in sheet.iterfind(".//x:c", XLSX_NS)
               if re.fullmatch(r"H([0-9]+)", cell.get("r", "")) and cell.get("r") != "H1"]
    return amounts[:-1], amounts[-1]


def test_bill_totals_are_the_ledger_exactly_and_every_export_adds_up(
        client: httpx.Client, config: Config, shop: dict[str, Any]) -> None:
    found = ok(client.get("/api/bills/shop/2026-10", headers=ADMIN))
    assert {"tenant", "cycle", "currency", "status", "total", "lines"} <= set(found)
    assert (found["tenant"], found["cycle"], found["currency"], found["status"],
            found["user"]) == ("shop", "2026-10", "USD", "open", None)
    ledger = billed_cost(config)
    assert D(found["total"]) == ledger == exact_sum(ln["amount"] for ln in found["lines"])
    assert {ln["model"] for ln in found["lines"]} == {"test/chat", "test/qwen", "test/later"}
    assert {ln["meter"] for ln in found["lines"]} == {"input_tokens", "cached_input_tokens",
                                                      "output_tokens"}
    for line in found["lines"]:
        assert {"model", "meter", "billing_type", "quantity", "unit", "unit_price",
                "amount"} <= set(line) and line["billing_type"] == "token"
        assert line["price_currency"] == ("USD" if line["model"] == "test/chat" else "CNY")
    assert [ln["status"] for ln in found["lines"]].count("refunded") == 2
    assert found["unconverted"] == [{"model": "test/euro", "currency": "EUR",
                                     "amount": "0.005", "lines": 1, "adjustment_of": None}]
    users = [ok(client.get("/api/bills/shop/2026-10", headers=ADMIN, params={"user": u}))
             for u in ("alice", "bob")]
    assert [D(u["total"]) for u in users] == [billed_cost(config, u) for u in ("alice", "bob")]
    assert exact_sum(u["total"] for u in users) == ledger  # before rounding

    for fmt, lang in (("csv", "en"), ("csv", "zh"), ("xlsx", "en")):
        content = export(client, fmt, lang=lang).content
        amounts, total = (xlsx_amounts if fmt == "xlsx" else csv_amounts)(content)
        assert exact_sum(amounts) == total == ledger  # an open bill's exports are exact

    issued = ok(client.post("/api/bills/shop/2026-10/status", headers=ADMIN,
                            json={"status": "issued"}))
    assert issued["status"] == "issued"
    assert D(issued["total"]) == quantize_minor(ledger, "USD") != ledger
    assert exact_sum(ln["amount"] for ln in issued["lines"]) == D(issued["total"])
    assert D(issued["exact_total"]) == ledger
    assert ok(client.get("/api/bills/shop/2026-10", headers=ADMIN)) == issued
    for fmt, lang in (("csv", "en"), ("csv", "zh"), ("xlsx", "zh")):
        answer = export(client, fmt, lang=lang)
        amounts, total = (xlsx_amounts if fmt == "xlsx" else csv_amounts)(answer.content)
        assert exact_sum(amounts) == total == D(issued["total"])  # to the cent
        assert all(a == quantize_minor(a, "USD") for a in amounts)
    focus = export(client, "focus")
    rows = list(csv.DictReader(io.StringIO(focus.content.decode("utf-8"))))
    assert exact_sum(r["BilledCost"] for r in rows) == D(issued["total"])
    assert exact_sum(r["ListCost"] for r in rows) == ledger
    assert {r["x_Model"] for r in rows} == {"test/chat", "test/qwen", "test/later"}
    assert {r["InvoiceId"] for r in rows} == {"shop/2026-10"}


def test_export_files_and_their_errors(client: httpx.Client, shop: dict[str, Any]) -> None:
    answer = export(client, "xlsx", user="alice")
    assert answer.headers["content-type"] == ("application/vnd.openxmlformats-officedocument."
                                              "spreadsheetml.sheet")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="bill-shop-alice-2026-10.xlsx"')
    assert answer.content[:2] == b"PK"
    answer = export(client, "focus")
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="bill-shop-2026-10-focus.csv"' in answer.headers["content-disposition"]
    zh = export(client, "csv", lang="zh")
    assert zh.content.startswith("\ufeff日期".encode())
    assert 'filename="bill-shop-2026-10.csv"' in zh.headers["content-disposition"]
    url = "/api/bills/shop/2026-10/export"
    refused(client.get(url, headers=ADMIN, params={"format": "pdf"}), 400, "format")
    refused(client.get(url, headers=ADMIN), 400, "format")
    refused(client.get(url, headers=ADMIN, params={"format": "csv", "lang": "fr"}), 400, "lang")
    refused(client.get("/api/bills/shop/2026-13/export", headers=ADMIN,
                       params={"format": "csv"}), 400, "cycle")
    refused(client.get("/api/bills/nobody/2026-10/export", headers=ADMIN,
                       params={"format": "csv"}), 404)
    assert client.get(url, params={"format": "csv"}).status_code == 401


def test_status_changes_and_what_is_refused(client: httpx.Client, shop: dict[str, Any]) -> None:
    url = "/api/bills/shop/2026-10/status"
    refused(client.post(url, headers=ADMIN, json={"status": "closed"}), 400, "status")
    refused(client.post(url, headers=ADMIN, json={"state": "paid"}), 400, "state")
    refused(client.post(url, headers=ADMIN, json={"status": "paid"}), 400, "status")
    ok(client.post(url, headers=ADMIN, json={"status": "issued"}))
    paid = ok(client.post(url, headers=ADMIN, json={"status": "paid"}))
    assert paid["status"] == "paid" and paid["paid_at"] and paid["issued_at"]
    error = refused(client.post(url, headers=ADMIN, json={"status": "open"}), 400, "status")
    assert error["code"] == "invalid_status_transition"
    assert "paid" in error["message"] and "allowed from paid: none" in error["message"]
    refused(client.get("/api/bills/shop/26-10", headers=ADMIN), 400, "cycle")
    refused(client.get("/api/bills/nobody/2026-10", headers=ADMIN), 404)
    refused(client.get("/api/bills/shop/2026-10", headers=ADMIN,
                       params={"user": "nobody"}), 404, "user")
    listed = ok(client.get("/api/bills", headers=ADMIN, params={"tenant": "shop"}))["bills"]
    assert [(b["cycle"], b["status"], b["user"]) for b in listed] == [("2026-10", "paid", None)]
    assert ok(client.get("/api/bills", headers=ADMIN, params={"status": "void"}))["bills"] == []
    refused(client.get("/api/bills", headers=ADMIN, params={"status": "open"}), 400, "status")
    refused(client.get("/api/bills", headers=ADMIN, params={"tenant": "nobody"}), 404)


def test_batches_are_all_or_nothing(client: httpx.Client, shop: dict[str, Any]) -> None:
    def bills(*users: str | None) -> list[dict[str, Any]]:
        return [{"tenant": "shop", "cycle": "2026-10", **({"user": u} if u else {})}
                for u in users]

    ok(client.post("/api/bills/shop/2026-10/status", headers=ADMIN,
                   json={"status": "issued", "user": "bob"}))
    error = refused(client.post("/api/bills/status", headers=ADMIN, json={
        "status": "issued", "bills": bills(None, "alice", "bob")}), 400, "status")
    assert error["code"] == "batch_refused"
    assert [(r["user"], r["status"], r["allowed"]) for r in error["refusals"]] == [
        ("bob", "issued", ["paid", "void"])]
    for user in (None, "alice"):  # nothing of the refused batch happened
        assert ok(client.get("/api/bills/shop/2026-10", headers=ADMIN,
                             params={"user": user} if user else {}))["status"] == "open"
    done = ok(client.post("/api/bills/status", headers=ADMIN, json={
        "status": "issued", "bills": bills(None, "alice")}))
    assert [(b["user"], b["status"]) for b in done["bills"]] == [(None, "issued"),
                                                                  ("alice", "issued")]
    refused(client.post("/api/bills/status", headers=ADMIN, json={
        "status": "paid", "bills": [{"tenant": "shop", "cycle": "x"}]}), 400, "cycle")
    refused(client.post("/api/bills/status", headers=ADMIN, json={"status": "paid",
                                                                  "bills": []}), 400, "bills")
    refused(client.post("/api/bills/status", headers=ADMIN, json={
        "status": "paid", "bills": [{"tenant": "nobody", "cycle": "2026-10"}]}), 404)


def test_refunds_over_http(client: httpx.Client, config: Config, shop: dict[str, Any]) -> None:
    ok(client.post("/api/quotas/grants", headers=ADMIN, json={
        "tenant": "shop", "type": "text_token", "amount": 10_000_000}), 201)
    (request_id,) = usage(client, shop["key"], event("q", 20, "alice", "test/chat",
                                                     input_tokens=1000))
    before = ok(client.get("/api/quotas/shop", headers=ADMIN))["types"]["text_token"]
    calls = ok(client.get("/api/summary", params={"tenant": "shop"}, headers=ADMIN))["calls"]
    issued = ok(client.post("/api/bills/shop/2026-10/status", headers=ADMIN,
                            json={"status": "issued"}))
    first = ok(client.post(f"/api/usage/{request_id}/refund", headers=ADMIN), 201)
    again = ok(client.post(f"/api/usage/{request_id}/refund", headers=ADMIN, json={}))
    assert again["duplicate"] and again["refund"] == first["refund"]
    assert first["refund"]["cost"] == "-0.00015" and first["refund"]["timestamp"].startswith(
        "2026-10-20")
    after = ok(client.get("/api/quotas/shop", headers=ADMIN))["types"]["text_token"]
    assert after["available"] == before["available"]  # a refund uses no quota
    summary = ok(client.get("/api/summary", params={"tenant": "shop"}, headers=ADMIN))
    assert summary["calls"] == calls  # a refund is a correction, not a call
    assert ok(client.get("/api/bills/shop/2026-10", headers=ADMIN)) == issued
    november = ok(client.get("/api/bills/shop/2026-11", headers=ADMIN))
    assert [(ln["adjustment_of"], ln["status"], ln["amount"]) for ln in november["lines"]
            if ln["adjustment_of"]] == [("2026-10", "refunded", "-0.00015")]
    assert D(issued["exact_total"]) - D("0.00015") == billed_cost(config)
    refused(client.post("/api/usage/req_nothing/refund", headers=ADMIN), 404, "request_id")
    refused(client.post(f"/api/usage/{first['refund']['request_id']}/refund", headers=ADMIN),
            400, "request_id")
    refused(client.post(f"/api/usage/{request_id}/refund", headers=ADMIN,
                        json={"reason": 5}), 400, "reason")
    assert client.post(f"/api/usage/{request_id}/refund").status_code == 401
