"""Shared fixtures of the gateway tests: a simulated upstream on loopback, and gateways in front
of it served over real HTTP, driven with the official SDKs.

``upstream`` is one simulator per test process (it requires the provider key ``sk-upstream``, so
a call only succeeds if the gateway sent the configured key). ``gateway`` is a gateway per
database (SQLite and PostgreSQL) shared by the session, with a tenant ``acme``, a key bound to
user ``bob`` and test prices in force since 2026-11-01, so that expected costs are round and
exact. ``gateway_factory`` starts a fresh one with other settings (short timeouts, a short key
cache, other providers) for one test.

Records reach the ledger through the journal and the drainer, a fraction of a second after the
response; ``Gateway.record`` polls ``GET /api/usage?request_id=`` until the record is there.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from meterline.api.app import create_app
from meterline.config import Config, ProviderConfig, Secret
from meterline.simulator import SimState, create_simulator, serve_in_thread
from meterline.simulator.directives import generated_text
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
    with serve_in_thread(app) as url:
        yield Upstream(url, app.state.sim)


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
