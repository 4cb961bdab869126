"""The dashboard's usage page (meterline/web/usage.py) over real HTTP, on SQLite and
PostgreSQL."""

from __future__ import annotations

import httpx

from tests.web.conftest import price_m1, sign_in


def test_usage_records_newest_first_and_filtered(client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    events = [{"id": f"e{n}", "timestamp": f"2026-10-0{n}T10:00:00Z", "model": "test/m1",
               "user": user, "usage": {"input_tokens": 1000 * n, "output_tokens": 10}}
              for n, user in ((1, "alice"), (2, "bob"), (3, "alice"))]
    answer = client.post("/v1/usage", headers={"Authorization": f"Bearer {tenant_key}"},
                         json={"events": events})
    assert answer.status_code == 200, answer.text
    assert client.get("/usage", follow_redirects=False).status_code == 303
    sign_in(client)
    page = client.get("/usage").text
    assert "3 records." in page
    assert page.index("2026-10-03") < page.index("2026-10-02") < page.index("2026-10-01")
    alice = client.get("/usage", params={"user": "alice", "tenant": "acme"}).text
    assert "2 records." in alice and "<td>bob</td>" not in alice
    assert "value='alice'" in alice  # the filter stays in the form
    assert "No records." in client.get("/usage", params={"status": "error"}).text
