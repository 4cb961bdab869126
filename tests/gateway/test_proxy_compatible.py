"""The OpenAI-compatible Chinese providers through the gateway (issue 16), one by one: each
configured with its real base URL's path in front of the simulator speaking its dialect (its own
usage fields, and its stream's usage where it sends it), driven with the official ``openai``
SDK, streamed and not. A tenant billed in CNY calls a CNY-priced model of the shipped catalog;
the ledger's usage is what the provider reported and its cost equals the quote.

Also the per-call cost a provider reports (issue 16, item B): read where the provider's
``cost_field`` says, kept beside meterline's price, and flagged when the two differ — in the
provider's declared currency."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.config import ProviderConfig, Secret, load_config
from meterline.errors import InvalidInput
from tests.conftest import fresh_database
from tests.gateway.conftest import (
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

#: provider -> (base URL path below the simulator, a CNY-priced model of the shipped catalog)
CHINESE = {"deepseek": ("", "deepseek-v4-flash"),
           "qwen": ("/compatible-mode/v1", "qwen-max"),
           "volcano": ("/api/v3", "doubao-seed-1.6"),
           "zhipu": ("/api/paas/v4", "glm-4.5"),
           "baidu": ("/v2", "ernie-4.5-turbo-128k"),
           "minimax": ("/v1", "MiniMax-M2"),
           "moonshot": ("/v1", "kimi-k2.5")}
#: Where the per-call cost comes in the tests of item B.
COST_FIELD = "billing.total_cost"


def configured(up: Upstream) -> tuple[ProviderConfig, ...]:
    key = Secret(UPSTREAM_KEY)
    plain = tuple(p for p in providers(up.url) if p.name != "deepseek")
    return (*plain,
            *(ProviderConfig(name, "openai", up.url + path, key, 60.0)
              for name, (path, _) in CHINESE.items()),
            ProviderConfig("costly", "openai", up.url + "/v1", key, 60.0,
                           cost_field=COST_FIELD, cost_currency="USD"),
            ProviderConfig("costly-cny", "openai", up.url + "/v1", key, 60.0,
                           cost_field=COST_FIELD, cost_currency="CNY"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cn(request: pytest.FixtureRequest, upstream: Upstream,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with every Chinese provider configured; its key is a CNY tenant's."""
    directory = tmp_path_factory.mktemp(f"compatible-{request.param}")
    with fresh_database(request.param, directory) as url, \
            start_gateway(url, directory / "journal", upstream,
                          providers=configured(upstream)) as gw:
        created = gw.admin.post("/api/tenants", json={"name": "acme-cn", "currency": "CNY"})
        assert created.status_code == 201, created.text
        for model in ("costly/gpt-5-nano", "costly-cny/gpt-5-nano"):
            added = gw.admin.post("/api/prices", json={
                "model": model, "billing_type": "token", "currency": "USD", "unit": "1M",
                "effective_from": "2026-11-01",
                "prices": {"input_tokens": "1", "output_tokens": "2"}})
            assert added.status_code == 201, added.text
        rate = gw.admin.post("/api/fx", json={"base": "USD", "quote": "CNY", "rate": "7",
                                              "effective_from": "2020-01-01T00:00:00Z"})
        assert rate.status_code == 201, rate.text
        gw.tenant = "acme-cn"
        gw.key, gw.key_id = gw.new_key()
        yield gw


def expected_usage(provider: str, prompt: str, *, cached: int, reasoning: int,
                   tokens: int) -> dict[str, int]:
    """What each provider's usage says, in meterline's meters: MiniMax reports no cache hits
    (they are plain input), Zhipu and Moonshot no reasoning split."""
    usage = {"input_tokens": words(prompt) + cached, "output_tokens": tokens + reasoning}
    if provider != "minimax":
        usage["cached_input_tokens"] = cached
    if provider not in ("zhipu", "moonshot"):
        usage["reasoning_tokens"] = reasoning
    return usage


def quoted(gateway: Gateway, model: str, record: dict[str, Any]) -> dict[str, Any]:
    with gateway.http() as http:
        answer = http.post("/v1/billing/quote", headers=gateway.headers(), json={
            "model": model, "usage": record["usage"], "timestamp": record["timestamp"]})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def check_billed(gateway: Gateway, model: str, record: dict[str, Any],
                 usage: dict[str, int]) -> None:
    assert (record["status"], record["estimated"], record["pricing"]) == (
        "success", False, "priced"), record
    assert record["usage"] == usage
    quote = quoted(gateway, model, record)
    assert (record["currency"], quote["currency"]) == ("CNY", "CNY")
    assert money(record["cost"]) == money(quote["cost"]) > 0
    assert record["price_version"] == quote["price_version"]


@pytest.mark.parametrize("provider", sorted(CHINESE))
def test_an_answer_is_metered_from_the_providers_own_usage_fields(
        cn: Gateway, provider: str) -> None:
    path, upstream_model = CHINESE[provider]
    model = f"{provider}/{upstream_model}"
    m = marker()
    prompt = f"{m} summarise the report [[sim tokens=6 cached=30 reasoning=5]]"
    with cn.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": prompt}])
    reply = raw.parse()
    message = reply.choices[0].message
    assert message.content == "lorem ipsum dolor sit amet consectetur"
    assert message.model_extra and message.model_extra["reasoning_content"] == \
        "lorem ipsum dolor sit amet"
    sent = cn.upstream.one(m)
    assert sent.path == f"{path}/chat/completions" and sent.body["model"] == upstream_model
    record = cn.record(raw.headers["x-meterline-request-id"])
    usage = expected_usage(provider, prompt, cached=30, reasoning=5, tokens=6)
    check_billed(cn, model, record, usage)
    assert money(raw.headers["x-meterline-cost"]) == money(record["cost"])
    assert raw.headers["x-meterline-currency"] == "CNY"


@pytest.mark.parametrize("provider", sorted(CHINESE))
def test_a_stream_is_metered_from_its_usage_wherever_the_provider_sends_it(
        cn: Gateway, provider: str) -> None:
    _, upstream_model = CHINESE[provider]
    model = f"{provider}/{upstream_model}"
    prompt = f"{marker()} list three cities [[sim tokens=3 cached=12 reasoning=2]]"
    with cn.openai() as client, client.chat.completions.with_streaming_response.create(
            model=model, stream=True,
            messages=[{"role": "user", "content": prompt}]) as raw:
        request_id = raw.headers["x-meterline-request-id"]
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
                        for c in chunks if c.choices)
    assert (text, reasoning) == ("lorem ipsum dolor", "lorem ipsum")
    # A usage chunk of its own is dropped, since the client did not ask for it; usage that
    # comes with the answer's last chunk is the provider's answer and passes unchanged.
    assert all(c.choices for c in chunks)
    record = cn.record(request_id)
    usage = expected_usage(provider, prompt, cached=12, reasoning=2, tokens=3)
    check_billed(cn, model, record, usage)


def test_dashscope_explicit_cache_writes_are_billed_as_cache_writes(cn: Gateway) -> None:
    prompt = f"{marker()} long context [[sim cached=100 cache_write=400]]"
    with cn.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="qwen/qwen-plus", messages=[{"role": "user", "content": prompt}])
    record = cn.record(raw.headers["x-meterline-request-id"])
    usage = {"input_tokens": words(prompt) + 500, "cached_input_tokens": 100,
             "cache_write_tokens": 400, "output_tokens": 16}
    check_billed(cn, "qwen/qwen-plus", record, usage)


# --- the provider's own cost of a call (item B) -------------------------------------------------

def cost_call(gateway: Gateway, model: str, cost: Decimal, *, stream: bool = False,
              key: str | None = None) -> dict[str, Any]:
    prompt = f"{marker()} hi [[sim tokens=4 cost={cost} cost_in={COST_FIELD}]]"
    messages = [{"role": "user", "content": prompt}]
    with gateway.openai(key=key) as client:
        if stream:
            with client.chat.completions.with_streaming_response.create(
                    model=model, messages=messages, stream=True) as raw:  # type: ignore[arg-type]
                list(raw.parse())
                request_id = raw.headers["x-meterline-request-id"]
        else:
            answer = client.chat.completions.with_raw_response.create(
                model=model, messages=messages)  # type: ignore[arg-type]
            request_id = answer.headers["x-meterline-request-id"]
    return gateway.record(request_id)


def usd_tenant_key(gateway: Gateway) -> str:
    """A key of tenant acme, billed in USD."""
    created = gateway.admin.post("/api/keys", json={"tenant": "acme"})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


#: The call above: 2 words of prompt (the directive is not counted), 4 of answer, at the
#: test's 1 and 2 USD per million tokens.
OURS_USD = token_cost({"input_tokens": 2, "output_tokens": 4})


@pytest.mark.parametrize("stream", [False, True])
def test_a_declared_cost_is_kept_and_a_difference_flagged(cn: Gateway, stream: bool) -> None:
    usd_key = usd_tenant_key(cn)
    same = cost_call(cn, "costly/gpt-5-nano", OURS_USD, stream=stream, key=usd_key)
    assert (money(same["cost"]), same["currency"]) == (OURS_USD, "USD")
    assert (money(same["upstream_cost"]), same["cost_mismatch"]) == (OURS_USD, False)
    double = cost_call(cn, "costly/gpt-5-nano", OURS_USD * 2, stream=stream, key=usd_key)
    assert (money(double["upstream_cost"]), double["cost_mismatch"]) == (OURS_USD * 2, True)


def test_a_cost_in_the_tenants_currency_is_compared_with_the_billed_amount(
        cn: Gateway) -> None:
    billed = OURS_USD * 7  # the CNY tenant pays the USD price at 7
    same = cost_call(cn, "costly-cny/gpt-5-nano", billed)
    assert (money(same["billed_cost"]), same["billed_currency"]) == (billed, "CNY")
    assert (money(same["upstream_cost"]), same["cost_mismatch"]) == (billed, False)
    # The USD amount, said to be CNY, is a mismatch; the same number in USD would not be.
    wrong = cost_call(cn, "costly-cny/gpt-5-nano", OURS_USD)
    assert wrong["cost_mismatch"] is True
    assert cost_call(cn, "costly/gpt-5-nano", OURS_USD)["cost_mismatch"] is False


def test_a_cost_elsewhere_than_declared_is_not_read(cn: Gateway) -> None:
    """The default ``usage.cost`` of a provider declaring another field is not its cost."""
    prompt = f"{marker()} hi [[sim tokens=4 cost=0.5]]"
    with cn.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="costly/gpt-5-nano", messages=[{"role": "user", "content": prompt}])
    record = cn.record(raw.headers["x-meterline-request-id"])
    assert (record["upstream_cost"], record["cost_mismatch"]) == (None, False)


@pytest.mark.parametrize(("setting", "refused"), [
    ('cost_field = "usage..cost"', "cost_field"), ("cost_field = 3", "cost_field"),
    ('cost_currency = "XYZ"', "cost_currency"), ("cost_currency = 840", "cost_currency")])
def test_cost_settings_are_checked(tmp_path: Path, setting: str, refused: str) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text(f'[[providers]]\nname = "x"\nbase_url = "http://h"\n{setting}\n')
    with pytest.raises(InvalidInput, match=refused):
        load_config(config, env={})


def test_cost_settings_are_read(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text('[[providers]]\nname = "p"\nbase_url = "http://h"\n'
                      'cost_field = "usage.cost.total_cost"\ncost_currency = "usd"\n'
                      '[[providers]]\nname = "q"\nbase_url = "http://h"\ncost_field = ""\n'
                      '[[providers]]\nname = "r"\nbase_url = "http://h"\n')
    p, q, r = load_config(config, env={}).providers
    assert (p.cost_path, p.cost_currency) == (("usage", "cost", "total_cost"), "USD")
    assert (q.cost_path, r.cost_path, r.cost_currency) == ((), ("usage", "cost"), None)
