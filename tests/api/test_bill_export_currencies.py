"""Bill exports of lines priced in another currency than the bill's (issue 13.8), over HTTP on
SQLite and PostgreSQL: a CNY tenant's USD-priced calls, a USD tenant's CNY-priced ones (through
the reciprocal of the stored rate). Every CSV and XLSX row names its unit price's currency and
the FX rate its amount was converted at, so that quantity ÷ unit size × unit price × FX rate
gives the amount; FOCUS rows carry the same as PricingCurrency and x_FxRate.
"""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from tests.conftest import ADMIN

D = Decimal
NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
MILLION = D(1_000_000)


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def tenant(client: httpx.Client, name: str, currency: str) -> dict[str, str]:
    ok(client.post("/api/tenants", headers=ADMIN, json={
        "name": name, "currency": currency, "timezone": "Asia/Shanghai"}), 201)
    key = ok(client.post("/api/keys", json={"tenant": name}, headers=ADMIN), 201)["key"]
    return {"Authorization": f"Bearer {key}"}


def export(client: httpx.Client, name: str, fmt: str) -> bytes:
    answer = client.get(f"/api/bills/{name}/2026-11/export", headers=ADMIN,
                        params={"format": fmt})
    assert answer.status_code == 200, answer.text
    return answer.content


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))


def xlsx_rows(content: bytes) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    table = [["".join(c.itertext()) for c in row.iterfind("x:c", NS)]
             for row in sheet.iterfind(".//x:row", NS)]
    return [dict(zip(table[0], row, strict=True)) for row in table[1:]]


@pytest.fixture
def billed(client: httpx.Client) -> None:
    for model, currency in (("test/usd", "USD"), ("test/cny", "CNY")):
        ok(client.post("/api/prices", headers=ADMIN, json={
            "model": model, "unit": "1M", "currency": currency, "effective_from": "2020-01-01",
            "prices": {"input_tokens": "0.15", "output_tokens": "0.6"}}), 201)
    ok(client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.1", "effective_from": "2020-01-01T00:00:00Z"}),
        201)
    for name, currency, model in (("shop", "CNY", "test/usd"), ("acme", "USD", "test/cny")):
        key = tenant(client, name, currency)
        events = [{"id": f"e{n}", "timestamp": f"2026-11-{n + 1:02d}T04:00:00Z", "model": model,
                   "usage": {"input_tokens": 1234567 * (n + 1), "output_tokens": 4321 * n}}
                  for n in range(3)]
        results = ok(client.post("/v1/usage", json={"events": events}, headers=key))
        assert all("error" not in r for r in results["results"]), results


@pytest.mark.parametrize(("name", "bill_currency", "price_currency", "rate"), [
    ("shop", "CNY", "USD", "7.1"),                             # the stored rate
    ("acme", "USD", "CNY", "0.1408450704225352112676056338"),  # its reciprocal, as used
])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_rows_name_the_price_currency_and_the_rate(client: httpx.Client, billed: None,
                                                   name: str, bill_currency: str,
                                                   price_currency: str, rate: str,
                                                   fmt: str) -> None:
    content = export(client, name, fmt)
    rows = csv_rows(content) if fmt == "csv" else xlsx_rows(content)
    lines, total = rows[:-1], rows[-1]
    assert len(lines) == 2 and total["date"] == "total"
    for row in lines:
        assert (row["currency"], row["unit price currency"], row["fx rate"]) == (
            bill_currency, price_currency, rate)
        assert row["unit"] == "1M tokens"
        computed = D(row["quantity"]) / MILLION * D(row["unit price"]) * D(row["fx rate"])
        # each call's line was converted to 10 places, so a reciprocal rate's product may
        # differ from the amount only in that tenth place
        assert abs(computed - D(row["amount"])) <= D("1e-9"), row
        if rate == "7.1":
            assert computed == D(row["amount"])
    assert (total["unit price currency"], total["fx rate"]) == ("", "")


def test_focus_rows_price_in_the_price_currency(client: httpx.Client, billed: None) -> None:
    rows = csv_rows(export(client, "shop", "focus"))
    assert {(r["BillingCurrency"], r["PricingCurrency"], r["x_FxRate"], r["x_Timezone"])
            for r in rows} == {("CNY", "USD", "7.1", "Asia/Shanghai")}
    for row in rows:
        assert D(row["ListUnitPrice"]) == D(row["PricingCurrencyListUnitPrice"]) * D("7.1")
        assert D(row["PricingQuantity"]) * D(row["ListUnitPrice"]) == D(row["ListCost"])
        assert " USD per 1M tokens" in row["ChargeDescription"]
