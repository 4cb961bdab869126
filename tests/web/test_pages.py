"""The dashboard (meterline/web/pages.py) over real HTTP, on SQLite and PostgreSQL: signing in
with the admin token, the session cookie, the overview of spend and calls, signing out."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

import httpx

from tests.conftest import ADMIN, ADMIN_TOKEN


def sign_in(client: httpx.Client) -> None:
    """The client keeps the session cookie, as a browser does."""
    answer = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("meterline_session=")
    for flag in ("HttpOnly", "Path=/", "SameSite=strict"):
        assert flag.lower() in cookie.lower(), cookie
    assert client.cookies.get("meterline_session") == ADMIN_TOKEN


def test_pages_need_a_session_and_the_login_takes_only_the_admin_token(
        client: httpx.Client) -> None:
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login"
    form = client.get("/login")
    assert form.status_code == 200 and "type=password name=token" in form.text
    wrong = client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not an admin token" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert client.post("/login", data={}, follow_redirects=False).status_code == 401
    sign_in(client)
    page = client.get("/")
    assert page.status_code == 200 and "Spend: all tenants" in page.text
    # the admin API takes the same session
    assert client.get("/api/tenants").status_code == 200
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and "max-age=0" in out.headers["set-cookie"].lower()
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/tenants").status_code == 401


def test_the_overview_shows_spend_and_the_latest_calls_escaped(
        client: httpx.Client, tenant_key: str) -> None:
    assert client.post("/api/prices", headers=ADMIN, json={
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}
        ).status_code == 201
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
