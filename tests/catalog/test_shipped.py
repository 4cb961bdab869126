"""The shipped catalog: every entry is sourced, dated and in USD or CNY, and the entries added from
the providers' official pages price worked examples exactly (numbers copied from those pages)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest

from meterline.catalog.shipped import load_catalog, parse_catalog_file
from meterline.domain.prices import PriceVersion, parse_effective
from meterline.domain.rating import rate
from meterline.domain.usage import Usage


def _files() -> list[tuple[str, dict[str, Any]]]:
    folder = resources.files("meterline.catalog").joinpath("data")
    return [(item.name, orjson.loads(item.read_bytes()))
            for item in sorted(folder.iterdir(), key=lambda p: p.name)
            if item.name.endswith(".json")]


FILES = _files()
ENTRIES = [(name, index, entry) for name, data in FILES
           for index, entry in enumerate(data["models"])]


def _id(value: Any) -> str:
    return str(value)


def test_every_provider_file_loads() -> None:
    assert FILES, "no shipped catalog files"
    for name, data in FILES:
        assert data["provider"] == name.removesuffix(".json")
        parse_catalog_file(data, origin=name)
    assert len(load_catalog()) > 0


@pytest.mark.parametrize(("name", "index", "entry"), ENTRIES,
                         ids=[f"{n}:{e['model']}@{e['effective_from']}" for n, _, e in ENTRIES])
def test_every_entry_is_sourced_dated_and_in_usd_or_cny(name: str, index: int,
                                                         entry: dict[str, Any]) -> None:
    source = urlparse(str(entry.get("source", "")))
    assert source.scheme == "https" and source.netloc, f"{name}[{index}]: no https source"
    assert entry.get("currency") in {"USD", "CNY"}, f"{name}[{index}]: currency"
    assert isinstance(entry.get("effective_from"), str), f"{name}[{index}]: no effective date"
    parse_effective(entry["effective_from"])


def test_no_two_versions_share_a_model_start_and_currency() -> None:
    seen: set[tuple[str, str, str]] = set()
    for name, _, entry in ENTRIES:
        key = (f"{name}:{entry['model']}", entry["effective_from"], entry["currency"])
        assert key not in seen, f"duplicate version {key}"
        seen.add(key)


# --- Worked examples, from the official pages ------------------------------------------------
# developers.openai.com/ja-JP/api/docs/models/gpt-image-1 and
# developers.openai.com/de-DE/api/docs/models/gpt-image-1-mini: "Image generation, per image",
# by quality (low / medium / high) and size; text input and cached text input per 1M tokens.

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

GPT_IMAGE_1 = {
    "low": {"1024x1024": "0.011", "1024x1536": "0.016", "1536x1024": "0.016"},
    "medium": {"1024x1024": "0.042", "1024x1536": "0.063", "1536x1024": "0.063"},
    "high": {"1024x1024": "0.167", "1024x1536": "0.25", "1536x1024": "0.25"},
}
GPT_IMAGE_1_MINI = {
    "low": {"1024x1024": "0.005", "1024x1536": "0.006", "1536x1024": "0.006"},
    "medium": {"1024x1024": "0.011", "1024x1536": "0.015", "1536x1024": "0.015"},
    "high": {"1024x1024": "0.036", "1024x1536": "0.052", "1536x1024": "0.052"},
}


def _version(model: str) -> PriceVersion:
    return load_catalog().version_at(model, AT)


def _total(model: str, usage: Usage, **attributes: str) -> Decimal:
    rating = rate(usage, _version(model), AT, attributes)
    assert rating.currency == "USD"
    return rating.total.number


@pytest.mark.parametrize(("model", "grid"), [("openai/gpt-image-1", GPT_IMAGE_1),
                                             ("openai/gpt-image-1-mini", GPT_IMAGE_1_MINI)],
                         ids=_id)
def test_image_prices_match_the_official_grid(model: str, grid: dict[str, dict[str, str]]) -> None:
    for quality, row in grid.items():
        for size, price in row.items():
            total = _total(model, Usage.of(images=1), size=size, quality=quality)
            assert total == Decimal(price), (model, quality, size)


def test_gpt_image_1_two_high_landscape_images() -> None:
    # 2 × $0.25 (high, 1536x1024)
    assert _total("openai/gpt-image-1", Usage.of(images=2),
                  size="1536x1024", quality="high") == Decimal("0.50")


def test_gpt_image_1_low_square_with_text_prompt() -> None:
    # 1 × $0.011 + 1,200 text input tokens × $5.00/1M (= $0.006) → $0.017
    usage = Usage.of(images=1, input_tokens=1_200)
    assert _total("openai/gpt-image-1", usage, size="1024x1024", quality="low") == Decimal("0.017")


def test_gpt_image_1_cached_text_input() -> None:
    # 1,000,000 text input tokens of which 400,000 cached:
    # 600,000 × $5.00/1M + 400,000 × $1.25/1M = $3.00 + $0.50 = $3.50
    usage = Usage.of(input_tokens=1_000_000, cached_input_tokens=400_000)
    assert _total("openai/gpt-image-1", usage) == Decimal("3.50")


def test_gpt_image_1_mini_three_medium_portraits() -> None:
    # 3 × $0.015 (medium, 1024x1536)
    assert _total("openai/gpt-image-1-mini", Usage.of(images=3),
                  size="1024x1536", quality="medium") == Decimal("0.045")


@pytest.mark.parametrize(("model", "grid"), [("openai/gpt-image-1", GPT_IMAGE_1),
                                             ("openai/gpt-image-1-mini", GPT_IMAGE_1_MINI)],
                         ids=_id)
def test_size_or_quality_not_on_the_page_is_bounded_by_the_dearest_image(
        model: str, grid: dict[str, dict[str, str]]) -> None:
    # "auto" (or no size/quality at all) has no row on the page: the catalog charges the page's
    # highest per-image price, an upper bound, rather than leaving the call unpriced.
    dearest = max(Decimal(price) for row in grid.values() for price in row.values())
    assert _total(model, Usage.of(images=1), size="auto", quality="auto") == dearest
    assert _total(model, Usage.of(images=1)) == dearest


def test_wan_s2v_page_billing_example() -> None:
    # alibabacloud.com/help/en/model-studio/wan-s2v-api: "10.23 seconds × $0.071677/second =
    # $0.73325571" (480P); 720P is $0.129018/second, the dearest rate, charged when no resolution
    # is given. The entry starts 2026-12-05, the day the page was read.
    at = datetime(2026, 12, 6, tzinfo=UTC)
    version = load_catalog().version_at("qwen/wan2.2-s2v", at)
    rating = rate(Usage.of(seconds=Decimal("10.23")), version, at, {"resolution": "480P"})
    assert (rating.currency, rating.total.number) == ("USD", Decimal("0.73325571"))
    assert rate(Usage.of(seconds=1), version, at, {}).total.number == Decimal("0.129018")
