"""Azure OpenAI (``kind = "azure"``, issue 16.4): a deployment's path with its ``api-version``,
or Azure's v1 API; the ``api-key`` header; usage read as OpenAI's. Driven with the official
``openai`` SDK against the gateway, streamed and not; config refusals named."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.config import ProviderConfig, Secret, load_config
from meterline.errors import InvalidInput
from tests.gateway.conftest import (
    UPSTREAM_KEY,
    Upstream,
    marker,
    money,
    providers,
    token_cost,
    words,
)

VERSION = "2024-10-21"


@pytest.fixture
def azure(gateway_factory: Any, upstream: Upstream) -> Any:
    key = Secret(UPSTREAM_KEY)
    gateway = gateway_factory(providers=(
        *providers(upstream.url),
        ProviderConfig("azure", "azure", upstream.url, key, 60.0, api_version=VERSION),
        ProviderConfig("azure-v1", "azure", upstream.url, key, 60.0)))
    for model in ("azure/prod-gpt", "azure-v1/gpt-5-nano"):
        answer = gateway.admin.post("/api/prices", json={
            "model": model, "billing_type": "token", "currency": "USD", "unit": "1M",
            "effective_from": "2026-11-01",
            "prices": {"input_tokens": "1", "cached_input_tokens": "0.1",
                       "output_tokens": "2"}})
        assert answer.status_code == 201, answer.text
    return gateway


def test_a_deployment_is_called_with_its_api_version_and_key(azure: Any) -> None:
    m = marker()
    prompt = f"{m} hello [[sim cached=2]]"
    with azure.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="azure/prod-gpt", messages=[{"role": "user", "content": prompt}])
    sent = azure.upstream.one(m)
    assert sent.path == "/openai/deployments/prod-gpt/chat/completions"
    assert sent.query == {"api-version": VERSION}
    assert sent.headers["api-key"] == UPSTREAM_KEY and "authorization" not in sent.headers
    record = azure.record(raw.headers["x-meterline-request-id"])
    usage = {"input_tokens": words(prompt) + 2, "cached_input_tokens": 2, "output_tokens": 16}
    assert (record["provider"], record["usage"]) == ("azure", usage)
    assert money(record["cost"]) == token_cost(usage) == money(raw.headers["x-meterline-cost"])


def test_the_v1_api_streamed(azure: Any) -> None:
    m = marker()
    with azure.openai() as client, client.chat.completions.with_streaming_response.create(
            model="azure-v1/gpt-5-nano", stream=True,
            messages=[{"role": "user", "content": f"{m} hi [[sim tokens=3]]"}]) as raw:
        request_id = raw.headers["x-meterline-request-id"]
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "lorem ipsum dolor"
    sent = azure.upstream.one(m)
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.body["model"] == "gpt-5-nano" and sent.body["stream_options"] == {
        "include_usage": True}
    record = azure.record(request_id)
    assert record["usage"] == {"input_tokens": words(f"{m} hi [[sim tokens=3]]"),
                               "output_tokens": 3}
    assert record["estimated"] is False


def test_api_version_belongs_to_azure_providers_only(tmp_path: Any) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text('[[providers]]\nname = "x"\nkind = "openai"\nbase_url = "http://h"\n'
                      'api_version = "2024-10-21"\n')
    with pytest.raises(InvalidInput, match="api_version"):
        load_config(config, env={})
    config.write_text('[[providers]]\nname = "az"\nkind = "azure"\nbase_url = "http://h/"\n'
                      'api_version = "2024-10-21"\n')
    (provider,) = load_config(config, env={}).providers
    assert (provider.kind, provider.wire, provider.api_version) == ("azure", "openai",
                                                                     "2024-10-21")
