"""The dashboard's overview (meterline/web/overview.py) over real HTTP, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

import httpx

from tests.conftest import ADMIN
from tests.web.conftest import price_m1, sign_in


def test_the_overview_shows_spend_and_the_latest_calls_escaped(
        client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    now = datetime.now(UTC).isoformat()
    answer = client.post("/v1/usage", headers={"Authorization": f"Bearer {tenant_key}"}, json={
        "events": [{"id": "e1", "timestamp": now, "model": "test/m1", "user": "<b>eve</b>",
                    "usage": {"input_tokens": 1000, "output_tokens": 500}}]})
    assert answer.status_code == 200, answer.text
    sign_in(client)
    page = client.get("/", params={"tenant": "acme"})
    assert page.status_code == 200
    assert "Spend: acme" in page.text
    assert page.text.count("0.00125 USD") >= 3  # today, this month, total
    assert "test/m1" in page.text and "&lt;b&gt;eve&lt;/b&gt;" in page.text
    assert "<b>eve</b>" not in page.text
    assert "<svg" in page.text and page.headers["cache-control"] == "no-store"
    missing = client.get("/", params={"tenant": "nobody"})
    api = client.get("/api/summary", params={"tenant": "nobody"}, headers=ADMIN)
    assert missing.status_code == api.status_code >= 400  # the API's answer, as a page
    assert escape(api.json()["error"]["message"]) in missing.text
