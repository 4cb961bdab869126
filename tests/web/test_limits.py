"""The dashboard's budgets and alerts page (meterline/web/limits.py) over real HTTP, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.conftest import ADMIN
from tests.web.conftest import price_m1, sign_in


def test_budgets_with_their_spend_and_the_open_alerts(client: httpx.Client,
                                                      tenant_key: str) -> None:
    price_m1(client)
    made = client.post("/api/budgets", headers=ADMIN, json={
        "tenant": "acme", "model": "test/m1", "amount": "0.001", "currency": "USD",
        "period": "month", "mode": "alert"})
    assert made.status_code == 201, made.text
    answer = client.post("/v1/usage", headers={"Authorization": f"Bearer {tenant_key}"}, json={
        "events": [{"id": "e1", "timestamp": datetime.now(UTC).isoformat(), "model": "test/m1",
                    "usage": {"input_tokens": 1000, "output_tokens": 500}}]})
    assert answer.status_code == 200, answer.text
    assert client.get("/limits", follow_redirects=False).status_code == 303
    sign_in(client)
    page = client.get("/limits", params={"tenant": "acme"})
    assert page.status_code == 200
    # limit 0.001, spent 0.00125, nothing reserved, nothing left
    assert "<td class=n>0.001</td><td class=n>0.00125</td><td class=n>0</td>" in page.text
    assert "<h2>Open alerts</h2><table>" in page.text and "acme" in page.text
    other = client.get("/limits", params={"tenant": "other"}).text
    assert other.count("<p>None.</p>") == 2
