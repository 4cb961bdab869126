"""Signing in to the dashboard (meterline/web/login.py) over real HTTP, on SQLite and
PostgreSQL: the admin token, the session cookie, signing out."""

from __future__ import annotations

import httpx

from tests.web.conftest import sign_in


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
