"""Helpers of the dashboard tests (meterline/web/)."""

from __future__ import annotations

import json

import httpx

from tests.conftest import ADMIN, ADMIN_TOKEN


def sign_in(client: httpx.Client, token: str = ADMIN_TOKEN) -> str:
    """The client keeps the session cookie, as a browser does; returns the cookie's value."""
    answer = client.post("/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("meterline_session=")
    for flag in ("HttpOnly", "Path=/", "SameSite=strict", "Max-Age=43200"):
        assert flag.lower() in cookie.lower(), cookie
    session = client.cookies.get("meterline_session")
    # A signed session id, never the token itself.
    assert session and token not in session
    return session


def price_m1(client: httpx.Client) -> None:
    """``test/m1`` at 0.0000005 USD per input token and 0.0000015 per output token."""
    answer = client.post("/api/prices", headers=ADMIN, json={
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}})
    assert answer.status_code == 201, answer.text


def report(client: httpx.Client, key: str, events: list[dict[str, object]]) -> None:
    """Usage events reported with a tenant's key (``POST /v1/usage``), all accepted."""
    for first in range(0, len(events), 1000):
        answer = client.post("/v1/usage", headers={"Authorization": f"Bearer {key}"},
                             json={"events": events[first:first + 1000]})
        assert answer.status_code == 200, answer.text
        assert all("error" not in r for r in answer.json()["results"]), answer.text


def data_block(html: str, block_id: str) -> object:
    """The JSON of a page's ``<script type="application/json" id=...>`` block."""
    opening = f'<script type="application/json" id="{block_id}">'
    start = html.index(opening) + len(opening)
    return json.loads(html[start:html.index("</script>", start)])


def tooltip_of(html: str, label: str) -> str:
    """The exact amount in the tooltip of the card labelled ``label``."""
    card = html.index(f"<span>{label}</span>")
    title = html.index('title="', card) + len('title="')
    return html[title:html.index('"', title)]
