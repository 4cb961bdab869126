"""A streamed call whose client is gone before the body starts (issue 12.3a).

The upstream answers only once the gateway's server has seen the client's connection close, so
the streamed response is handed to a client that is already gone. Served as an ASGI 2.4 server
serves it — ``send`` raises once the client is gone, and Starlette then never iterates the
response's body — the body generator never runs, and a call recorded only inside it was lost
(1 upstream call, 0 records, its hold and Idempotency-Key kept until they expired). The call
reached the provider, so it must still be recorded, its budget hold released and its key given
back. Nothing here waits on a clock, only on the events themselves.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from meterline.api.app import create_app
from meterline.config import Config, LimitsConfig, ProviderConfig, Secret
from meterline.simulator import create_simulator, serve_in_thread
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, fresh_database
from tests.gateway.conftest import UPSTREAM_KEY, add_test_prices, marker, money

MODEL = "openai/gpt-5-nano"


class Gate:
    """An ASGI wrapper holding every request until ``release`` is set (``arrived`` tells that
    one came): the test decides when the upstream answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.arrived.set()
            while not self.release.is_set():
                await anyio.sleep(0.005)
        await self.app(scope, receive, send)


class Asgi24:
    """Serves an app as an ASGI 2.4 server does (uvicorn announces 2.3, under which Starlette
    listens for the disconnect itself): ``send`` raises OSError once the server has lost the
    client's connection."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: LiveServer | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "asgi": {**scope.get("asgi", {}), "spec_version": "2.4"}}
        client = tuple(scope["client"])

        async def checked(message: Any) -> None:
            assert self.server is not None
            if not _connected(self.server, client):
                raise OSError("the client's connection is closed")
            await send(message)

        try:
            await self.app(scope, receive, checked)
        except OSError:
            # Starlette's ClientDisconnect, as the server expects it: nothing to log.
            if self.server is not None and _connected(self.server, client):
                raise


@dataclass
class Setup:
    gate: Gate
    server: LiveServer
    url: str
    admin: httpx.Client
    key: str


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def gated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    gate = Gate(create_simulator(require_key=UPSTREAM_KEY))
    with serve_in_thread(gate) as upstream, fresh_database(request.param, tmp_path) as url:
        gate.release.set()  # held only while a test wants it
        config = Config(database_url=url, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp_path / "journal"),
                        providers=(ProviderConfig("openai", "openai", upstream + "/v1",
                                                  Secret(UPSTREAM_KEY)),),
                        # every call holds its own budget, so a hold left behind shows
                        limits=LimitsConfig(lease_calls=1))
        app = Asgi24(create_app(config))
        server = app.server = LiveServer(app)
        with server as base, httpx.Client(base_url=base, headers=ADMIN, timeout=30) as admin:
            assert admin.post("/api/tenants", json={"name": "acme"}).status_code == 201
            add_test_prices(admin)
            budget = admin.post("/api/budgets", json={
                "tenant": "acme", "amount": "10", "currency": "USD", "period": "month",
                "mode": "block"})
            assert budget.status_code == 201, budget.text
            key = admin.post("/api/keys", json={"tenant": "acme"}).json()["key"]
            yield Setup(gate, server, base, admin, key)


def _connected(server: LiveServer, client: tuple[str, int]) -> bool:
    """Whether the server still has the connection from ``client`` open."""
    return any(getattr(c, "transport", None) is not None
               and tuple(c.transport.get_extra_info("peername") or ()) == client
               for c in list(server.server.server_state.connections))


def test_a_stream_whose_client_left_before_the_headers_is_recorded(gated: Setup) -> None:
    word, idempotency = marker(), f"idem-{marker()}"
    body = json.dumps({"model": MODEL, "stream": True,
                       "messages": [{"role": "user", "content": f"tell {word}"}]}).encode()
    host, port = httpx.URL(gated.url).host, httpx.URL(gated.url).port
    assert port is not None
    gated.gate.release.clear()
    gated.gate.arrived.clear()
    with socket.create_connection((host, port)) as client:
        client.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
            f"authorization: Bearer {gated.key}\r\ncontent-type: application/json\r\n"
            f"idempotency-key: {idempotency}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body)
        wait_for(gated.gate.arrived.is_set, "the call reached the upstream")
        address = client.getsockname()
        assert _connected(gated.server, address)
    # The client is gone before the upstream said anything; once the server knows it, the
    # upstream answers, and the gateway hands a streamed response to no one.
    wait_for(lambda: not _connected(gated.server, address), "the server saw the client leave")
    gated.gate.release.set()

    def records() -> list[dict[str, Any]]:
        answer = gated.admin.get("/api/usage", params={"tenant": "acme"})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["records"]
        return found

    [record] = wait_for(records, "the call's ledger record")
    assert record["status"] == "cancelled" and record["error"] == "client disconnected"
    assert record["model"] == MODEL and record["estimated"] is True
    assert record["usage"]["input_tokens"] > 0 and money(record["cost"]) > 0

    # Its budget hold is released, and its cost counted instead.
    def settled() -> dict[str, Any] | None:
        [budget] = gated.admin.get("/api/budgets", params={"tenant": "acme"}).json()["budgets"]
        return budget if money(budget["reserved"]) == 0 else None

    budget = wait_for(settled, "the budget hold released")
    assert money(budget["spent"]) == money(record["cost"])

    # The Idempotency-Key was given back: the client may retry with it.
    with httpx.Client(base_url=gated.url, timeout=30) as http:
        retry = http.post("/v1/chat/completions", headers={
            "authorization": f"Bearer {gated.key}", "idempotency-key": idempotency},
            json={"model": MODEL, "messages": [{"role": "user", "content": "again"}]})
    assert retry.status_code == 200, retry.text
