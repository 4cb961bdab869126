"""Shared fixtures of the gateway tests: a simulated upstream on loopback, and gateways in front
of it served over real HTTP, driven with the official SDKs.

``upstream`` is one simulator per test process (it requires the provider key ``sk-upstream``, so
a call only succeeds if the gateway sent the configured key), behind ``Faults``: a request whose
text says ``[[fault ...]]`` gets an upstream that misbehaves on purpose (hangs, resets the
connection, answers broken JSON or spoilt usage); every other request reaches the simulator
unchanged. ``gateway`` is a gateway per database (SQLite and PostgreSQL) shared by the session,
with a tenant ``acme``, a key bound to user ``bob`` and test prices in force since 2026-11-01, so
that expected costs are round and exact. ``gateway_factory`` starts a fresh one with other
settings (short timeouts, a short key cache, other providers) for one test.

Records reach the ledger through the journal and the drainer, a fraction of a second after the
response; ``Gateway.record`` polls ``GET /api/usage?request_id=`` until the record is there.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import openai
import orjson
import pytest
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterline.api.app import create_app
from meterline.config import Config, ProviderConfig, Secret
from meterline.services.bootstrap import prepare_database
from meterline.simulator import SimState, create_simulator, serve_in_thread
from meterline.simulator.directives import generated_text
from meterline.store import accounts
from meterline.store.engine import make_engine
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, fresh_database

UPSTREAM_KEY = "sk-upstream"
PRICE_FROM = "2026-11-01"
MILLION = Decimal(1_000_000)
#: The test price of every token model, per 1M tokens.
TOKEN_PRICES = {"input_tokens": "1", "cached_input_tokens": "0.1", "cache_write_tokens": "1.25",
                "cache_write_1h_tokens": "2", "output_tokens": "2"}
TOKEN_MODELS = ("openai/gpt-5-nano", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash",
                "deepseek/deepseek-chat", "openrouter/openai/gpt-4o-mini")
EMBEDDING_PRICE = Decimal("0.5")  # per 1M input tokens
TTS_PRICE = Decimal("0.01")  # per 1K characters
IMAGE_PRICES = {"base": Decimal("0.04"), "1024x1024/high": Decimal("0.17"),
                "low": Decimal("0.01")}
VIDEO_PRICES = {"base": Decimal("0.1"), "1280x720": Decimal("0.25")}  # per second
EXTRA_PRICES: list[dict[str, Any]] = [
    {"model": "openai/text-embedding-3-small", "unit": "1M",
     "prices": {"input_tokens": str(EMBEDDING_PRICE)}},
    {"model": "openai/tts-1", "billing_type": "character", "unit": "1K",
     "prices": {"characters": str(TTS_PRICE)}},
    {"model": "openai/gpt-image-1", "billing_type": "count", "unit": "1",
     "prices": {"images": str(IMAGE_PRICES["base"])},
     "variants": [
         {"match": {"size": "1024x1024", "quality": "high"},
          "prices": {"images": str(IMAGE_PRICES["1024x1024/high"])}},
         {"match": {"quality": "low"}, "prices": {"images": str(IMAGE_PRICES["low"])}}]},
    {"model": "openai/sora-2", "billing_type": "second", "unit": "1",
     "prices": {"seconds": str(VIDEO_PRICES["base"])},
     "variants": [{"match": {"size": "1280x720"},
                   "prices": {"seconds": str(VIDEO_PRICES["1280x720"])}}]},
]
PLAIN_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
TEXT = generated_text(16)
"""What the simulator answers by default: 16 words of lorem ipsum."""


def words(text: str) -> int:
    """Prompt tokens as the simulator counts them: words without ``[[sim ...]]`` blocks."""
    return max(1, len(re.sub(r"\[\[sim\b[^\]]*\]\]", " ", text).split()))


def token_cost(usage: dict[str, int]) -> Decimal:
    """The cost of a usage at TOKEN_PRICES (cached and cache-write parts of the input apart)."""
    cached = usage.get("cached_input_tokens", 0)
    written = usage.get("cache_write_tokens", 0)
    hour = usage.get("cache_write_1h_tokens", 0)
    plain = usage.get("input_tokens", 0) - cached - written
    total = (plain * Decimal(TOKEN_PRICES["input_tokens"])
             + cached * Decimal(TOKEN_PRICES["cached_input_tokens"])
             + (written - hour) * Decimal(TOKEN_PRICES["cache_write_tokens"])
             + hour * Decimal(TOKEN_PRICES["cache_write_1h_tokens"])
             + usage.get("output_tokens", 0) * Decimal(TOKEN_PRICES["output_tokens"]))
    return total / MILLION


def money(value: str | None) -> Decimal:
    """A money string from the API, checked to be a plain decimal (never a float's text)."""
    assert isinstance(value, str) and PLAIN_DECIMAL.match(value), value
    return Decimal(value)


# --- the simulated upstream ----------------------------------------------------------------------

@dataclass
class Upstream:
    url: str
    sim: SimState
    faults: Faults | None = None

    def requests(self, marker: str) -> list[Any]:
        """What the simulator received in requests whose body contains ``marker``."""
        return [r for r in list(self.sim.received) if marker in json.dumps(r.body, default=str)]

    def one(self, marker: str) -> Any:
        found = self.requests(marker)
        assert len(found) == 1, f"{len(found)} upstream requests carry {marker!r}"
        return found[0]

    def count(self) -> int:
        return sum(self.sim.requests.values())


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    app = create_simulator(require_key=UPSTREAM_KEY, record=512)
    faults = Faults(app)
    with serve_in_thread(faults) as url:
        yield Upstream(url, app.state.sim, faults)


# --- an upstream that misbehaves on purpose --------------------------------------------------

_FAULT = re.compile(r"\[\[fault ([a-z_]+)(?:=([\w.-]+))?\]\]")
#: What ``[[fault usage=VARIANT]]`` puts in the place of the output count (or of the usage).
SPOILT_USAGE: dict[str, Any] = {"negative": -7, "fractional": 12.5, "text": "12",
                                "huge": 10**17, "enormous": 10**30, "missing": ...,
                                "null": None}


def _strings(value: Any, out: list[str]) -> list[str]:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    return out


def _dumps(value: Any) -> bytes:
    """JSON of ``value``, integers of any size included (orjson stops at 64 bits)."""
    return json.dumps(value, separators=(",", ":")).encode()


def _spoil(usage_holder: dict[str, Any], key: str, output_field: str, variant: str) -> None:
    """Spoil ``usage_holder[key]`` (a usage object) as ``variant`` says."""
    if key not in usage_holder:
        return
    spoilt = SPOILT_USAGE[variant]
    if variant == "missing":
        del usage_holder[key]
    elif variant == "null":
        usage_holder[key] = None
    elif isinstance(usage_holder[key], dict):
        usage_holder[key][output_field] = spoilt


def spoil_usage(body: Any, variant: str) -> Any:
    """An OpenAI or Anthropic answer (or stream event) with its usage spoilt."""
    if not isinstance(body, dict):
        return body
    if "usage" in body and body.get("object", "").startswith("chat.completion"):
        _spoil(body, "usage", "completion_tokens", variant)
    elif body.get("type") == "message_start" and isinstance(body.get("message"), dict):
        _spoil(body["message"], "usage", "output_tokens", variant)
    elif body.get("type") in ("message", "message_delta"):
        _spoil(body, "usage", "output_tokens", variant)
    return body


class Faults:
    """An ASGI wrapper around the simulator: a request whose text (any string in its JSON body)
    carries ``[[fault MODE]]`` or ``[[fault MODE=ARG]]`` gets this instead of the simulator's
    plain answer (the simulator counts the marker as two words of the prompt):

    - ``hang``: never answers; waits until the client hangs up (then ``hung_up`` counts it).
    - ``reset``: resets the TCP connection (RST) before answering anything.
    - ``reset_after=N``: sends the answer's headers and its first N stream events (of any other
      body, its first N bytes), then resets the connection.
    - ``stall_after=N``: sends the same, then nothing more until the client hangs up (counted
      in ``hung_up`` too).
    - ``malformed``: HTTP 200, ``application/json``, with the first half of the answer (not JSON).
    - ``usage=VARIANT``: the answer with its usage spoilt (every usage object of a stream):
      the output count ``negative``, ``fractional``, ``text``, ``huge`` (past any real count)
      or ``enormous`` (past 64 bits), or the usage ``missing`` or ``null`` (SPOILT_USAGE).

    Directives for the simulator (``[[sim ...]]``) still apply to the answer spoilt. ``seen``
    counts the faults served by mode.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hung_up = 0
        self.seen: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its request was read
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        fault = self._fault(body)
        if fault is None:
            await self.app(scope, replay, send)
            return
        mode, arg = fault
        self.seen[mode] += 1
        if mode == "hang":
            while (await receive())["type"] != "http.disconnect":
                pass
            self.hung_up += 1
            return
        if mode == "reset":
            await self._reset(send, receive)
            return
        start, answer = await self._capture(scope, replay)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        streamed = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                       for k, v in headers)
        if mode in ("reset_after", "stall_after"):
            count = int(arg or 0)
            if streamed:
                events = [e for e in answer.split(b"\n\n") if e.strip()]
                cut = b"".join(event + b"\n\n" for event in events[:count])
            else:
                cut = answer[:count]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            if mode == "reset_after":
                await self._reset(send, receive)
                return
            while (await receive())["type"] != "http.disconnect":
                pass
            self.hung_up += 1
            return
        if mode == "malformed":
            answer = answer[:len(answer) // 2]
        elif mode == "usage":
            assert arg in SPOILT_USAGE, arg
            answer = self._spoilt(answer, arg, streamed)
        else:
            raise AssertionError(f"unknown fault {mode!r}")
        if not streamed:
            headers.append((b"content-length", str(len(answer)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    @staticmethod
    def _fault(body: bytes) -> tuple[str, str | None] | None:
        if b"[[fault " not in body:
            return None
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        for text in _strings(parsed, []):
            if found := _FAULT.search(text):
                return found.group(1), found.group(2)
        return None

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
        """The simulator's whole answer: its start message and its body."""
        start: Message = {}
        parts: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        return start, b"".join(parts)

    @staticmethod
    def _spoilt(answer: bytes, variant: str, streamed: bool) -> bytes:
        if not streamed:
            return _dumps(spoil_usage(orjson.loads(answer), variant))
        out = []
        for event in answer.split(b"\n\n"):
            if not event.strip():
                continue
            lines = []
            for line in event.split(b"\n"):
                if line.startswith(b"data: {"):
                    line = b"data: " + _dumps(spoil_usage(orjson.loads(line[6:]), variant))
                lines.append(line)
            out.append(b"\n".join(lines) + b"\n\n")
        return b"".join(out)

    @staticmethod
    async def _reset(send: Send, receive: Receive) -> None:
        """Reset the connection (RST, not an orderly close), once what was sent has left.

        uvicorn passes its request cycle's ``send``, which holds the connection's transport."""
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        assert transport is not None, "the server does not expose the connection's transport"
        while transport.get_write_buffer_size():
            await anyio.sleep(0.005)
        await anyio.sleep(0.1)  # let the client read what was sent before the reset
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # The server sees the connection lost: nothing more is sent on it.
        with anyio.move_on_after(5):
            while (await receive())["type"] != "http.disconnect":
                pass


def providers(up: str, timeout: float = 60.0) -> tuple[ProviderConfig, ...]:
    key = Secret(UPSTREAM_KEY)
    return (
        ProviderConfig("openai", "openai", up + "/v1", key, timeout),
        ProviderConfig("anthropic", "anthropic", up, key, timeout),
        ProviderConfig("gemini", "gemini", up, key, timeout),
        ProviderConfig("deepseek", "openai", up + "/v1", key, timeout),
        ProviderConfig("openrouter", "openai", up + "/v1", key, timeout,
                       allow_unknown_models=True),
    )


# --- gateways ------------------------------------------------------------------------------------

def marker() -> str:
    """A word unique to one request, to find it upstream."""
    return f"m{secrets.token_hex(5)}"


class Gateway:
    """A gateway served on loopback, with an admin client, a tenant and a key of user bob."""

    def __init__(self, url: str, admin: httpx.Client, upstream: Upstream,
                 app: Any = None) -> None:
        self.url = url
        self.admin = admin
        self.upstream = upstream
        #: The served app, for tests that must reach inside (a lease's clock).
        self.app = app
        self.tenant = "acme"
        self.key, self.key_id = self.new_key(user="bob")

    # keys and records
    def new_key(self, **fields: Any) -> tuple[str, str]:
        created = self.admin.post("/api/keys", json={"tenant": self.tenant, **fields})
        assert created.status_code == 201, created.text
        body = created.json()
        return body["key"], body["id"]

    def record(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The ledger record of a call, once the drainer has moved it there."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.admin.get("/api/usage", params={"request_id": request_id})
            assert answer.status_code == 200, answer.text
            records = answer.json()["records"]
            if records:
                assert len(records) == 1, records
                found: dict[str, Any] = records[0]
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{request_id} did not reach the ledger in {timeout} s")
            time.sleep(0.02)

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    # clients (callers close them: use them in ``with`` / ``async with``)
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def openai(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key or self.key,
                             max_retries=0, timeout=30, **options)

    def async_openai(self, key: str | None = None, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key or self.key,
                                  max_retries=0, timeout=30, **options)

    def anthropic(self, key: str | None = None, **options: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key or self.key, max_retries=0,
                                   timeout=30, **options)

    def async_anthropic(self, key: str | None = None, **options: Any
                        ) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key or self.key,
                                        max_retries=0, timeout=30, **options)


def add_test_prices(admin: httpx.Client) -> None:
    """The operator's own price versions from PRICE_FROM on: the operator's layer wins over
    the catalog's and genai-prices' versions, whatever their dates."""
    versions = [{"model": m, "unit": "1M", "prices": TOKEN_PRICES} for m in TOKEN_MODELS]
    for version in [*versions, *EXTRA_PRICES]:
        body = {"billing_type": "token", "currency": "USD", "effective_from": PRICE_FROM,
                **version}
        added = admin.post("/api/prices", json=body)
        assert added.status_code == 201, added.text


@contextmanager
def start_gateway(database_url: str, journal_dir: Path, up: Upstream,
                  **overrides: Any) -> Iterator[Gateway]:
    config = Config(database_url=database_url, admin_token=Secret(ADMIN_TOKEN),
                    journal_dir=str(journal_dir), providers=providers(up.url))
    config = replace(config, **overrides)
    app = create_app(config)
    with LiveServer(app) as url, \
            httpx.Client(base_url=url, headers=ADMIN, timeout=30) as admin:
        created = admin.post("/api/tenants", json={"name": "acme"})
        assert created.status_code == 201, created.text
        add_test_prices(admin)
        yield Gateway(url, admin, up, app)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway per database for the whole session (per xdist worker): tests find their
    own records by request id, so they do not see each other."""
    directory = tmp_path_factory.mktemp(f"gateway-{request.param}")
    with fresh_database(request.param, directory) as url, \
            start_gateway(url, directory / "journal", upstream) as gw:
        yield gw


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway_factory(request: pytest.FixtureRequest, upstream: Upstream, tmp_path: Path
                    ) -> Iterator[Any]:
    """Start a gateway with Config overrides (``timeout=`` sets every provider's timeout)."""
    with fresh_database(request.param, tmp_path) as url:
        started: list[Any] = []

        def start(timeout: float | None = None, **overrides: Any) -> Gateway:
            if timeout is not None:
                overrides["providers"] = providers(upstream.url, timeout)
            manager = start_gateway(url, tmp_path / "journal", upstream, **overrides)
            started.append(manager)
            return manager.__enter__()

        try:
            yield start
        finally:
            for manager in reversed(started):
                manager.__exit__(None, None, None)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite and PostgreSQL) with the shipped prices and tenant acme, for
    tests of the recorder and the journal's sink without a server."""
    engine = make_engine(database_url)
    prepare_database(engine)
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
    yield engine
    engine.dispose()
