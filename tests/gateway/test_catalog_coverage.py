"""The coverage list of docs/prices.md: every model in wide use is quotable on a fresh database
and served by the gateway, its ledger cost equal to its quote.

The gateway here has every provider of the list configured (in front of the simulator, which
answers any model name with OpenAI's wire format), no test prices of its own: what prices a
call is what ships — the curated catalog over genai-prices.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from meterline.config import ProviderConfig, Secret
from tests.gateway.conftest import UPSTREAM_KEY, Gateway, Upstream

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prices.md"


def coverage() -> list[str]:
    block = re.search(r"```coverage\n(.*?)```", DOCS.read_text(), re.S)
    assert block is not None, "docs/prices.md has no coverage block"
    return block.group(1).split()


def all_providers(up: Upstream, names: set[str]) -> tuple[ProviderConfig, ...]:
    return tuple(ProviderConfig(name, "openai", up.url + "/v1", Secret(UPSTREAM_KEY), 60.0)
                 for name in sorted(names))


def test_the_coverage_list_is_long_and_wide() -> None:
    models = coverage()
    assert len(models) >= 60
    assert len(set(models)) == len(models)
    providers = {m.split("/", 1)[0] for m in models}
    assert {"openai", "anthropic", "gemini", "deepseek", "xai", "qwen", "volcano", "baidu",
            "tencent", "zhipu", "moonshot", "minimax", "mistral"} <= providers


def test_every_model_of_the_coverage_list_is_quoted_and_served(
        gateway_factory: Any, upstream: Upstream) -> None:
    models = coverage()
    gateway: Gateway = gateway_factory(
        providers=all_providers(upstream, {m.split("/", 1)[0] for m in models}))
    # CNY-priced models bill this USD tenant through an FX rate.
    rate = gateway.admin.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                               "effective_from": "2020-01-01T00:00:00Z"})
    assert rate.status_code == 201, rate.text
    unserved = []
    with gateway.openai() as client, gateway.http() as http:
        for model in models:
            if "embedding" in model:
                raw: Any = client.embeddings.with_raw_response.create(model=model, input="cover")
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": f"cover {model}"}])
            record = gateway.record(raw.headers["x-meterline-request-id"])
            quote = http.post("/v1/billing/quote", headers=gateway.headers(), json={
                "model": model, "usage": record["usage"], "timestamp": record["timestamp"],
                "currency": record["currency"]})
            if (quote.status_code != 200 or record["pricing"] != "priced"
                    or record["cost"] != quote.json()["cost"]
                    or record["price_version"] != quote.json()["price_version"]):
                unserved.append((model, record["pricing"], record["cost"], quote.text[:200]))
    assert unserved == []
