"""Planning price updates: unchanged, changed (from now on), new models, never back-dated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterline.catalog.litellm import parse_litellm
from meterline.catalog.update import UpdatePlan, charges_same, load_update_source, plan_update
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.rating import rate
from meterline.domain.usage import Meter, Usage
from meterline.errors import InvalidPrice

OLD = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)
BEFORE = NOW - timedelta(microseconds=1)
USAGE = Usage.of(input_tokens=1_000_000, output_tokens=1_000_000)


def version(model: str, input_price: str, output_price: str, *, start: datetime = OLD,
            currency: str = "USD", unit: str = "1M", **extra: Any) -> PriceVersion:
    return PriceVersion.parse({
        "model": model, "currency": currency, "effective_from": start.isoformat(), "unit": unit,
        "prices": {"input_tokens": input_price, "output_tokens": output_price}, **extra,
    })


def book() -> PriceBook:
    return PriceBook([
        version("openai/gpt-4o-mini", "0.15", "0.6", max_output_tokens=16384),
        version("anthropic/claude-sonnet-4-5", "3", "15"),
        version("deepseek/deepseek-chat", "0.27", "1.1"),
        version("deepseek/deepseek-chat", "0.28", "0.42", start=datetime(2025, 9, 5, tzinfo=UTC)),
    ])


def cost(prices: PriceBook, model: str, at: datetime) -> Decimal:
    return rate(USAGE, prices.version_at(model, at), at).total.number


def apply(plan: UpdatePlan, prices: PriceBook) -> PriceBook:
    for new in plan.new_versions:
        assert new.effective_from not in {v.effective_from for v in prices.versions(new.model)}
        prices.add(new)
    return prices


LITELLM = b"""{
    "sample_spec": {"litellm_provider": "x", "input_cost_per_token": 0.0},
    "gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat", "max_output_tokens": 32768,
                    "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07},
    "claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat",
                          "input_cost_per_token": 3.3e-06, "output_cost_per_token": 1.5e-05},
    "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "mode": "chat",
                               "input_cost_per_token": 2.8e-07, "output_cost_per_token": 4.2e-07},
    "dashscope/qwen-max": {"litellm_provider": "dashscope", "mode": "chat",
                           "input_cost_per_token": 1.6e-06, "output_cost_per_token": 6.4e-06}
}"""


@pytest.fixture
def plan() -> UpdatePlan:
    incoming = parse_litellm(LITELLM, effective_from=NOW).versions
    return plan_update(book(), incoming, now=NOW)


def test_the_plan_sorts_models_into_unchanged_changed_and_new(plan: UpdatePlan) -> None:
    assert plan.unchanged == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]
    assert plan.changed_models == ["anthropic/claude-sonnet-4-5"]
    assert plan.new_models == ["qwen/qwen-max"]
    assert plan.conflicts == []
    assert [v.model for v in plan.new_versions] == ["anthropic/claude-sonnet-4-5",
                                                    "qwen/qwen-max"]
    assert not plan.empty


def test_same_prices_in_other_units_and_other_limits_are_unchanged(plan: UpdatePlan) -> None:
    # the book prices gpt-4o-mini per 1M tokens with another output limit; LiteLLM per token
    current = book().version_at("openai/gpt-4o-mini", NOW)
    incoming = parse_litellm(LITELLM, effective_from=NOW).versions[0]
    assert not current.same_prices(incoming)
    assert charges_same(current, incoming)
    assert "openai/gpt-4o-mini" in plan.unchanged


def test_a_changed_price_starts_now_and_history_keeps_the_old_one(plan: UpdatePlan) -> None:
    (new,) = [v for v in plan.new_versions if v.model == "anthropic/claude-sonnet-4-5"]
    assert new.effective_from == NOW
    assert new.id == f"anthropic/claude-sonnet-4-5@{NOW.isoformat()}"
    assert new.prices[Meter.INPUT_TOKENS].price / new.prices[Meter.INPUT_TOKENS].per == (
        Decimal("3.3E-6")
    )
    prices = apply(plan, book())
    model = "anthropic/claude-sonnet-4-5"
    assert cost(prices, model, BEFORE) == Decimal("18")  # 3 + 15, as before the update
    assert cost(prices, model, OLD) == Decimal("18")
    assert cost(prices, model, NOW) == Decimal("18.3")  # 3.3 + 15 from now on
    assert prices.version_at(model, BEFORE).id == f"{model}@{OLD.isoformat()}"
    assert [v.effective_from for v in prices.versions(model)] == [OLD, NOW]


def test_a_new_model_keeps_its_own_effective_from() -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    incoming = [version("qwen/qwen-plus", "0.4", "1.2", start=start)]
    plan = plan_update(book(), incoming, now=NOW)
    assert plan.new_models == ["qwen/qwen-plus"]
    assert [v.effective_from for v in plan.new_versions] == [start]
    assert cost(apply(plan, book()), "qwen/qwen-plus", start) == Decimal("1.6")


def test_every_version_of_a_new_model_is_added() -> None:
    first, second = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)
    incoming = [version("qwen/qwen-plus", "0.8", "2", start=second),
                version("qwen/qwen-plus", "0.4", "1.2", start=first)]
    plan = plan_update(book(), incoming, now=NOW)
    assert [v.effective_from for v in plan.new_versions] == [first, second]


def test_an_update_is_never_back_dated() -> None:
    """A dated catalog saying a price changed in the past changes it from now on only."""
    back = datetime(2026, 1, 1, tzinfo=UTC)
    incoming = [version("anthropic/claude-sonnet-4-5", "2", "10", start=back)]
    plan = plan_update(book(), incoming, now=NOW)
    assert [(v.model, v.effective_from) for v in plan.new_versions] == [
        ("anthropic/claude-sonnet-4-5", NOW)
    ]
    prices = apply(plan, book())
    assert cost(prices, "anthropic/claude-sonnet-4-5", back) == Decimal("18")
    assert cost(prices, "anthropic/claude-sonnet-4-5", BEFORE) == Decimal("18")
    assert cost(prices, "anthropic/claude-sonnet-4-5", NOW) == Decimal("12")
    for new in plan_update(book(), parse_litellm(LITELLM, effective_from=OLD).versions,
                           now=NOW).new_versions:
        if new.model in book():
            assert new.effective_from == NOW


def test_the_version_compared_is_the_one_in_force_now() -> None:
    # deepseek's book has an older 0.27/1.1 and a current 0.28/0.42 version
    incoming = [version("deepseek/deepseek-chat", "0.27", "1.1", start=NOW)]
    plan = plan_update(book(), incoming, now=NOW)
    assert plan.changed_models == ["deepseek/deepseek-chat"]
    incoming = [version("deepseek/deepseek-chat", "0.28", "0.42", start=NOW)]
    assert plan_update(book(), incoming, now=NOW).unchanged == ["deepseek/deepseek-chat"]


def test_a_future_version_is_scheduled_at_its_own_moment() -> None:
    later = NOW + timedelta(days=30)
    incoming = [version("openai/gpt-4o-mini", "0.15", "0.6", start=OLD),
                version("openai/gpt-4o-mini", "0.1", "0.4", start=later)]
    plan = plan_update(book(), incoming, now=NOW)
    assert [(v.effective_from, v.id) for v in plan.new_versions] == [
        (later, f"openai/gpt-4o-mini@{later.isoformat()}")
    ]
    assert plan.changed_models == ["openai/gpt-4o-mini"]
    prices = apply(plan, book())
    assert cost(prices, "openai/gpt-4o-mini", NOW) == Decimal("0.75")
    assert cost(prices, "openai/gpt-4o-mini", later) == Decimal("0.5")
    # a scheduled version that charges what is in force then anyway is not added
    same_later = [version("openai/gpt-4o-mini", "0.15", "0.6", start=later)]
    assert plan_update(book(), same_later, now=NOW).unchanged == ["openai/gpt-4o-mini"]


def test_a_currency_change_is_a_conflict_unless_allowed() -> None:
    incoming = [version("deepseek/deepseek-chat", "2", "3", start=NOW, currency="CNY")]
    plan = plan_update(book(), incoming, now=NOW)
    assert (plan.new_versions, plan.conflicts, plan.unchanged) == (
        [], ["deepseek/deepseek-chat"], []
    )
    assert plan.empty
    allowed = plan_update(book(), incoming, now=NOW, allow_currency_change=True)
    assert [(v.currency, v.effective_from) for v in allowed.new_versions] == [("CNY", NOW)]


def test_a_version_starting_exactly_now_is_not_replaced() -> None:
    prices = book()
    prices.add(version("anthropic/claude-sonnet-4-5", "3.1", "15", start=NOW))
    plan = plan_update(prices, [version("anthropic/claude-sonnet-4-5", "4", "20", start=NOW)],
                       now=NOW)
    assert (plan.new_versions, plan.conflicts) == ([], ["anthropic/claude-sonnet-4-5"])


def test_a_stale_source_does_not_roll_a_price_back() -> None:
    # the book moved deepseek to 0.28/0.42 on 2025-09-05; a file from before says 0.27/1.1
    stale = [version("deepseek/deepseek-chat", "0.27", "1.1", start=OLD)]
    plan = plan_update(book(), stale, now=NOW)
    assert (plan.new_versions, plan.conflicts) == ([], ["deepseek/deepseek-chat"])


def test_a_scheduled_version_of_the_book_is_not_replaced() -> None:
    later = NOW + timedelta(days=10)
    prices = book()
    prices.add(version("openai/gpt-4o-mini", "0.1", "0.4", start=later))
    clash = [version("openai/gpt-4o-mini", "0.12", "0.5", start=later)]
    plan = plan_update(prices, clash, now=NOW)
    assert (plan.new_versions, plan.conflicts) == ([], ["openai/gpt-4o-mini"])
    same = [version("openai/gpt-4o-mini", "0.1", "0.4", start=later)]
    assert plan_update(prices, same, now=NOW).unchanged == ["openai/gpt-4o-mini"]


def test_a_model_with_only_future_prices_in_the_book_gets_one_from_now() -> None:
    later = NOW + timedelta(days=10)
    prices = PriceBook([version("openai/gpt-5", "1.25", "10", start=later)])
    plan = plan_update(prices, [version("openai/gpt-5", "1", "8", start=OLD)], now=NOW)
    assert [v.effective_from for v in plan.new_versions] == [NOW]
    assert cost(apply(plan, prices), "openai/gpt-5", later) == Decimal("11.25")


def test_a_naive_now_is_utc() -> None:
    incoming = [version("anthropic/claude-sonnet-4-5", "2", "10", start=NOW)]
    plan = plan_update(book(), incoming, now=NOW.replace(tzinfo=None))
    assert [v.effective_from for v in plan.new_versions] == [NOW]


def test_charges_same_compares_what_a_call_costs() -> None:
    base = version("m/x", "1", "2", unit="1M")
    assert charges_same(base, version("m/x", "0.000001", "0.000002", unit="1",
                                      start=NOW, source="elsewhere", context_window=5))
    assert charges_same(base, version("m/x", "0.001", "0.002", unit="1K", billing_type="count"))
    assert not charges_same(base, version("m/x", "1", "2.0000000001"))
    assert not charges_same(base, version("m/x", "1", "2", currency="CNY"))
    assert not charges_same(base, version("m/x", "1", "2", minimum_charge="0.01"))
    tiered = version("m/x", "1", "2", tiers=[{"above_input_tokens": 200000,
                                                "prices": {"input_tokens": "2"}}])
    assert not charges_same(base, tiered)
    assert charges_same(tiered, version("m/x", "0.000001", "2", tiers=[
        {"above_input_tokens": 200000, "prices": {"input_tokens": "0.000002"}}],
        units={"input_tokens": "1"}))


# -- load_update_source --------------------------------------------------------------------------


def test_a_litellm_file_is_recognised_and_starts_now() -> None:
    versions = load_update_source(LITELLM, now=NOW)
    assert [v.model for v in versions] == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5",
                                           "deepseek/deepseek-chat", "qwen/qwen-max"]
    assert {v.effective_from for v in versions} == {NOW}
    assert versions[0].prices[Meter.INPUT_TOKENS].price == Decimal("0.15")
    assert {v.source for v in versions} == {"litellm:update"}


CATALOG = {
    "provider": "deepseek",
    "models": [
        {"model": "deepseek-chat", "currency": "USD", "effective_from": "2025-09-05",
         "unit": "1M", "prices": {"input_tokens": "0.28", "output_tokens": "0.42"},
         "aliases": ["deepseek-v3.2"]},
        {"model": "deepseek-reasoner", "currency": "USD", "unit": "1M",
         "prices": {"input_tokens": "0.28", "output_tokens": "0.42"}},
    ],
}


def test_a_meterline_catalog_is_recognised() -> None:
    versions = load_update_source(json.dumps(CATALOG).encode(), now=NOW)
    assert [(v.model, v.effective_from) for v in versions] == [
        ("deepseek/deepseek-chat", datetime(2025, 9, 5, tzinfo=UTC)),
        ("deepseek/deepseek-reasoner", NOW),  # no effective_from: starts now
    ]
    plan = plan_update(book(), versions, now=NOW)
    assert plan.unchanged == ["deepseek/deepseek-chat"]
    assert plan.new_models == ["deepseek/deepseek-reasoner"]


def test_a_list_of_catalogs_and_versions_is_recognised() -> None:
    other = {"provider": "qwen", "models": [
        {"model": "qwen-max", "currency": "CNY", "effective_from": "2025-01-01",
         "prices": {"input_tokens": "0.0000024", "output_tokens": "0.0000096"}}]}
    single = {"model": "openai/gpt-4o-mini", "currency": "USD", "unit": "1M",
              "prices": {"input_tokens": "0.15", "output_tokens": "0.6"}}
    versions = load_update_source(json.dumps([CATALOG, other, single]).encode(), now=NOW)
    assert [v.model for v in versions] == ["deepseek/deepseek-chat", "deepseek/deepseek-reasoner",
                                           "qwen/qwen-max", "openai/gpt-4o-mini"]
    assert versions[2].currency == "CNY"
    assert versions[3].effective_from == NOW


def test_numbers_in_a_catalog_file_are_read_exactly() -> None:
    data = (b'{"provider": "openai", "models": [{"model": "gpt-x", "currency": "USD", '
            b'"unit": "1", "prices": {"input_tokens": 1.23456789012345678901e-06}}]}')
    (read,) = load_update_source(data, now=NOW)
    assert read.prices[Meter.INPUT_TOKENS].price == Decimal("1.23456789012345678901E-6")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"nonsense", "update: not valid JSON"),
        (b"42", "not a price file meterline knows"),
        (b'{"gpt-4o": {"litellm_provider": "openai"}, "note": "x"}',
         "not a price file meterline knows"),
        (b"[1]", r"update\[0\]: must be a catalog object"),
        (b'[{"model": "a/b", "currency": "USD", "prices": {"input_tokens": "-1"}}]',
         r"update\[0\]: .*must not be negative"),
        (b'{"provider": "openai", "models": [{"model": "m", "currency": "XXX", "prices": {}}]}',
         r"update: models\[0\]"),
        (b'{"m": {"litellm_provider": "openai", "input_cost_per_token": -1}}',
         "update: m: input_cost_per_token"),
    ],
)
def test_bad_sources_raise_invalid_price(data: bytes, match: str) -> None:
    with pytest.raises(InvalidPrice, match=match):
        load_update_source(data, now=NOW)
