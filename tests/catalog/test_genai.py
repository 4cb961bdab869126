"""meterline.catalog.genai: the genai-prices database as meterline price versions.

The strongest check is the database's own arithmetic: for every model, moment, usage and request
context, meterline's rating of the translated versions must equal genai-prices' ``calc_price``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices.data import providers as installed
from genai_prices.types import (
    ClauseEquals,
    ClauseOr,
    ClauseStartsWith,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    PriceVariant,
    Provider,
    StartDateConstraint,
    Tier,
    TieredPrices,
)

from meterline.catalog import genai
from meterline.catalog.litellm import loads_exact
from meterline.domain.pricebook import Layer, PriceBook
from meterline.domain.rating import rate
from meterline.domain.usage import Usage
from meterline.errors import InvalidPrice, PriceNotFound

D = Decimal
MOMENTS = [datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 10, 20, 12, tzinfo=UTC),
           datetime(2026, 12, 7, 20, tzinfo=UTC)]
USAGES = [
    {"input_tokens": 300_000, "cache_read_tokens": 100_000, "cache_write_tokens": 50_000,
     "output_tokens": 2_000},
    {"input_tokens": 1_000, "output_tokens": 500},
]
CONTEXTS: list[dict[str, str] | None] = [
    None, {"service_tier": "flex"}, {"service_tier": "priority"}, {"processing": "batch"}]


@pytest.fixture(scope="module")
def translated() -> genai.GenaiCatalog:
    return genai.translate(installed, release="test")


def book_of(catalog: genai.GenaiCatalog) -> PriceBook:
    book = PriceBook(layer=Layer.GENAI_PRICES)
    for version in catalog.versions:
        book.add(version, Layer.GENAI_PRICES)
    for alias, model in catalog.aliases:
        book.add_alias(alias, model)
    for provider, rule, model in catalog.rules:
        book.add_rule(provider, rule, model)
    return book


def ours(book: PriceBook, model: str, usage: dict[str, int], at: datetime,
         context: dict[str, str] | None) -> Decimal:
    parsed = Usage.parse({"input_tokens": usage["input_tokens"],
                          "cached_input_tokens": usage.get("cache_read_tokens", 0),
                          "cache_write_tokens": usage.get("cache_write_tokens", 0),
                          "output_tokens": usage["output_tokens"]})
    return rate(parsed, book.version_at(model, at), at, context or {}).total.number


def test_every_model_prices_every_call_as_genai_prices_does(
        translated: genai.GenaiCatalog) -> None:
    book = book_of(translated)
    compared = 0
    differences = []
    for provider in installed:
        for info in provider.models:
            model = f"{genai._provider_name(provider.id, info.id)}/{info.id.lower()}"
            if f"{provider.id}/{info.id}" in translated.duplicates or model not in book:
                continue
            for at in MOMENTS:
                for usage in USAGES:
                    for context in CONTEXTS:
                        theirs = info.calc_price(GenaiUsage(**usage), provider,
                                                 genai_request_timestamp=at,
                                                 price_context=context).total_price
                        try:
                            mine = ours(book, model, usage, at, context)
                        except PriceNotFound:
                            # A meter the database does not price (an embedding model's output):
                            # meterline records such a call unpriced instead of free.
                            continue
                        compared += 1
                        if mine != theirs:
                            differences.append((model, at, usage, context, theirs, mine))
    assert compared > 40_000
    assert differences == []


def test_the_models_people_call_are_there(translated: genai.GenaiCatalog) -> None:
    book = book_of(translated)
    for name, model in [
        ("openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai/gpt-5", "openai/gpt-5"),
        ("gemini/gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("xai/grok-4", "xai/grok-4-0709"),
        ("moonshot/kimi-k2-0905-preview", None),
        ("zhipu/GLM-4.5", "zhipu/glm-4.5"),
        ("openai/whisper-1", "openai/whisper-1"),
        ("vertex/claude-sonnet-4-6", "vertex/claude-sonnet-4-6"),  # Google's Claude is Vertex's
    ]:
        assert book.knows(name), name
        if model is not None:
            assert book.resolve(name) == model
    assert not book.knows("gemini/claude-sonnet-4-6")


def test_start_dates_windows_tiers_and_variants(translated: genai.GenaiCatalog) -> None:
    book = book_of(translated)
    flash = book.versions("deepseek/deepseek-v4-flash")
    assert [v.effective_from.date().isoformat() for v in flash] == [
        "1970-01-01", "2026-08-17", "2026-09-10"]
    assert all(v.id.endswith("#genai-prices") for v in flash)
    assert [(w.timezone, w.start.isoformat(), w.end.isoformat()) for w in flash[-1].windows] == [
        ("UTC", "06:00:00", "10:00:00"), ("UTC", "01:00:00", "04:00:00")]
    sonnet = book.version_at("anthropic/claude-sonnet-4-5", MOMENTS[0])
    assert [t.above_input_tokens for t in sonnet.tiers] == [200_000]
    gpt5 = book.versions("openai/gpt-5")
    assert [dict(v.match) for v in gpt5[-1].variants] == [
        {"service_tier": "flex"}, {"service_tier": "priority"}, {"service_tier": "fast"},
        {"processing": "batch"}]
    assert gpt5[0].variants == ()   # the tiers' prices start on their own dates
    whisper = book.version_at("openai/whisper-1", MOMENTS[0])
    hour = Usage.parse({"seconds": "3600"})
    assert rate(hour, whisper, MOMENTS[0]).total.number == D("0.36")
    assert "web_searches_kcount" in translated.unmodelled["openai/gpt-5"]
    assert "not modelled: storage_searches_kcount, web_searches_kcount" in gpt5[-1].source
    assert any(s.startswith("mistral/mistral-ocr-latest: no price meterline can use")
               for s in translated.skipped)


def price(**prices: Any) -> ModelPrice:
    return ModelPrice(**prices)


def provider(pid: str, *models: ModelInfo) -> Provider:
    return Provider(id=pid, name=pid, api_pattern="x", models=list(models))


def test_a_small_database_translates_exactly() -> None:
    models = [
        ModelInfo(id="Alpha-1", match=ClauseOr(or_=[ClauseEquals(equals="alpha-1"),
                                                    ClauseStartsWith(starts_with="alpha-1-")]),
                  prices=[ConditionalPrice(prices=price(input_mtok=D("1"), output_mtok=D("2"))),
                          ConditionalPrice(constraint=StartDateConstraint(
                              start_date=datetime(2026, 3, 1).date()),
                              prices=price(input_mtok=TieredPrices(
                                  base=D("1.5"), tiers=[Tier(start=128_000, price=D("3"))]),
                                  output_mtok=D("2.5")))],
                  price_variants=[PriceVariant(when={"processing": "batch"},
                                               prices=price(output_mtok=D("1")))]),
        ModelInfo(id="free-one", match=ClauseEquals(equals="free-one"), prices=price()),
        ModelInfo(id="ocr", match=ClauseEquals(equals="ocr"),
                  prices=price(input_document_kpages=D("1"))),
    ]
    catalog = genai.translate([provider("zai", *models),
                               provider("zhipuai", models[0])], release="t")
    assert catalog.duplicates == ["zhipuai/Alpha-1"]
    assert catalog.skipped == ["zhipu/ocr: no price meterline can use (input_document_kpages)"]
    assert [(v.id, v.to_json()["prices"]) for v in catalog.versions] == [
        ("zhipu/alpha-1@1970-01-01T00:00:00+00:00#genai-prices",
         {"input_tokens": "1", "output_tokens": "2"}),
        ("zhipu/alpha-1@2026-03-01T00:00:00+00:00#genai-prices",
         {"input_tokens": "1.5", "output_tokens": "2.5"}),
        ("zhipu/free-one@1970-01-01T00:00:00+00:00#genai-prices",
         {"input_tokens": "0", "output_tokens": "0"}),
    ]
    tiered = catalog.versions[1]
    assert tiered.to_json()["tiers"] == [{"above_input_tokens": 128_000,
                                          "prices": {"input_tokens": "3"}}]
    assert tiered.to_json()["variants"] == [{"match": {"processing": "batch"},
                                             "prices": {"output_tokens": "1"}}]
    assert catalog.aliases == []   # the model's own name is its only exact name
    book = book_of(catalog)
    assert book.resolve("zhipu/Alpha-1-20260301") == "zhipu/alpha-1"


def test_published_data_json_reads_exactly() -> None:
    document = loads_exact(b'''[{"id": "google", "name": "Google", "api_pattern": "x",
        "models": [{"id": "gemini-x", "match": {"starts_with": "gemini-x"},
                    "prices": {"input_mtok": 0.1, "output_mtok": 0.4}}]}]''', origin="t")
    assert genai.is_genai_document(document)
    catalog = genai.translate(genai.providers_from_json(document), release="data.json")
    assert catalog.versions[0].model == "gemini/gemini-x"
    assert catalog.versions[0].to_json()["prices"] == {"input_tokens": "0.1",
                                                       "output_tokens": "0.4"}
    assert catalog.rules[0][0] == "gemini"
    with pytest.raises(InvalidPrice, match="genai-prices data"):
        genai.providers_from_json([{"id": "x"}])
