"""A streamed call whose client is gone before the body starts (issue 12.3a).

The upstream is held at a point the test chooses — before its headers, or between its headers
and its first event — and let go only once the gateway's server has seen the client's
connection close, so the gateway answers a client that is already gone. Served as an ASGI 2.4
server serves it (``send`` raises once the client is gone, and Starlette then never iterates
the response's body), a client gone before the headers meant the body generator never ran, and
a call recorded only inside it was lost: 1 upstream call, 0 records, its budget hold and its
Idempotency-Key kept until they expired. The call reached the provider, so it must be recorded,
its hold released and its key given back, under either server behaviour. Nothing here waits on
a clock, only on the events themselves.
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
    """An ASGI wrapper around the simulated upstream that holds each answer, while ``hold`` is
    "headers" or "body", at that point until ``release`` is set (``arrived``: a request came)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hold: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def _wait(self) -> None:
        while not self.release.is_set():
            await anyio.sleep(0.005)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.hold is None:
            await self.app(scope, receive, send)
            return
        self.arrived.set()
        if self.hold == "headers":
            await self._wait()

        async def held(message: Any) -> None:
            if message["type"] == "http.response.body":
                await self._wait()
            await send(message)

        await self.app(scope, receive, held)


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

    def wait_gone(self, client: tuple[str, int]) -> None:
        """Until the server has seen the connection from ``client`` close."""
        wait_for(lambda: not _connected(self.server, client), "the server saw the client leave")

    def record(self) -> dict[str, Any]:
        """The tenant's one ledger record, once it is there."""
        def records() -> list[dict[str, Any]]:
            answer = self.admin.get("/api/usage", params={"tenant": "acme"})
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["records"]
            return found

        [record] = wait_for(records, "the call's ledger record")
        return record


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)
    return found


def _connected(server: LiveServer, client: tuple[Any, ...]) -> bool:
    """Whether the server still has the connection from ``client`` open."""
    return any(getattr(c, "transport", None) is not None
               and tuple(c.transport.get_extra_info("peername") or ()) == client
               for c in list(server.server.server_state.connections))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def serve(database: str, tmp_path: Path) -> Iterator[Callable[[bool], Setup]]:
    """``serve(asgi24)``: a gated upstream and a gateway in front of it (served with ASGI 2.4
    semantics or uvicorn's own), a tenant with a block budget, and its key."""
    gate = Gate(create_simulator(require_key=UPSTREAM_KEY))
    with serve_in_thread(gate) as upstream:
        config = Config(database_url=database, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp_path / "journal"),
                        providers=(ProviderConfig("openai", "openai", upstream + "/v1",
                                                  Secret(UPSTREAM_KEY)),),
                        # every call holds its own budget, so a hold left behind shows
                        limits=LimitsConfig(lease_calls=1))
        opened: list[Any] = []

        def start(asgi24: bool) -> Setup:
            app: Any = create_app(config)
            wrapper = Asgi24(app) if asgi24 else None
            server = LiveServer(wrapper or app)
            if wrapper is not None:
                wrapper.server = server
            base = server.__enter__()
            opened.append(server)
            admin = httpx.Client(base_url=base, headers=ADMIN, timeout=30)
            opened.append(admin)
            assert admin.post("/api/tenants", json={"name": "acme"}).status_code == 201
            add_test_prices(admin)
            budget = admin.post("/api/budgets", json={
                "tenant": "acme", "amount": "10", "currency": "USD", "period": "month",
                "mode": "block"})
            assert budget.status_code == 201, budget.text
            key = admin.post("/api/keys", json={"tenant": "acme"}).json()["key"]
            return Setup(gate, server, base, admin, key)

        try:
            yield start
        finally:
            gate.release.set()
            for thing in reversed(opened):
                thing.__exit__(None, None, None)


def assert_recorded_and_released(setup: Setup, idempotency: str) -> None:
    """One record, ``cancelled``; its budget hold released (its cost spent instead); its
    Idempotency-Key free for a retry."""
    record = setup.record()
    assert record["status"] == "cancelled" and record["error"] == "client disconnected"
    assert record["model"] == MODEL and record["estimated"] is True
    assert record["usage"]["input_tokens"] > 0 and money(record["cost"]) > 0

    def settled() -> dict[str, Any] | None:
        [budget] = setup.admin.get("/api/budgets", params={"tenant": "acme"}).json()["budgets"]
        return budget if money(budget["reserved"]) == 0 else None

    budget = wait_for(settled, "the budget hold released")
    assert money(budget["spent"]) == money(record["cost"])
    setup.gate.hold = None
    with httpx.Client(base_url=setup.url, timeout=30) as http:
        retry = http.post("/v1/chat/completions", headers={
            "authorization": f"Bearer {setup.key}", "idempotency-key": idempotency},
            json={"model": MODEL, "messages": [{"role": "user", "content": "again"}]})
    assert retry.status_code == 200, retry.text


def test_a_stream_whose_client_left_before_the_headers_is_recorded(serve: Any) -> None:
    setup: Setup = serve(True)
    idempotency = f"idem-{marker()}"
    body = json.dumps({"model": MODEL, "stream": True,
                       "messages": [{"role": "user", "content": f"tell {marker()}"}]}).encode()
    url = httpx.URL(setup.url)
    assert url.port is not None
    setup.gate.hold = "headers"
    with socket.create_connection((url.host, url.port)) as client:
        client.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {url.host}\r\n"
            f"authorization: Bearer {setup.key}\r\ncontent-type: application/json\r\n"
            f"idempotency-key: {idempotency}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body)
        wait_for(setup.gate.arrived.is_set, "the call reached the upstream")
        address = client.getsockname()
    # Gone before the upstream said anything; once the server knows it, the upstream answers.
    setup.wait_gone(address)
    setup.gate.release.set()
    assert_recorded_and_released(setup, idempotency)


def test_a_stream_closed_right_after_its_headers_is_recorded(serve: Any) -> None:
    """The client has the headers and closes the stream before reading anything; the upstream's
    first event comes only after the server (uvicorn, as served) has seen it go. (Under ASGI
    2.4 semantics the gateway cannot know the client is gone until it sends: the answer, all
    arrived at once, is recorded ``success`` before that, as any complete answer is.)"""
    setup: Setup = serve(False)
    idempotency = f"idem-{marker()}"
    setup.gate.hold = "body"
    with httpx.Client(base_url=setup.url, timeout=30) as http, http.stream(
            "POST", "/v1/chat/completions",
            headers={"authorization": f"Bearer {setup.key}", "idempotency-key": idempotency},
            json={"model": MODEL, "stream": True,
                  "messages": [{"role": "user", "content": f"tell {marker()}"}]}) as response:
        assert response.status_code == 200
        address = response.extensions["network_stream"].get_extra_info("client_addr")
    setup.wait_gone(tuple(address))
    setup.gate.release.set()
    assert_recorded_and_released(setup, idempotency)
