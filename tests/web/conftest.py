"""Helpers of the dashboard tests (meterline/web/)."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN


def sign_in(client: httpx.Client) -> None:
    """The client keeps the session cookie, as a browser does."""
    answer = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("meterline_session=")
    for flag in ("HttpOnly", "Path=/", "SameSite=strict"):
        assert flag.lower() in cookie.lower(), cookie
    assert client.cookies.get("meterline_session") == ADMIN_TOKEN
