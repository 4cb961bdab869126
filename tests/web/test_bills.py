"""The dashboard's bill and reconciliation pages (meterline/web/bills.py) over real HTTP, on
SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.web.conftest import price_m1, sign_in


def test_a_bill_page_shows_the_lines_the_total_and_its_exports(
        client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    answer = client.post("/v1/usage", headers={"Authorization": f"Bearer {tenant_key}"}, json={
        "events": [{"id": "e1", "timestamp": "2026-10-05T10:00:00Z", "model": "test/m1",
                    "usage": {"input_tokens": 1000, "output_tokens": 500}}]})
    assert answer.status_code == 200, answer.text
    assert client.get("/bills", follow_redirects=False).status_code == 303
    sign_in(client)
    assert "name=tenant" in client.get("/bills").text
    page = client.get("/bills", params={"tenant": "acme", "cycle": "2026-10"})
    assert page.status_code == 200
    assert "acme, 2026-10: 0.00125 USD (open)" in page.text
    assert "<td>test/m1</td><td>input_tokens</td><td class=n>1000</td>" in page.text
    export = "/api/bills/acme/2026-10/export?format=csv&amp;lang=en"
    assert export in page.text
    # the export link works with the page's session alone
    csv = client.get(export.replace("&amp;", "&"))
    assert csv.status_code == 200 and "test/m1" in csv.text
    bad = client.get("/bills", params={"tenant": "acme", "cycle": "October"})
    assert bad.status_code == 400 and "YYYY-MM" in bad.text


def test_the_reconciliation_page(client: httpx.Client) -> None:
    assert client.get("/reconcile", follow_redirects=False).status_code == 303
    sign_in(client)
    bill = ("ServiceProviderName,x_Model,BilledCost,BillingCurrency,ChargePeriodStart,"
            "ChargePeriodEnd\nopenai,gpt-5,2.5,USD,2026-10-01,2026-10-02\n")
    assert client.post("/api/provider-bills", content=bill.encode()).status_code == 201
    page = client.get("/reconcile", params={"cycle": "2026-10"})
    assert page.status_code == 200
    assert "<td>only_billed</td><td>openai</td><td>openai/gpt-5</td>" in page.text
    assert "No metered or billed" in client.get("/reconcile", params={"cycle": "2026-09"}).text
    assert client.get("/reconcile", params={"cycle": "2026-99"}).status_code == 400
