"""Google Vertex AI (``kind = "vertex"``, issue 16.3) through the gateway, driven with the
official SDKs: ``google-genai`` (Gemini's own path, and Vertex mode with a meterline key as its
bearer token or express-mode API key), ``anthropic``'s ``AnthropicVertex`` (``rawPredict``,
``streamRawPredict``), and the OpenAI and Anthropic endpoints for models a Vertex provider
serves. Upstream is the simulator's Vertex AI, which takes only the current OAuth token of the
service account - fetched by the gateway with google-auth from the fake token endpoint named by
the key file. Every call's ledger cost equals its quote."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import google.oauth2.credentials
import pytest
from anthropic import AnthropicVertex
from anthropic._constants import ANTHROPIC_API_VERSION
from google import genai
from google.genai import types

from meterline.config import ProviderConfig, load_config
from meterline.errors import UnknownModel, UpstreamError
from meterline.gateway.cloud_auth import REFRESH_MARGIN, RETRY_SECONDS, CachedToken
from meterline.gateway.routing import Router
from meterline.simulator import SimState, create_simulator, serve_in_thread
from meterline.simulator.tokens import TokenIssuer
from tests.conftest import fresh_database
from tests.gateway.conftest import (
    PRICE_FROM,
    TEXT,
    TOKEN_PRICES,
    UPSTREAM_KEY,
    Gateway,
    Upstream,
    marker,
    money,
    providers,
    start_gateway,
    token_cost,
    words,
)
from tests.service_accounts import ServiceAccount, service_account

PROJECT, LOCATION = "proj-1", "us-central1"
VERTEX_PATH = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers"
CLAUDE = "claude-sonnet-4-5@20250929"


@dataclass
class Cloud:
    """The simulator (Vertex AI and the other providers) and its token endpoints."""

    url: str
    sim: SimState
    tokens: TokenIssuer


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    app = create_simulator(require_key=UPSTREAM_KEY, record=256)
    with serve_in_thread(app) as url:
        yield Cloud(url, app.state.sim, app.state.tokens)


def vertex_provider(directory: Path, cloud: Cloud, account: ServiceAccount | None = None,
                    name: str = "vertex") -> ProviderConfig:
    """A Vertex AI provider read from a config file, as an operator writes it."""
    config = directory / f"{name}.toml"
    config.write_text(f'[[providers]]\nname = "{name}"\nkind = "vertex"\nproject = "{PROJECT}"\n'
                      f'location = "{LOCATION}"\ncredentials_env = "SA_FILE"\n'
                      f'base_url = "{cloud.url}"\n')
    env = {"SA_FILE": str(account.path)} if account is not None else {}
    (provider,) = load_config(config, env=env).providers
    return provider


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, cloud: Cloud,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    directory = tmp_path_factory.mktemp(f"vertex-{request.param}")
    account = service_account(directory, f"{cloud.url}/token", PROJECT)
    cloud.tokens.register_service_account(account.email, account.public_key)
    configured = (*providers(cloud.url), vertex_provider(directory, cloud, account))
    with fresh_database(request.param, directory) as url, \
            start_gateway(url, directory / "journal", Upstream(cloud.url, cloud.sim),
                          providers=configured) as gw:
        added = gw.admin.post("/api/prices", json={
            "model": "vertex/claude-sonnet-4-5", "billing_type": "token", "currency": "USD",
            "unit": "1M", "effective_from": PRICE_FROM, "prices": TOKEN_PRICES})
        assert added.status_code == 201, added.text
        yield gw, f"google:{account.email}"


def one(cloud: Cloud, m: str) -> Any:
    found = [r for r in list(cloud.sim.received) if m in str(r.body)]
    assert len(found) == 1, f"{len(found)} upstream requests carry {m!r}"
    return found[0]


def checked(gw: Gateway, cloud: Cloud, identity: str, request_id: str,
            usage: dict[str, int], model: str) -> dict[str, Any]:
    """The call's record: its usage, its model, and a cost equal to the quote's."""
    record = gw.record(request_id)
    assert (record["provider"], record["model"], record["usage"], record["estimated"]) == (
        "vertex", model, usage, False)
    with gw.http() as http:
        quote = http.post("/v1/billing/quote", headers=gw.headers(), json={
            "model": record["model"], "usage": record["usage"],
            "timestamp": record["timestamp"]})
    assert quote.status_code == 200, quote.text
    assert money(record["cost"]) == token_cost(usage) == money(quote.json()["cost"])
    return record


def sent_with_token(cloud: Cloud, identity: str, sent: Any) -> None:
    assert sent.headers["authorization"] == f"Bearer {cloud.tokens.current[identity]}"
    assert "x-goog-api-key" not in sent.headers and UPSTREAM_KEY not in str(sent.headers)


def request_id(response: Any) -> str:
    found: str = response.sdk_http_response.headers["x-meterline-request-id"]
    return found


# --- Gemini on Vertex AI ------------------------------------------------------------------------

def test_gemini_native_path_reaches_vertex(gateway: tuple[Gateway, str], cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    prompt = f"{m} think [[sim cached=20 reasoning=5]]"
    with genai.Client(api_key=gw.key, http_options=types.HttpOptions(
            base_url=gw.url, api_version="v1beta", timeout=30_000)) as client:
        response = client.models.generate_content(model="vertex/gemini-2.5-flash",
                                                  contents=prompt)
    assert response.text == TEXT
    sent = one(cloud, m)
    assert sent.path == f"{VERTEX_PATH}/google/models/gemini-2.5-flash:generateContent"
    sent_with_token(cloud, identity, sent)
    usage = {"input_tokens": words(prompt) + 20, "cached_input_tokens": 20,
             "output_tokens": 21, "reasoning_tokens": 5}
    # Vertex AI's Gemini is priced as the Gemini API's (the catalog has no Vertex price).
    record = checked(gw, cloud, identity, request_id(response), usage, "gemini/gemini-2.5-flash")
    assert record["endpoint"] == "gemini"


def vertex_client(gw: Gateway, project: str = "vertex") -> genai.Client:
    """google-genai in Vertex mode, the meterline key as its OAuth token (the project names the
    gateway's provider; the provider's own project is used upstream)."""
    return genai.Client(vertexai=True, project=project, location="europe-west4",
                        credentials=google.oauth2.credentials.Credentials(token=gw.key),
                        http_options=types.HttpOptions(base_url=gw.url, timeout=30_000))


def test_google_genai_in_vertex_mode(gateway: tuple[Gateway, str], cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    with vertex_client(gw) as client:
        response = client.models.generate_content(model="gemini-2.5-flash",
                                                  contents=f"{m} hello [[sim tokens=4]]")
        chunks = list(client.models.generate_content_stream(
            model="gemini-2.5-flash", contents=f"{m}s count [[sim tokens=5 reasoning=2]]"))
    assert response.text == "lorem ipsum dolor sit"
    sent = one(cloud, f"{m} hello")
    assert sent.path == f"{VERTEX_PATH}/google/models/gemini-2.5-flash:generateContent"
    sent_with_token(cloud, identity, sent)
    checked(gw, cloud, identity, request_id(response),
            {"input_tokens": words(f"{m} hello"), "output_tokens": 4}, "gemini/gemini-2.5-flash")
    assert "".join(c.text or "" for c in chunks) == "lorem ipsum dolor sit amet"
    streamed = one(cloud, f"{m}s count")
    assert (streamed.path, streamed.query) == (
        f"{VERTEX_PATH}/google/models/gemini-2.5-flash:streamGenerateContent", {"alt": "sse"})
    checked(gw, cloud, identity, request_id(chunks[0]),
            {"input_tokens": words(f"{m}s count"), "output_tokens": 7, "reasoning_tokens": 2},
            "gemini/gemini-2.5-flash")


def test_google_genai_vertex_express_mode(gateway: tuple[Gateway, str], cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    with genai.Client(vertexai=True, api_key=gw.key, http_options=types.HttpOptions(
            base_url=gw.url, timeout=30_000)) as client:
        response = client.models.generate_content(model="gemini-2.5-flash", contents=f"{m} hi")
    assert one(cloud, m).path == f"{VERTEX_PATH}/google/models/gemini-2.5-flash:generateContent"
    checked(gw, cloud, identity, request_id(response),
            {"input_tokens": words(f"{m} hi"), "output_tokens": 16}, "gemini/gemini-2.5-flash")


def test_openai_chat_for_a_vertex_gemini_model(gateway: tuple[Gateway, str],
                                               cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    with gw.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="vertex/gemini-2.5-flash",
            messages=[{"role": "user", "content": f"{m} hi [[sim tokens=3]]"}])
        with client.chat.completions.with_streaming_response.create(
                model="vertex/gemini-2.5-flash", stream=True,
                messages=[{"role": "user", "content": f"{m}s hi [[sim tokens=2]]"}]) as streamed:
            stream_id = streamed.headers["x-meterline-request-id"]
            text = "".join(c.choices[0].delta.content or "" for c in streamed.parse()
                           if c.choices)
    assert raw.parse().choices[0].message.content == "lorem ipsum dolor" and text == "lorem ipsum"
    sent = one(cloud, f"{m} hi")
    assert sent.path == f"{VERTEX_PATH}/google/models/gemini-2.5-flash:generateContent"
    assert "contents" in sent.body and "messages" not in sent.body
    sent_with_token(cloud, identity, sent)
    checked(gw, cloud, identity, raw.headers["x-meterline-request-id"],
            {"input_tokens": words(f"{m} hi"), "output_tokens": 3}, "gemini/gemini-2.5-flash")
    checked(gw, cloud, identity, stream_id,
            {"input_tokens": words(f"{m}s hi"), "output_tokens": 2}, "gemini/gemini-2.5-flash")


# --- Claude on Vertex AI ------------------------------------------------------------------------

def anthropic_vertex(gw: Gateway) -> AnthropicVertex:
    return AnthropicVertex(base_url=f"{gw.url}/v1", access_token=gw.key, project_id="vertex",
                           region="us-east5", max_retries=0, timeout=30)


def test_anthropic_vertex_raw_predict(gateway: tuple[Gateway, str], cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    prompt = f"{m} hi [[sim tokens=4 cached=7 cache_write=3]]"
    with anthropic_vertex(gw) as client:
        raw = client.messages.with_raw_response.create(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": prompt}])
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "lorem ipsum dolor sit"
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (
        7, 3)
    sent = one(cloud, m)
    assert sent.path == f"{VERTEX_PATH}/anthropic/models/{CLAUDE}:rawPredict"
    # The version the SDK names is passed on (the gateway adds Vertex's only where none is).
    assert "model" not in sent.body and sent.body["anthropic_version"] == ANTHROPIC_API_VERSION
    sent_with_token(cloud, identity, sent)
    usage = {"input_tokens": words(prompt) + 10, "cached_input_tokens": 7,
             "cache_write_tokens": 3, "output_tokens": 4}
    record = checked(gw, cloud, identity, raw.headers["x-meterline-request-id"], usage,
                     "vertex/claude-sonnet-4-5")
    assert record["endpoint"] == "messages"


def test_anthropic_vertex_stream_raw_predict(gateway: tuple[Gateway, str],
                                             cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    prompt = f"{m} stream [[sim tokens=5 cache_write_1h=4]]"
    with anthropic_vertex(gw) as client, client.messages.stream(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        text = "".join(stream.text_stream)
        request = stream.response.headers["x-meterline-request-id"]
    assert text == "lorem ipsum dolor sit amet"
    sent = one(cloud, m)
    assert sent.path == f"{VERTEX_PATH}/anthropic/models/{CLAUDE}:streamRawPredict"
    assert sent.body["stream"] is True and "model" not in sent.body
    sent_with_token(cloud, identity, sent)
    usage = {"input_tokens": words(prompt) + 4, "cache_write_tokens": 4,
             "cache_write_1h_tokens": 4, "output_tokens": 5}
    checked(gw, cloud, identity, request, usage, "vertex/claude-sonnet-4-5")


def test_messages_endpoint_for_a_vertex_claude_model(gateway: tuple[Gateway, str],
                                                     cloud: Cloud) -> None:
    gw, identity = gateway
    m = marker()
    with gw.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model=f"vertex/{CLAUDE}", max_tokens=100,
            messages=[{"role": "user", "content": f"{m} hi [[sim tokens=2]]"}])
    sent = one(cloud, m)
    assert sent.path == f"{VERTEX_PATH}/anthropic/models/{CLAUDE}:rawPredict"
    assert "model" not in sent.body and sent.body["anthropic_version"] == "vertex-2023-10-16"
    checked(gw, cloud, identity, raw.headers["x-meterline-request-id"],
            {"input_tokens": words(f"{m} hi"), "output_tokens": 2}, "vertex/claude-sonnet-4-5")


def test_refusals_in_each_clients_shape(gateway: tuple[Gateway, str]) -> None:
    gw, _ = gateway
    with anthropic_vertex(gw) as client, pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-no-such-model", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    with gw.http() as http:
        stranger = http.post("/v1/projects/vertex/locations/x/publishers/google/models/"
                             "gemini-2.5-flash:generateContent", json={})
        other = http.post("/v1/projects/vertex/locations/x/publishers/meta/models/"
                          "llama:rawPredict", headers=gw.headers(), json={})
        not_sse = http.post("/v1beta1/publishers/google/models/gemini-2.5-flash:"
                            "streamGenerateContent", headers=gw.headers(), json={})
        listed = http.get("/v1/models", headers=gw.headers()).json()["data"]
        unknown = http.post("/v1/projects/vertex/locations/x/publishers/anthropic/models/"
                            "claude-no-such-model:rawPredict", headers=gw.headers(),
                            json={"max_tokens": 5, "messages": []})
    assert (unknown.status_code, unknown.json()["type"]) == (404, "error")  # Anthropic's shape
    assert stranger.status_code == 401
    assert other.status_code == 404 and "publishers/meta" in other.json()["error"]["message"]
    assert not_sse.status_code == 400 and "alt=sse" in not_sse.json()["error"]["message"]
    names = {entry["id"] for entry in listed}
    assert {"vertex/gemini-2.5-flash", "vertex/claude-sonnet-4-5"} <= names


def test_model_names_a_vertex_provider_serves(gateway: tuple[Gateway, str]) -> None:
    gw, _ = gateway
    book, _ = gw.app.state.gateway.metering.snapshot()
    vertex = gw.app.state.gateway.router.providers["vertex"]
    alone = Router([vertex], [])
    gemini = alone.resolve("gemini-2.5-flash", book)
    assert (gemini.provider.name, gemini.provider.wire, gemini.model) == (
        "vertex", "gemini", "gemini/gemini-2.5-flash")
    claude = alone.resolve(CLAUDE, book)
    assert (claude.provider.wire, claude.upstream_model, claude.model) == (
        "anthropic", CLAUDE, "vertex/claude-sonnet-4-5")
    # A bare name another provider has as its own is that provider's.
    both = Router([ProviderConfig("gemini", "gemini", "http://h"), vertex], [])
    assert both.resolve("gemini-2.5-flash", book).provider.name == "gemini"
    with pytest.raises(UnknownModel, match=r"ambiguous: name one of vertex-eu/gemini-2\.5-flash"):
        Router([vertex, replace(vertex, name="vertex-eu")], []).resolve("gemini-2.5-flash", book)
    with pytest.raises(UnknownModel):
        alone.resolve("vertex/no-such-model", book)
    unpriced = Router([replace(vertex, allow_unknown_models=True)], [])
    assert unpriced.resolve("vertex/no-such-model", book).model == "vertex/no-such-model"


# --- tokens -------------------------------------------------------------------------------------

def test_the_token_is_kept_and_renewed_before_it_expires(gateway: tuple[Gateway, str],
                                                         cloud: Cloud) -> None:
    gw, identity = gateway
    upstreams = gw.app.state.gateway.upstreams
    provider = gw.app.state.gateway.router.providers["vertex"]
    source = upstreams.tokens.source(provider)
    assert isinstance(source, CachedToken)
    now = [time.monotonic()]
    source.clock = lambda: now[0]

    def call() -> None:
        with gw.http() as http:
            answer = http.post("/v1beta/models/vertex/gemini-2.5-flash:generateContent",
                               headers=gw.headers(),
                               json={"contents": [{"parts": [{"text": "hi"}]}]})
        assert answer.status_code == 200, answer.text

    call()
    issued, token = cloud.tokens.issued[identity], cloud.tokens.current[identity]
    now[0] += 3600 - REFRESH_MARGIN - 5  # still well inside its life: kept
    call()
    assert (cloud.tokens.issued[identity], cloud.tokens.current[identity]) == (issued, token)
    now[0] += 10  # less than the margin left: renewed before the call goes out
    call()
    assert cloud.tokens.issued[identity] == issued + 1
    assert cloud.tokens.current[identity] != token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_token_endpoint_failures_are_upstream_errors(gateway_factory: Any, cloud: Cloud,
                                                     tmp_path: Path) -> None:
    down = service_account(tmp_path, f"http://127.0.0.1:{free_port()}/token")
    stranger = service_account(tmp_path, f"{cloud.url}/token")  # never registered
    gw = gateway_factory(providers=(
        vertex_provider(tmp_path, cloud, down, "vx-down"),
        vertex_provider(tmp_path, cloud, stranger, "vx-stranger"),
        vertex_provider(tmp_path, cloud, None, "vx-unset")))
    with gw.http() as http:
        answers = {name: http.post(f"/v1beta/models/{name}/gemini-2.5-flash:generateContent",
                                   headers=gw.headers(),
                                   json={"contents": [{"parts": [{"text": "hi"}]}]})
                   for name in ("vx-down", "vx-stranger", "vx-unset")}
    messages = {name: answer.json()["error"]["message"] for name, answer in answers.items()}
    assert {answer.status_code for answer in answers.values()} == {502}
    assert "cannot reach the token endpoint http://127.0.0.1:" in messages["vx-down"]
    assert "refused the service account" in messages["vx-stranger"]
    assert "account not found" in messages["vx-stranger"]
    assert "SA_FILE" in messages["vx-unset"] and "not set" in messages["vx-unset"]
    record = gw.record(answers["vx-down"].headers["x-meterline-request-id"])
    assert (record["status"], money(record["cost"])) == ("error", Decimal(0))


# --- the token cache on its own -----------------------------------------------------------------

class Fetches:
    """A token endpoint: answers token-1, token-2, … (each valid an hour), or fails."""

    def __init__(self) -> None:
        self.count = 0
        self.failing = False
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> tuple[str, float]:
        await self.release.wait()
        if self.failing:
            raise UpstreamError("p: cannot reach the token endpoint")
        self.count += 1
        return f"token-{self.count}", 3600.0


def test_one_fetch_serves_every_waiting_call() -> None:
    async def scenario() -> None:
        fetch = Fetches()
        fetch.release.clear()
        cache = CachedToken(fetch, clock=lambda: 0.0)
        waiting = [asyncio.create_task(cache.token()) for _ in range(5)]
        await asyncio.sleep(0)
        waiting[0].cancel()  # a caller gone does not cancel the fetch the others wait for
        fetch.release.set()
        results = await asyncio.gather(*waiting[1:])
        assert results == ["token-1"] * 4 and fetch.count == 1 == cache.fetches

    asyncio.run(scenario())


def test_a_failed_renewal_keeps_the_valid_token_and_waits_to_retry() -> None:
    async def scenario() -> None:
        fetch, now = Fetches(), [0.0]
        cache = CachedToken(fetch, clock=lambda: now[0])
        assert await cache.token() == "token-1"
        fetch.failing = True
        now[0] = 3600 - REFRESH_MARGIN + 1  # due for renewal, still valid
        assert await cache.token() == "token-1"
        fetch.failing = False
        now[0] += RETRY_SECONDS - 1  # no retry yet
        assert await cache.token() == "token-1" and fetch.count == 1
        now[0] += 2
        assert await cache.token() == "token-2"
        fetch.failing = True
        now[0] += 3600  # expired: the failure is the call's
        with pytest.raises(UpstreamError, match="cannot reach"):
            await cache.token()

    asyncio.run(scenario())
