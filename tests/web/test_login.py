"""Signing in to the dashboard (meterline/web/login.py, services/admins.py) over real HTTP, on
SQLite and PostgreSQL: the admin token buys a signed, expiring, server-side session; the cookie
is never the token; signing out, expiry and revoking the token each end the session for good,
for whoever holds a copy of the cookie (issue 12.6)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from meterline.api.app import create_app
from meterline.config import Config, Secret
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, fresh_database
from tests.faults import TcpProxy
from tests.web.conftest import sign_in


class Clock:
    """The time the app's sessions see; a test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(config: Config, clock: Clock) -> Iterator[httpx.Client]:
    """The app served with ``clock`` as its time."""
    with LiveServer(create_app(config, clock=clock)) as base_url, \
            httpx.Client(base_url=base_url, timeout=60) as http:
        yield http


def as_browser(client: httpx.Client, session: str) -> httpx.Client:
    """Another client presenting a copy of ``session`` (a stolen or kept cookie)."""
    copy = httpx.Client(base_url=client.base_url, timeout=60)
    copy.cookies.set("meterline_session", session)
    return copy


def test_pages_need_a_session_and_the_login_takes_only_the_admin_token(
        client: httpx.Client) -> None:
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login"
    form = client.get("/login")
    assert form.status_code == 200 and 'type="password" name="token"' in form.text
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


def test_the_token_itself_is_no_session(client: httpx.Client) -> None:
    """The cookie once held the admin token; a cookie holding it now is not a session."""
    with as_browser(client, ADMIN_TOKEN) as browser:
        assert browser.get("/", follow_redirects=False).status_code == 303
        assert browser.get("/api/tenants").status_code == 401


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(
        client: httpx.Client) -> None:
    session = sign_in(client)
    with as_browser(client, session) as kept:
        assert kept.get("/api/tenants").status_code == 200
        assert client.post("/logout", follow_redirects=False).status_code == 303
        # The copy kept elsewhere is refused as well: the server revoked the session.
        assert kept.get("/", follow_redirects=False).headers["location"] == "/login"
        refused = kept.get("/api/tenants")
        assert refused.status_code == 401 and "sign in again" in refused.json()["error"][
            "message"]
    # A second sign-in is a new session.
    assert sign_in(client) != session
    assert client.get("/api/tenants").status_code == 200


def test_a_forged_or_altered_cookie_is_refused(client: httpx.Client) -> None:
    session = sign_in(client)
    session_id, _, signature = session.partition(".")
    for forged in (f"{session_id}.{'0' * len(signature)}", session_id,
                   f"{session_id}x.{signature}", "forged"):
        with as_browser(client, forged) as browser:
            assert browser.get("/api/tenants").status_code == 401, forged


def test_a_session_expires_after_twelve_hours(timed: httpx.Client, clock: Clock) -> None:
    session = sign_in(timed)
    clock.now += timedelta(hours=11, minutes=59)
    assert timed.get("/api/tenants").status_code == 200
    assert timed.get("/", follow_redirects=False).status_code == 200
    clock.now += timedelta(minutes=1)
    refused = timed.get("/api/tenants")
    assert refused.status_code == 401 and "sign in again" in refused.json()["error"]["message"]
    assert timed.get("/", follow_redirects=False).headers["location"] == "/login"
    # However busy it was: expiry counts from the sign-in, and the cookie does not revive it.
    with as_browser(timed, session) as browser:
        assert browser.get("/api/tenants").status_code == 401
    sign_in(timed)
    assert timed.get("/api/tenants").status_code == 200


def test_revoking_an_admin_token_ends_its_sessions(client: httpx.Client) -> None:
    made = client.post("/api/admin-tokens", json={"name": "alice"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["id"]
    with httpx.Client(base_url=client.base_url, timeout=60) as alice, \
            httpx.Client(base_url=client.base_url, timeout=60) as admin:
        sign_in(alice, token)
        sign_in(admin)
        assert alice.get("/api/tenants").status_code == 200
        revoked = client.post(f"/api/admin-tokens/{token_id}/revoke", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
        assert alice.get("/api/tenants").status_code == 401
        assert alice.get("/", follow_redirects=False).headers["location"] == "/login"
        # and it cannot sign in again; the other token's session goes on
        again = alice.post("/login", data={"token": token}, follow_redirects=False)
        assert again.status_code == 401
        assert admin.get("/api/tenants").status_code == 200


def test_a_database_outage_shows_the_error_page_and_keeps_the_session(tmp_path: Path) -> None:
    """Sessions are checked in the database: while it is down, a page is the 503 error page
    (not a JSON answer, not a sign-in loop), and the session works again once it is back."""
    with fresh_database("postgresql", tmp_path) as url:
        proxy, through = TcpProxy.to_url(url)
        config = Config(database_url=through, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp_path / "journal"))
        with proxy, LiveServer(create_app(config)) as base, \
                httpx.Client(base_url=base, timeout=60) as browser:
            sign_in(browser)
            assert browser.get("/").status_code == 200
            proxy.cut()
            down = browser.get("/", follow_redirects=False)
            assert down.status_code == 503 and down.headers["retry-after"]
            assert down.headers["content-type"].startswith("text/html")
            assert "the database is unavailable" in down.text
            api = browser.get("/api/tenants")
            assert api.status_code == 503 and api.json()["error"]["code"] == "store_unavailable"
            proxy.restore()
            assert browser.get("/", follow_redirects=False).status_code == 200
