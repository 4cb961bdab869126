"""The LiteLLM importer: names, meters, tiers, exactness and refusal of bad rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.catalog.litellm import ImportResult, parse_litellm
from meterline.catalog.shipped import CatalogEntries
from meterline.domain.money import MONEY_CONTEXT
from meterline.domain.prices import PriceVersion, UnitPrice
from meterline.domain.rating import rate
from meterline.domain.usage import BillingType, Meter, Usage
from meterline.errors import InvalidPrice

START = datetime(2026, 3, 1, tzinfo=UTC)
AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
M = 1_000_000

SAMPLE = b"""{
    "sample_spec": {
        "input_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "max_input_tokens": "max input tokens, if the provider specifies it",
        "mode": "one of: chat, embedding, completion, image_generation"
    },
    "gpt-4o-mini": {
        "cache_read_input_token_cost": 7.5e-08,
        "input_cost_per_token": 1.5e-07,
        "litellm_provider": "openai",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "max_tokens": 16384,
        "mode": "chat",
        "output_cost_per_token": 6e-07,
        "supports_prompt_caching": true
    },
    "o3-mini": {
        "input_cost_per_token": 1.1e-06,
        "litellm_provider": "openai",
        "mode": "chat",
        "output_cost_per_reasoning_token": 4.4e-06,
        "output_cost_per_token": 4.4e-06
    },
    "claude-sonnet-4-5": {
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "cache_read_input_token_cost": 3e-07,
        "cache_read_input_token_cost_above_200k_tokens": 6e-07,
        "input_cost_per_token": 3e-06,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "litellm_provider": "anthropic",
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "mode": "chat",
        "output_cost_per_token": 1.5e-05,
        "output_cost_per_token_above_200k_tokens": 2.25e-05
    },
    "gemini-1.5-pro": {
        "input_cost_per_character": 3.125e-07,
        "input_cost_per_token": 1.25e-06,
        "litellm_provider": "vertex_ai-language-models",
        "mode": "chat",
        "output_cost_per_image": 0.00263,
        "output_cost_per_token": 9e-06
    },
    "gemini/gemini-1.5-pro": {
        "input_cost_per_token": 1.25e-06,
        "input_cost_per_token_above_128k_tokens": 2.5e-06,
        "litellm_provider": "gemini",
        "max_input_tokens": 2097152,
        "max_output_tokens": 8192,
        "mode": "chat",
        "output_cost_per_token": 5e-06,
        "output_cost_per_token_above_128k_tokens": 1e-05
    },
    "text-embedding-3-small": {
        "input_cost_per_token": 2e-08,
        "litellm_provider": "openai",
        "max_input_tokens": 8191,
        "max_tokens": 8191,
        "mode": "embedding",
        "output_cost_per_token": 0.0
    },
    "tts-1": {
        "input_cost_per_character": 1.5e-05,
        "litellm_provider": "openai",
        "mode": "audio_speech"
    },
    "whisper-1": {
        "input_cost_per_second": 0.0001,
        "litellm_provider": "openai",
        "mode": "audio_transcription",
        "output_cost_per_second": 0.0001
    },
    "aiml/flux/schnell": {
        "litellm_provider": "aiml",
        "mode": "image_generation",
        "output_cost_per_image": 0.004
    },
    "gemini/gemini-2.5-flash-image": {
        "input_cost_per_token": 3e-07,
        "litellm_provider": "gemini",
        "mode": "image_generation",
        "output_cost_per_image": 0.039,
        "output_cost_per_token": 2.5e-06
    },
    "sora-2": {
        "litellm_provider": "openai",
        "mode": "video_generation",
        "output_cost_per_video_per_second": 0.1
    },
    "deepseek/deepseek-chat": {
        "cache_read_input_token_cost": 2.8e-08,
        "input_cost_per_token": 2.8e-07,
        "litellm_provider": "deepseek",
        "mode": "chat",
        "output_cost_per_token": 4.2e-07
    },
    "dashscope/qwen3-max": {
        "litellm_provider": "dashscope",
        "max_input_tokens": 258048,
        "mode": "chat",
        "tiered_pricing": [
            {"input_cost_per_token": 1.2e-06, "output_cost_per_token": 6e-06,
             "range": [0, 32000.0]},
            {"input_cost_per_token": 2.4e-06, "output_cost_per_token": 1.2e-05,
             "range": [32000.0, 128000.0]},
            {"input_cost_per_token": 3e-06, "range": [128000.0, 252000.0]}
        ]
    },
    "volcengine/doubao-seed-1-6": {
        "input_cost_per_token": 1.1e-07,
        "litellm_provider": "volcengine",
        "mode": "chat",
        "output_cost_per_token": 1.1e-06
    },
    "openrouter/anthropic/claude-3.5-sonnet": {
        "input_cost_per_token": 3e-06,
        "litellm_provider": "openrouter",
        "mode": "chat",
        "output_cost_per_token": 1.5e-05
    },
    "azure/gpt-4o": {
        "input_cost_per_token": 2.5e-06,
        "litellm_provider": "azure",
        "mode": "chat",
        "output_cost_per_token": 1e-05
    },
    "mistral/mistral-large-latest": {
        "input_cost_per_token": 2e-06,
        "litellm_provider": "mistral",
        "mode": "chat",
        "output_cost_per_token": 6e-06
    },
    "ft:gpt-4o-mini-exact": {
        "input_cost_per_token": 1.23456789012345678901e-06,
        "litellm_provider": "openai",
        "mode": "chat",
        "output_cost_per_token": 3.3333333333333335e-07
    },
    "omni-moderation-latest": {
        "input_cost_per_token": 0.0,
        "litellm_provider": "openai",
        "mode": "moderation",
        "output_cost_per_token": 0.0
    },
    "256-x-256/dall-e-2": {
        "input_cost_per_pixel": 2.4414e-07,
        "litellm_provider": "openai",
        "mode": "image_generation",
        "output_cost_per_pixel": 0.0
    },
    "azure/hd/1024-x-1024/dall-e-3": {
        "input_cost_per_pixel": 8.39233e-08,
        "litellm_provider": "azure",
        "mode": "image_generation",
        "output_cost_per_token": 0.0
    },
    "no-provider-model": {
        "input_cost_per_token": 1e-06,
        "mode": "chat"
    },
    "exa_ai/search": {
        "litellm_provider": "exa_ai",
        "mode": "search",
        "tiered_pricing": [
            {"input_cost_per_query": 0.005, "max_results_range": [0, 25]},
            {"input_cost_per_query": 0.025, "max_results_range": [26, 100]}
        ]
    }
}"""


@pytest.fixture(scope="module")
def result() -> ImportResult:
    return parse_litellm(SAMPLE, effective_from=START)


@pytest.fixture(scope="module")
def by_model(result: ImportResult) -> dict[str, PriceVersion]:
    return {v.model: v for v in result.versions}


def per_unit(version: PriceVersion, meter: Meter) -> Decimal:
    price = version.prices[meter]
    return MONEY_CONTEXT.divide(price.price, price.per)  # exact: 60 digits


def cost(version: PriceVersion, **usage: int | str) -> Decimal:
    return rate(Usage.of(**usage), version, AT).total.number


# -- names, providers, skipping ----------------------------------------------------------------


def test_models_are_named_provider_slash_model_with_meterline_provider_names(
    by_model: dict[str, PriceVersion],
) -> None:
    assert sorted(by_model) == sorted([
        "openai/gpt-4o-mini",
        "openai/o3-mini",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-1.5-pro",
        "openai/text-embedding-3-small",
        "openai/tts-1",
        "openai/whisper-1",
        "aiml/flux/schnell",
        "gemini/gemini-2.5-flash-image",
        "openai/sora-2",
        "deepseek/deepseek-chat",
        "qwen/qwen3-max",
        "volcano/doubao-seed-1-6",
        "openrouter/anthropic/claude-3.5-sonnet",
        "azure/gpt-4o",
        "mistral/mistral-large-latest",
        "openai/ft:gpt-4o-mini-exact",
        "openai/omni-moderation-latest",
    ])


def test_sample_spec_is_neither_imported_nor_counted(result: ImportResult) -> None:
    assert "sample_spec" not in result.skipped
    assert not any("sample_spec" in v.model for v in result.versions)


def test_entries_without_a_usable_price_are_skipped_and_listed_in_file_order(
    result: ImportResult,
) -> None:
    assert result.skipped == [
        "256-x-256/dall-e-2: no price meterline can use (input_cost_per_pixel)",
        # a zero token price beside its real per-pixel price
        "azure/hd/1024-x-1024/dall-e-3: its token prices are 0 while it is priced otherwise "
        "(input_cost_per_pixel)",
        "no-provider-model: no litellm_provider",
        "exa_ai/search: no price meterline can use",  # per-query tiers only
    ]


def test_a_free_model_with_no_other_price_is_imported_at_zero(
    by_model: dict[str, PriceVersion],
) -> None:
    free = by_model["openai/omni-moderation-latest"]
    assert free.prices[Meter.INPUT_TOKENS].price == 0
    assert cost(free, input_tokens=1000) == 0


def test_the_providers_own_entry_wins_over_a_mapped_one_whatever_the_order(
    result: ImportResult, by_model: dict[str, PriceVersion],
) -> None:
    gemini = by_model["gemini/gemini-1.5-pro"]  # Vertex's entry came first in the file
    assert per_unit(gemini, Meter.OUTPUT_TOKENS) == Decimal("5E-6")
    assert len(gemini.tiers) == 1
    assert result.duplicates == ["gemini-1.5-pro"]


def test_which_of_two_keys_for_one_model_wins() -> None:
    doc = {
        "vertex_ai/gemini-2.0-flash": {"litellm_provider": "vertex_ai-language-models",
                                       "input_cost_per_token": 1.5e-07},
        "gemini/gemini-2.0-flash": {"litellm_provider": "gemini", "input_cost_per_token": 1e-07},
        "deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.7e-07},
        "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.8e-07},
        "deepseek/deepseek-reasoner": {"litellm_provider": "deepseek",
                                       "input_cost_per_token": 5.5e-07},
        "deepseek-reasoner": {"litellm_provider": "deepseek", "input_cost_per_token": 5e-07},
        "o1": {"litellm_provider": "openai", "input_cost_per_token": 1.5e-05},
        "openai/o1": {"litellm_provider": "openai", "input_cost_per_token": 1.5e-05},
    }
    result = parse_litellm(doc, effective_from=START)
    got = {v.model: per_unit(v, Meter.INPUT_TOKENS) for v in result.versions}
    assert got == {
        "gemini/gemini-2.0-flash": Decimal("1E-7"),     # the provider's own entry
        "deepseek/deepseek-chat": Decimal("2.8E-7"),    # the key that names its provider
        "deepseek/deepseek-reasoner": Decimal("5.5E-7"),
        "openai/o1": Decimal("0.000015"),
    }
    assert result.duplicates == ["vertex_ai/gemini-2.0-flash", "deepseek-chat",
                                 "deepseek-reasoner", "o1"]


def test_result_carries_catalog_entries(result: ImportResult) -> None:
    assert isinstance(result.entries, CatalogEntries)
    assert result.versions is result.entries.versions
    assert result.aliases == []


def test_every_version_is_usd_from_the_given_moment_with_its_origin(
    result: ImportResult,
) -> None:
    assert {v.currency for v in result.versions} == {"USD"}
    assert {v.effective_from for v in result.versions} == {START}
    assert {v.source for v in result.versions} == {"litellm:file"}
    other = parse_litellm(SAMPLE, effective_from=datetime(2026, 3, 1), origin="upstream.json")
    assert {v.effective_from for v in other.versions} == {START}  # naive means UTC
    assert {v.source for v in other.versions} == {"litellm:upstream.json"}


def test_limits_come_from_max_output_and_max_input_tokens(
    by_model: dict[str, PriceVersion],
) -> None:
    mini = by_model["openai/gpt-4o-mini"]
    assert (mini.max_output_tokens, mini.context_window) == (16384, 128000)
    embedding = by_model["openai/text-embedding-3-small"]
    assert (embedding.max_output_tokens, embedding.context_window) == (None, 8191)
    assert by_model["qwen/qwen3-max"].context_window == 258048
    assert by_model["openai/tts-1"].context_window is None


def test_legacy_max_tokens_is_the_window_only_when_nothing_else_is_known() -> None:
    doc: dict[str, Any] = {
        "a": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "max_tokens": 4096},
        "b": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "max_tokens": 4096,
              "max_output_tokens": 4096},
        "c": {"litellm_provider": "openai", "input_cost_per_token": 1e-06,
              "max_input_tokens": "lots", "max_output_tokens": -1},
    }
    got = {v.model: v for v in parse_litellm(doc, effective_from=START).versions}
    assert got["openai/a"].context_window == 4096
    assert got["openai/b"].context_window is None
    assert got["openai/b"].max_output_tokens == 4096
    assert (got["openai/c"].context_window, got["openai/c"].max_output_tokens) == (None, None)


# -- exactness ---------------------------------------------------------------------------------


def test_prices_are_the_numbers_written_in_the_file(by_model: dict[str, PriceVersion]) -> None:
    mini = by_model["openai/gpt-4o-mini"]
    assert per_unit(mini, Meter.INPUT_TOKENS) == Decimal("1.5E-7")
    assert mini.prices[Meter.INPUT_TOKENS] == UnitPrice(Decimal("0.15"), M)
    assert mini.prices[Meter.OUTPUT_TOKENS] == UnitPrice(Decimal("0.6"), M)
    assert mini.prices[Meter.CACHED_INPUT_TOKENS] == UnitPrice(Decimal("0.075"), M)
    assert mini.to_json()["prices"] == {
        "input_tokens": "0.15", "output_tokens": "0.6", "cached_input_tokens": "0.075",
    }


def test_one_hour_cache_writes_get_their_own_price(by_model: dict[str, PriceVersion]) -> None:
    sonnet = by_model["anthropic/claude-sonnet-4-5"]
    assert sonnet.prices[Meter.CACHE_WRITE_1H_TOKENS] == UnitPrice(Decimal("6"), M)
    assert sonnet.prices[Meter.CACHE_WRITE_TOKENS] == UnitPrice(Decimal("3.75"), M)


def test_rating_a_thousand_tokens_is_exact(by_model: dict[str, PriceVersion]) -> None:
    rating = rate(Usage.of(input_tokens=1000), by_model["openai/gpt-4o-mini"], AT)
    assert rating.total.number == Decimal("0.00015")
    assert rating.to_json()["cost"] == "0.00015"
    assert rating.lines[0].to_json()["amount"] == "0.00015"


def test_digits_beyond_a_float_are_kept(by_model: dict[str, PriceVersion]) -> None:
    exact = by_model["openai/ft:gpt-4o-mini-exact"]
    assert per_unit(exact, Meter.INPUT_TOKENS) == Decimal("1.23456789012345678901E-6")
    assert float(per_unit(exact, Meter.INPUT_TOKENS)) == 1.23456789012345678901e-06
    # what a float parse would have given instead:
    assert Decimal(json.loads("1.23456789012345678901e-06")) != Decimal("1.23456789012345678901E-6")
    assert per_unit(exact, Meter.OUTPUT_TOKENS) == Decimal("3.3333333333333335E-7")
    assert cost(exact, input_tokens=10**7) == Decimal("12.3456789012345678901")


def test_text_input_and_parsed_mapping_input_give_the_same_prices() -> None:
    from_bytes = parse_litellm(SAMPLE, effective_from=START).versions
    from_text = parse_litellm(SAMPLE.decode(), effective_from=START).versions
    from_floats = parse_litellm(json.loads(SAMPLE), effective_from=START).versions
    from_decimals = parse_litellm(json.loads(SAMPLE, parse_float=Decimal),
                                  effective_from=START).versions
    for other in (from_text, from_floats, from_decimals):
        assert [v.to_json() for v in other if "exact" not in v.model] == [
            v.to_json() for v in from_bytes if "exact" not in v.model
        ]
    # a float that already lost digits is taken as its shortest repr, not its binary value
    floats = {v.model: v for v in from_floats}
    assert per_unit(floats["openai/gpt-4o-mini"], Meter.INPUT_TOKENS) == Decimal("1.5E-7")


def test_numeric_strings_are_read_and_null_means_no_price() -> None:
    doc = {"m": {"litellm_provider": "openai", "input_cost_per_token": " 2.5e-06 ",
                 "output_cost_per_token": None, "cache_read_input_token_cost": 0}}
    (version,) = parse_litellm(doc, effective_from=START).versions
    assert per_unit(version, Meter.INPUT_TOKENS) == Decimal("2.5E-6")
    assert per_unit(version, Meter.CACHED_INPUT_TOKENS) == 0
    assert Meter.OUTPUT_TOKENS not in version.prices


def test_versions_survive_the_catalog_round_trip(result: ImportResult) -> None:
    for version in result.versions:
        again = PriceVersion.parse(version.to_json())
        assert again.same_prices(version)
        assert again.id == version.id


@given(st.decimals(min_value=0, max_value=Decimal("1000"), allow_nan=False,
                   allow_infinity=False))
def test_any_written_number_is_the_price_per_token(number: Decimal) -> None:
    text = str(number)
    doc = b'{"m": {"litellm_provider": "openai", "input_cost_per_token": ' + text.encode() + b"}}"
    (version,) = parse_litellm(doc, effective_from=START).versions
    assert per_unit(version, Meter.INPUT_TOKENS) == number
    assert rate(Usage.of(input_tokens=7), version, AT).total.number == (
        MONEY_CONTEXT.multiply(number, 7)
    )


# -- meters by kind of model ------------------------------------------------------------------


def test_cache_prices_and_cache_tokens(by_model: dict[str, PriceVersion]) -> None:
    claude = by_model["anthropic/claude-sonnet-4-5"]
    assert per_unit(claude, Meter.CACHED_INPUT_TOKENS) == Decimal("3E-7")
    assert per_unit(claude, Meter.CACHE_WRITE_TOKENS) == Decimal("3.75E-6")
    # 10,000 prompt tokens of which 4,000 cache reads and 1,000 cache writes, 500 output:
    # 5,000 × 3e-6 + 4,000 × 3e-7 + 1,000 × 3.75e-6 + 500 × 1.5e-5
    rating = rate(Usage.of(input_tokens=10_000, cached_input_tokens=4_000,
                           cache_write_tokens=1_000, output_tokens=500), claude, AT)
    assert [(line.meter, line.amount) for line in rating.lines] == [
        ("input_tokens", Decimal("0.015")),
        ("cached_input_tokens", Decimal("0.0012")),
        ("cache_write_tokens", Decimal("0.00375")),
        ("output_tokens", Decimal("0.0075")),
    ]
    assert rating.total.number == Decimal("0.02745")


def test_above_200k_fields_form_a_tier(by_model: dict[str, PriceVersion]) -> None:
    claude = by_model["anthropic/claude-sonnet-4-5"]
    (tier,) = claude.tiers
    assert tier.above_input_tokens == 200_000
    assert {m: MONEY_CONTEXT.divide(p.price, p.per) for m, p in tier.prices.items()} == {
        Meter.INPUT_TOKENS: Decimal("6E-6"),
        Meter.OUTPUT_TOKENS: Decimal("2.25E-5"),
        Meter.CACHED_INPUT_TOKENS: Decimal("6E-7"),
        Meter.CACHE_WRITE_TOKENS: Decimal("7.5E-6"),
    }
    assert cost(claude, input_tokens=200_000) == Decimal("0.6")
    assert cost(claude, input_tokens=200_001) == Decimal("1.200006")


def test_above_128k_fields_form_a_tier(by_model: dict[str, PriceVersion]) -> None:
    gemini = by_model["gemini/gemini-1.5-pro"]
    assert [t.above_input_tokens for t in gemini.tiers] == [128_000]
    assert cost(gemini, input_tokens=128_000, output_tokens=1000) == Decimal("0.165")
    assert cost(gemini, input_tokens=128_001, output_tokens=1000) == Decimal("0.3300025")


def test_reasoning_tokens_have_their_own_price(by_model: dict[str, PriceVersion]) -> None:
    o3 = by_model["openai/o3-mini"]
    assert per_unit(o3, Meter.REASONING_TOKENS) == Decimal("4.4E-6")
    assert cost(o3, output_tokens=1000, reasoning_tokens=600) == Decimal("0.0044")


def test_dashscope_tiered_pricing_becomes_base_and_tiers(
    by_model: dict[str, PriceVersion],
) -> None:
    qwen = by_model["qwen/qwen3-max"]
    assert qwen.prices == {Meter.INPUT_TOKENS: UnitPrice(Decimal("1.2"), M),
                           Meter.OUTPUT_TOKENS: UnitPrice(Decimal("6"), M)}
    assert [t.above_input_tokens for t in qwen.tiers] == [32_000, 128_000]
    assert qwen.tiers[0].prices[Meter.OUTPUT_TOKENS] == UnitPrice(Decimal("12"), M)
    assert Meter.OUTPUT_TOKENS not in qwen.tiers[1].prices  # no output price of its own
    assert cost(qwen, input_tokens=32_000, output_tokens=100) == Decimal("0.0390")
    assert cost(qwen, input_tokens=32_001, output_tokens=100) == Decimal("0.0780024")


def test_a_tier_without_a_price_of_its_own_uses_the_entrys_flat_price() -> None:
    """As LiteLLM bills it: a missing tier rate falls back to the model's flat rate."""
    doc = {"dashscope/qwen-x": {
        "litellm_provider": "dashscope", "output_cost_per_token": 1.6e-06,
        "tiered_pricing": [
            {"range": [0, 1000], "input_cost_per_token": 4e-07, "output_cost_per_token": 1.2e-06},
            {"range": [1000, 5000], "input_cost_per_token": 8e-07},
        ],
    }}
    (qwen,) = parse_litellm(doc, effective_from=START).versions
    assert cost(qwen, input_tokens=1000, output_tokens=1000) == Decimal("0.0016")
    assert cost(qwen, input_tokens=1001, output_tokens=1000) == Decimal("0.0024008")


def test_embedding_prices_input_tokens(by_model: dict[str, PriceVersion]) -> None:
    embedding = by_model["openai/text-embedding-3-small"]
    assert embedding.billing_type is BillingType.TOKEN
    assert cost(embedding, input_tokens=1_000_000) == Decimal("0.02")


def test_tts_is_priced_per_character(by_model: dict[str, PriceVersion]) -> None:
    tts = by_model["openai/tts-1"]
    assert tts.billing_type is BillingType.CHARACTER
    assert dict(tts.prices) == {Meter.CHARACTERS: UnitPrice(Decimal("15"), M)}
    assert cost(tts, characters=1000) == Decimal("0.015")


def test_transcription_is_priced_per_input_second(by_model: dict[str, PriceVersion]) -> None:
    whisper = by_model["openai/whisper-1"]
    assert whisper.billing_type is BillingType.SECOND
    assert dict(whisper.prices) == {Meter.SECONDS: UnitPrice(Decimal("0.0001"), 1)}
    assert cost(whisper, seconds="90.5") == Decimal("0.00905")


def test_video_is_priced_per_output_second(by_model: dict[str, PriceVersion]) -> None:
    sora = by_model["openai/sora-2"]
    assert sora.billing_type is BillingType.SECOND
    assert dict(sora.prices) == {Meter.SECONDS: UnitPrice(Decimal("0.1"), 1)}
    assert cost(sora, seconds=8) == Decimal("0.8")


def test_image_models_are_priced_per_image(by_model: dict[str, PriceVersion]) -> None:
    flux = by_model["aiml/flux/schnell"]
    assert flux.billing_type is BillingType.COUNT
    assert dict(flux.prices) == {Meter.IMAGES: UnitPrice(Decimal("0.004"), 1)}
    assert cost(flux, images=3) == Decimal("0.012")
    nano = by_model["gemini/gemini-2.5-flash-image"]
    assert nano.billing_type is BillingType.COUNT
    assert nano.prices[Meter.IMAGES] == UnitPrice(Decimal("0.039"), 1)
    assert per_unit(nano, Meter.INPUT_TOKENS) == Decimal("3E-7")


def test_chat_models_ignore_per_image_and_per_character_input_figures() -> None:
    doc = {"gemini-1.5-pro": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
                              "input_cost_per_token": 1.25e-06, "output_cost_per_image": 0.00263,
                              "input_cost_per_character": 3.125e-07,
                              "input_cost_per_second": 0.0001}}
    (version,) = parse_litellm(doc, effective_from=START).versions
    assert version.model == "gemini/gemini-1.5-pro"
    assert set(version.prices) == {Meter.INPUT_TOKENS}


def test_first_non_zero_candidate_field_wins() -> None:
    doc = {"stt": {"litellm_provider": "deepgram", "mode": "audio_transcription",
                   "input_cost_per_second": 0.0, "output_cost_per_second": 7.167e-05},
           "deepgram/nova-3": {"litellm_provider": "deepgram", "mode": "audio_transcription",
                               "input_cost_per_second": 7.167e-05, "output_cost_per_second": 0.0}}
    got = {v.model: v for v in parse_litellm(doc, effective_from=START).versions}
    assert got["deepgram/stt"].prices[Meter.SECONDS].price == Decimal("0.00007167")
    assert got["deepgram/nova-3"].prices[Meter.SECONDS].price == Decimal("0.00007167")


# -- bad input -----------------------------------------------------------------------------------


GOOD = '"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06}'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_cost_per_token", "-1.5e-07"),
        ("output_cost_per_token", '"cheap"'),
        ("output_cost_per_token", "true"),
        ("cache_read_input_token_cost", "[1e-07]"),
        ("cache_creation_input_token_cost", '{"a": 1}'),
        ("input_cost_per_token", '"NaN"'),
        ("input_cost_per_token", "NaN"),
        ("output_cost_per_token", "-Infinity"),
        ("output_cost_per_reasoning_token", '"-0.1"'),
        ("input_cost_per_token_above_200k_tokens", "-6e-06"),
        ("input_cost_per_character", '"x"'),
        ("output_cost_per_image", "-0.04"),
        ("input_cost_per_second", '"1/60"'),
    ],
)
def test_a_bad_price_raises_naming_the_key_and_the_field(field: str, value: str) -> None:
    data = f'{{{GOOD}, "bad-model": {{"litellm_provider": "openai", "{field}": {value}}}}}'
    with pytest.raises(InvalidPrice) as caught:
        parse_litellm(data.encode(), effective_from=START, origin="prices.json")
    message = str(caught.value)
    assert message.startswith("prices.json: bad-model: ")
    assert field in message
    assert caught.value.field == field
    assert caught.value.context["model"] == "bad-model"


def test_a_bad_price_in_a_mapping_raises_too() -> None:
    doc = {"ok": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
           "bad": {"litellm_provider": "openai", "output_cost_per_token": float("inf")}}
    with pytest.raises(InvalidPrice, match="bad: output_cost_per_token"):
        parse_litellm(doc, effective_from=START)


def test_a_bad_price_is_refused_even_where_the_meter_is_not_used() -> None:
    data = {"chat": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06,
                     "output_cost_per_image": "free"}}
    with pytest.raises(InvalidPrice, match="chat: output_cost_per_image"):
        parse_litellm(data, effective_from=START)


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ('{"range": [0, 10]}', None),
        ('[{"range": "0-32k", "input_cost_per_token": 1e-06}]', "tiered_pricing[0].range"),
        ('[{"range": [-1, 5], "input_cost_per_token": 1e-06}]', "tiered_pricing[0].range"),
        ('[{"range": [0.5, 5], "input_cost_per_token": 1e-06}]', "tiered_pricing[0].range"),
        ('[{"range": [0, 5], "input_cost_per_token": -1e-06}]',
         "tiered_pricing[0].input_cost_per_token"),
        ("[7]", "tiered_pricing[0]"),
    ],
)
def test_bad_tiered_pricing_raises(tiers: str, field: str | None) -> None:
    data = f'{{"qwen-x": {{"litellm_provider": "dashscope", "tiered_pricing": {tiers}}}}}'
    with pytest.raises(InvalidPrice, match="qwen-x: tiered_pricing") as caught:
        parse_litellm(data, effective_from=START)
    assert caught.value.field == (field or "tiered_pricing")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{not json", "file: not valid JSON"),
        (b"\xff\xfe\x00", "file: not valid JSON"),
        (b"[1, 2]", "must be an object of model entries"),
        (b'{"gpt-4o": 5}', "file: gpt-4o: an entry must be an object"),
    ],
)
def test_malformed_documents_raise(data: bytes, match: str) -> None:
    with pytest.raises(InvalidPrice, match=match):
        parse_litellm(data, effective_from=START)


def test_an_empty_document_imports_nothing() -> None:
    result = parse_litellm(b"{}", effective_from=START)
    assert (result.versions, result.skipped, result.duplicates) == ([], [], [])
