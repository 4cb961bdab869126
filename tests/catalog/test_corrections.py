"""Corrections to the shipped catalog (issue 11, item 4), each priced exactly from a worked example
whose unit prices come from the provider's page (or, where the page was not readable, from the
genai-prices data named in the entry's ``source``). Each example failed before its correction."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.catalog.shipped import load_catalog
from meterline.domain.pricebook import PriceBook
from meterline.domain.rating import rate
from meterline.domain.usage import Meter, Usage

D = Decimal
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # after the 2026-12-07 corrections
BOOK: PriceBook = load_catalog()


def quote(model: str, usage: Usage, at: datetime = NOW, currency: str = "USD",
          **attributes: str) -> Decimal:
    rating = rate(usage, BOOK.version_at(model, at), at, attributes)
    assert rating.currency == currency
    return rating.total.number


# --- a. Anthropic one-hour cache writes: 2x base input, on every Claude model ---------------------
# platform.claude.com/docs/en/about-claude/pricing, "1h cache writes" column.
ONE_HOUR = {
    "claude-fable-5-1": "20", "claude-mythos-5-1": "20", "claude-fable-5": "20",
    "claude-mythos-5": "20", "claude-opus-5-5": "8", "claude-opus-5": "10",
    "claude-opus-4-8": "10", "claude-opus-4-7": "10", "claude-opus-4-6": "10",
    "claude-opus-4-5": "10", "claude-opus-4-1": "30", "claude-opus-4-0": "30",
    "claude-sonnet-5-5": "4", "claude-sonnet-5": "4", "claude-sonnet-4-6": "6",
    "claude-sonnet-4-5": "6", "claude-sonnet-4-0": "6", "claude-3-7-sonnet-20250219": "6",
    "claude-3-5-sonnet-20241022": "6", "claude-haiku-5-5": "0.20",
    "claude-haiku-4-5-20251001": "2", "claude-3-5-haiku-20241022": "1.6",
    "claude-3-haiku-20240307": "0.50", "claude-3-opus-20240229": "30",
}


def test_every_claude_model_in_the_catalog_has_its_one_hour_price() -> None:
    shipped = {m.removeprefix("anthropic/") for m in BOOK.models()
               if m.startswith("anthropic/") and BOOK.knows(m)}  # the tools entry is no model
    assert shipped == set(ONE_HOUR)


@pytest.mark.parametrize(("model", "per_mtok"), sorted(ONE_HOUR.items()))
def test_one_hour_cache_writes_cost_twice_the_base_input(model: str, per_mtok: str) -> None:
    # 100,000 tokens written to the one-hour cache (and nothing else; no long-context tier):
    # a tenth of the per-MTok price.
    usage = Usage.of(input_tokens=100_000, cache_write_tokens=100_000,
                     cache_write_1h_tokens=100_000)
    version = BOOK.version_at(f"anthropic/{model}", NOW)
    assert quote(f"anthropic/{model}", usage) == D(per_mtok) / 10
    assert version.prices[Meter.INPUT_TOKENS].price * 2 == D(per_mtok)


def test_opus_4_8_call_with_one_hour_and_five_minute_writes() -> None:
    # 100,000 input tokens: 20,000 plain, 80,000 written (50,000 for an hour, 30,000 for 5 min);
    # 1,000 output. 20,000 x $5 + 30,000 x $6.25 + 50,000 x $10 + 1,000 x $25 (per MTok)
    # = $0.10 + $0.1875 + $0.50 + $0.025 = $0.8125 (before: 1h writes at $6.25 -> $0.625).
    usage = Usage.of(input_tokens=100_000, cache_write_tokens=80_000,
                     cache_write_1h_tokens=50_000, output_tokens=1_000)
    assert quote("anthropic/claude-opus-4-8", usage) == D("0.8125")


# --- b. claude-haiku-5-5 cache reads ------------------------------------------------------------
# $0.01 / MTok up to 100K prompt tokens, $0.05 above (the model page; genai-prices anthropic.yml).

def test_haiku_5_5_cache_reads() -> None:
    # 50,000 input of which 40,000 cache reads, 2,000 output:
    # 10,000 x $0.10 + 40,000 x $0.01 + 2,000 x $0.50 = $0.001 + $0.0004 + $0.001 = $0.0024
    # (before: cache reads at the $0.10 input price -> $0.006).
    usage = Usage.of(input_tokens=50_000, cached_input_tokens=40_000, output_tokens=2_000)
    assert quote("anthropic/claude-haiku-5-5", usage) == D("0.0024")


def test_haiku_5_5_cache_reads_in_a_long_prompt() -> None:
    # 150,000 prompt tokens (> 100K: every token at the long-prompt rates), 100,000 cache reads,
    # 1,000 output: 50,000 x $0.50 + 100,000 x $0.05 + 1,000 x $2.50 = $0.025 + $0.005 + $0.0025
    usage = Usage.of(input_tokens=150_000, cached_input_tokens=100_000, output_tokens=1_000)
    assert quote("anthropic/claude-haiku-5-5", usage) == D("0.0325")


# --- c. Sonnet 4 / 4.5 long context (> 200K input) prices cache reads and writes too ------------
# Long context: input $6, output $22.50; caching multipliers on top: reads $0.60, 5m writes $7.50,
# 1h writes $12. The shipped versions from launch now name the cache meters (corrected in place);
# the 2026-12-07 versions add the one-hour price.
LONG = Usage.of(input_tokens=500_000, cached_input_tokens=300_000, cache_write_tokens=100_000,
                output_tokens=10_000)


@pytest.mark.parametrize(("model", "at"), [
    ("anthropic/claude-sonnet-4-5", datetime(2026, 1, 15, tzinfo=UTC)),
    ("anthropic/claude-sonnet-4-0", datetime(2025, 10, 1, tzinfo=UTC)),
    ("anthropic/claude-sonnet-4-5", NOW),
    ("anthropic/claude-sonnet-4-0", NOW),
], ids=str)
def test_sonnet_4_long_context_tier_prices_cache_tokens(model: str, at: datetime) -> None:
    # 100,000 plain x $6 + 300,000 reads x $0.60 + 100,000 writes x $7.50 + 10,000 out x $22.50
    # = $0.60 + $0.18 + $0.75 + $0.225 = $1.755 (before: reads and writes at the base $0.30 /
    # $3.75 -> $1.29).
    assert quote(model, LONG, at) == D("1.755")


def test_sonnet_4_5_long_context_one_hour_writes() -> None:
    usage = Usage.of(input_tokens=250_000, cache_write_tokens=200_000,
                     cache_write_1h_tokens=200_000)
    # 50,000 x $6 + 200,000 x $12 = $0.30 + $2.40
    assert quote("anthropic/claude-sonnet-4-5", usage) == D("2.70")


# --- d. OpenAI long-context tiers (> 272K input): 2x input and cache, 1.5x output ---------------
# genai-prices openai.yml (gpt-6-astra, gpt-5.6-terra, gpt-5.6-luna).

def test_gpt_6_astra_above_272k() -> None:
    # 300,000 input of which 100,000 cached, 5,000 output:
    # 200,000 x $20 + 100,000 x $2 + 5,000 x $75 = $4.00 + $0.20 + $0.375 (before, no tier: $2.35)
    usage = Usage.of(input_tokens=300_000, cached_input_tokens=100_000, output_tokens=5_000)
    assert quote("openai/gpt-6-astra", usage) == D("4.575")


def test_gpt_6_astra_up_to_272k_is_unchanged() -> None:
    usage = Usage.of(input_tokens=272_000, cached_input_tokens=72_000, output_tokens=1_000)
    # 200,000 x $10 + 72,000 x $1 + 1,000 x $50 = $2.00 + $0.072 + $0.05
    assert quote("openai/gpt-6-astra", usage) == D("2.122")


@pytest.mark.parametrize(("model", "total"), [
    # 100,000 x $4 + 200,000 x $0.40 + 100,000 x $5 + 10,000 x $18 = 0.4 + 0.08 + 0.5 + 0.18
    ("openai/gpt-5.6-terra", "1.16"),
    # 100,000 x $0.40 + 200,000 x $0.04 + 100,000 x $0.50 + 10,000 x $1.80
    ("openai/gpt-5.6-luna", "0.116"),
], ids=str)
def test_gpt_5_6_long_context_cache_rates(model: str, total: str) -> None:
    usage = Usage.of(input_tokens=400_000, cached_input_tokens=200_000,
                     cache_write_tokens=100_000, output_tokens=10_000)
    assert quote(model, usage) == D(total)


# --- e. grok-4.20: $1.25 / $0.20 / $2.50 from 2026-04-30, 2x at 200K prompt tokens or more ------
# genai-prices x_ai.yml (xAI cut Grok 4.20 from $2/$6 on 2026-04-30; reasoning, non-reasoning and
# multi-agent price the same).
MAY = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GROK = ["xai/grok-4.20-0309-reasoning", "xai/grok-4.20-0309-non-reasoning",
        "xai/grok-4.20-multi-agent-0309"]


@pytest.mark.parametrize("model", GROK)
@pytest.mark.parametrize("at", [MAY, NOW], ids=["2026-06", "now"])
def test_grok_4_20_prices_after_the_cut(model: str, at: datetime) -> None:
    # 100,000 input of which 20,000 cached, 5,000 output:
    # 80,000 x $1.25 + 20,000 x $0.20 + 5,000 x $2.50 = $0.10 + $0.004 + $0.0125
    # (before: $2 / $6 -> $0.194)
    usage = Usage.of(input_tokens=100_000, cached_input_tokens=20_000, output_tokens=5_000)
    assert quote(model, usage, at) == D("0.1165")


@pytest.mark.parametrize("model", GROK)
def test_grok_4_20_long_prompt(model: str) -> None:
    # 200,000 prompt tokens is ">= 200k": 200,000 x $2.50 + 1,000 x $5.00
    usage = Usage.of(input_tokens=200_000, output_tokens=1_000)
    assert quote(model, usage, MAY) == D("0.505")


# --- f. DeepSeek: peak only Monday to Friday, Beijing time, except Chinese public holidays --------
# api-docs.deepseek.com/zh-cn/quick_start/pricing: peak 09:00-12:00 and 14:00-18:00 Beijing time
# Monday-Friday (not on Chinese public holidays); weekends (from 2026-08-23) and holidays are
# off-peak all day. Off-peak is half the peak price.
MILLION = Usage.of(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.mark.parametrize(("at", "total"), [
    (datetime(2026, 8, 29, 2, 0, tzinfo=UTC), "2.64"),   # Saturday 10:00 Beijing: off-peak
    (datetime(2026, 8, 30, 7, 0, tzinfo=UTC), "2.64"),   # Sunday 15:00 Beijing: off-peak
    (datetime(2026, 8, 31, 2, 0, tzinfo=UTC), "5.28"),   # Monday 10:00 Beijing: peak
    (datetime(2026, 8, 31, 4, 30, tzinfo=UTC), "2.64"),  # Monday 12:30 Beijing: lunch, off-peak
    (datetime(2026, 9, 4, 9, 59, tzinfo=UTC), "5.28"),   # Friday 17:59 Beijing: peak
], ids=str)
def test_deepseek_v4_pro_usd_peak_on_weekdays_only(at: datetime, total: str) -> None:
    # 1M input x $0.66 + 1M output x $1.98 = $2.64 off-peak; $1.32 + $3.96 = $5.28 peak
    assert quote("deepseek/deepseek-v4-pro", MILLION, at) == D(total)


@pytest.mark.parametrize(("model", "at", "total"), [
    ("deepseek/deepseek-flash", datetime(2026, 12, 8, 2, 0, tzinfo=UTC), "10"),   # Tuesday: peak
    ("deepseek/deepseek-flash", datetime(2026, 12, 12, 2, 0, tzinfo=UTC), "5"),   # Saturday
    ("deepseek/deepseek-flash", datetime(2027, 1, 1, 2, 0, tzinfo=UTC), "5"),     # New Year, Fri
    ("deepseek/deepseek-v4-flash", datetime(2027, 1, 1, 7, 0, tzinfo=UTC), "5"),
    ("deepseek/deepseek-v4-pro", datetime(2026, 12, 13, 7, 0, tzinfo=UTC), "18"),  # Sunday
    ("deepseek/deepseek-v4-pro", datetime(2026, 12, 14, 7, 0, tzinfo=UTC), "36"),  # Monday
], ids=str)
def test_deepseek_cny_peak_on_working_days_only(model: str, at: datetime, total: str) -> None:
    # flash: 1M x ¥1 + 1M x ¥4 = ¥5 off-peak, ¥10 peak; pro: ¥4.5 + ¥13.5 = ¥18, peak ¥36
    assert quote(model, MILLION, at, currency="CNY") == D(total)


# --- g. sora-2-pro HD sizes: $0.50 / second ------------------------------------------------------

@pytest.mark.parametrize(("size", "total"), [
    ("1792x1024", "4.00"), ("1024x1792", "4.00"), ("1280x720", "2.40"), ("720x1280", "2.40"),
])
def test_sora_2_pro_hd_sizes(size: str, total: str) -> None:
    # 8 seconds x $0.50 (HD) or x $0.30 (720p); the model was shut down on 2026-09-24
    at = datetime(2025, 12, 1, tzinfo=UTC)
    assert quote("openai/sora-2-pro", Usage.of(seconds=8), at, size=size) == D(total)
