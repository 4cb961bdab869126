"""Azure OpenAI authenticated with Entra ID (issue 16.4): the gateway fetches a token with the
client credentials grant from the (fake) authority, sends ``Authorization: Bearer`` and no
``api-key``, keeps the token and renews it before it expires. The upstream is the simulator
behind ``EntraGate``, which takes only the current Entra ID token on Azure's paths. Clients use
the ``openai`` SDK with their meterline key; every call's ledger cost equals its quote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meterline.config import ProviderConfig, load_config
from meterline.gateway.cloud_auth import REFRESH_MARGIN, CachedToken
from meterline.simulator import SimState, create_simulator, serve_in_thread
from meterline.simulator.tokens import EntraGate, TokenIssuer
from tests.conftest import fresh_database
from tests.gateway.conftest import (
    PRICE_FROM,
    TOKEN_PRICES,
    Gateway,
    Upstream,
    marker,
    money,
    start_gateway,
    token_cost,
    words,
)

TENANT, CLIENT, SECRET = "contoso-tenant", "meterline-app", "entra-s3cret"
VERSION = "2024-10-21"


@dataclass
class Azure:
    url: str
    sim: SimState
    tokens: TokenIssuer
    gate: EntraGate


@pytest.fixture(scope="module")
def azure() -> Iterator[Azure]:
    # No API key at all: the gate takes Entra ID tokens only.
    app = create_simulator(record=256)
    tokens: TokenIssuer = app.state.tokens
    # An application per gateway (one per database): the fake keeps one current token per
    # application, and two gateways would each replace the other's.
    for database in ("sqlite", "postgresql"):
        tokens.register_entra_app(TENANT, f"{CLIENT}-{database}", SECRET)
    tokens.register_entra_app(TENANT, CLIENT, SECRET)
    gate = EntraGate(app, tokens)
    with serve_in_thread(gate) as url:
        yield Azure(url, app.state.sim, tokens, gate)


def entra_provider(directory: Path, azure: Azure, secret: str | None = SECRET,
                   name: str = "azure", version: str | None = VERSION,
                   client: str = CLIENT) -> ProviderConfig:
    config = directory / f"{name}.toml"
    config.write_text(
        f'[[providers]]\nname = "{name}"\nkind = "azure"\nbase_url = "{azure.url}"\n'
        + (f'api_version = "{version}"\n' if version else "")
        + f'entra_tenant_id = "{TENANT}"\nentra_client_id = "{client}"\n'
        f'entra_client_secret_env = "AZURE_SECRET"\nentra_authority = "{azure.url}"\n')
    env = {"AZURE_SECRET": secret} if secret is not None else {}
    (provider,) = load_config(config, env=env).providers
    return provider


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, azure: Azure,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    directory = tmp_path_factory.mktemp(f"entra-{request.param}")
    client = f"{CLIENT}-{request.param}"
    configured = (entra_provider(directory, azure, client=client),
                  entra_provider(directory, azure, name="azure-v1", version=None,
                                 client=client))
    with fresh_database(request.param, directory) as url, \
            start_gateway(url, directory / "journal", Upstream(azure.url, azure.sim),
                          providers=configured) as gw:
        for model in ("azure/prod-gpt", "azure-v1/gpt-5-nano"):
            added = gw.admin.post("/api/prices", json={
                "model": model, "billing_type": "token", "currency": "USD", "unit": "1M",
                "effective_from": PRICE_FROM, "prices": TOKEN_PRICES})
            assert added.status_code == 201, added.text
        yield gw, f"entra:{TENANT}/{client}"


def one(azure: Azure, m: str) -> Any:
    found = [r for r in list(azure.sim.received) if m in str(r.body)]
    assert len(found) == 1, f"{len(found)} upstream requests carry {m!r}"
    return found[0]


def checked(gw: Gateway, request_id: str, usage: dict[str, int], model: str) -> None:
    record = gw.record(request_id)
    assert (record["model"], record["usage"], record["estimated"]) == (model, usage, False)
    with gw.http() as http:
        quote = http.post("/v1/billing/quote", headers=gw.headers(), json={
            "model": record["model"], "usage": record["usage"],
            "timestamp": record["timestamp"]})
    assert quote.status_code == 200, quote.text
    assert money(record["cost"]) == token_cost(usage) == money(quote.json()["cost"])


def test_a_deployment_is_called_with_an_entra_token(gateway: tuple[Gateway, str],
                                                    azure: Azure) -> None:
    gw, identity = gateway
    m = marker()
    prompt = f"{m} hello [[sim cached=2]]"
    with gw.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="azure/prod-gpt", messages=[{"role": "user", "content": prompt}])
    sent = one(azure, m)
    assert sent.path == "/openai/deployments/prod-gpt/chat/completions"
    assert sent.query == {"api-version": VERSION}
    assert sent.headers["authorization"] == f"Bearer {azure.tokens.current[identity]}"
    assert "api-key" not in sent.headers
    usage = {"input_tokens": words(prompt) + 2, "cached_input_tokens": 2, "output_tokens": 16}
    checked(gw, raw.headers["x-meterline-request-id"], usage, "azure/prod-gpt")


def test_the_v1_api_streamed_with_an_entra_token(gateway: tuple[Gateway, str],
                                                 azure: Azure) -> None:
    gw, identity = gateway
    m = marker()
    prompt = f"{m} hi [[sim tokens=3]]"
    with gw.openai() as client, client.chat.completions.with_streaming_response.create(
            model="azure-v1/gpt-5-nano", stream=True,
            messages=[{"role": "user", "content": prompt}]) as raw:
        request_id = raw.headers["x-meterline-request-id"]
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "lorem ipsum dolor"
    sent = one(azure, m)
    assert sent.path == "/openai/v1/chat/completions" and "api-key" not in sent.headers
    assert sent.headers["authorization"] == f"Bearer {azure.tokens.current[identity]}"
    # Both providers use the same application: one token serves them.
    state = gw.app.state.gateway
    assert state.upstreams.tokens.source(state.router.providers["azure"]) is \
        state.upstreams.tokens.source(state.router.providers["azure-v1"])
    checked(gw, request_id, {"input_tokens": words(prompt), "output_tokens": 3},
            "azure-v1/gpt-5-nano")


def test_the_token_is_kept_then_renewed(gateway: tuple[Gateway, str], azure: Azure) -> None:
    gw, identity = gateway
    source = gw.app.state.gateway.upstreams.tokens.source(
        gw.app.state.gateway.router.providers["azure"])
    assert isinstance(source, CachedToken)
    now = [time.monotonic()]
    source.clock = lambda: now[0]

    def call() -> None:
        with gw.openai() as client:
            client.chat.completions.create(model="azure/prod-gpt",
                                           messages=[{"role": "user", "content": "hi"}])

    call()
    issued, token = azure.tokens.issued[identity], azure.tokens.current[identity]
    now[0] += 3600 - REFRESH_MARGIN - 5
    call()
    assert (azure.tokens.issued[identity], azure.tokens.current[identity]) == (issued, token)
    refused = azure.gate.refused
    now[0] += 10
    call()
    # A new token was fetched first: the call went out with it, and nothing was refused.
    assert azure.tokens.issued[identity] == issued + 1 and azure.gate.refused == refused


def test_refused_client_credentials_are_an_upstream_error(gateway_factory: Any, azure: Azure,
                                                          tmp_path: Path) -> None:
    gw = gateway_factory(providers=(
        entra_provider(tmp_path, azure, secret="wrong", name="az-wrong"),
        entra_provider(tmp_path, azure, secret=None, name="az-unset")))
    for name in ("az-wrong", "az-unset"):
        added = gw.admin.post("/api/prices", json={
            "model": f"{name}/prod-gpt", "billing_type": "token", "currency": "USD",
            "unit": "1M", "effective_from": PRICE_FROM, "prices": TOKEN_PRICES})
        assert added.status_code == 201, added.text
    with gw.http() as http:
        answers = {name: http.post("/v1/chat/completions", headers=gw.headers(), json={
            "model": f"{name}/prod-gpt", "messages": [{"role": "user", "content": "hi"}]})
            for name in ("az-wrong", "az-unset")}
    assert {answer.status_code for answer in answers.values()} == {502}
    wrong = answers["az-wrong"].json()["error"]["message"]
    assert "Entra ID refused the client credentials" in wrong and "AADSTS7000215" in wrong
    assert "AZURE_SECRET" in answers["az-unset"].json()["error"]["message"]
