"""meterline.domain.pricebook: versions in force, aliases and name resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.errors import NotFound, PriceNotFound, UnknownModel

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
prop = settings(deadline=None, max_examples=200)


def pv(model: str, effective_from: datetime = JAN, price: str = "1") -> PriceVersion:
    return PriceVersion.parse({"model": model, "currency": "USD", "unit": "1M",
                               "effective_from": effective_from.isoformat(),
                               "prices": {"input_tokens": price}})


def book() -> PriceBook:
    return PriceBook(
        [
            pv("openai/gpt-4o-mini", MAR, "0.15"),  # out of order on purpose
            pv("openai/gpt-4o-mini", JAN, "0.30"),
            pv("openai/gpt-4o"),
            pv("deepseek/deepseek-chat"),
            pv("groq/llama-3-70b"),
            pv("together/llama-3-70b"),
        ],
        aliases=[("openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
                 ("gpt-4o-latest", "openai/gpt-4o")],
    )


def input_price(version: PriceVersion) -> Decimal:
    return next(iter(version.prices.values())).price


# --- version in force --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("at", "price"),
    [
        (JAN, "0.30"),  # inclusive at effective_from
        (JAN + timedelta(days=30), "0.30"),
        (MAR - timedelta(microseconds=1), "0.30"),
        (MAR, "0.15"),
        (datetime(2030, 1, 1, tzinfo=UTC), "0.15"),
        # the same instants written in other timezones
        (datetime(2026, 3, 1, 7, 59, 59, tzinfo=timezone(timedelta(hours=8))), "0.30"),
        (datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))), "0.15"),
        (datetime(2026, 2, 28, 19, 0, tzinfo=timezone(timedelta(hours=-5))), "0.15"),
    ],
)
def test_version_in_force(at: datetime, price: str) -> None:
    version = book().version_at("openai/gpt-4o-mini", at)
    assert input_price(version) == D(price)
    assert version.effective_from <= at


def test_before_the_first_version_there_is_no_price() -> None:
    at = JAN - timedelta(seconds=1)
    with pytest.raises(PriceNotFound) as info:
        book().version_at("openai/gpt-4o-mini", at)
    assert isinstance(info.value, NotFound)
    assert "openai/gpt-4o-mini" in str(info.value)
    assert JAN.isoformat() in str(info.value)  # says when the first one starts
    assert info.value.context == {"model": "openai/gpt-4o-mini", "at": at.isoformat()}


@pytest.mark.parametrize("model", ["openai/gpt-5", "gpt-4o-mini", "openai/gpt-4o-mini-2024-07-18"])
def test_version_at_needs_a_canonical_priced_model(model: str) -> None:
    with pytest.raises(PriceNotFound, match="no price for"):
        book().version_at(model, MAR)


def test_adding_a_version_with_the_same_start_replaces_it() -> None:
    prices = book()
    prices.add(pv("openai/gpt-4o-mini", MAR, "0.10"))
    assert [input_price(v) for v in prices.versions("openai/gpt-4o-mini")] == [D("0.30"),
                                                                              D("0.10")]
    assert input_price(prices.version_at("openai/gpt-4o-mini", MAR)) == D("0.10")


def test_listing() -> None:
    prices = book()
    assert len(prices) == 5
    assert prices.models() == ["deepseek/deepseek-chat", "groq/llama-3-70b", "openai/gpt-4o",
                               "openai/gpt-4o-mini", "together/llama-3-70b"]
    assert "openai/gpt-4o" in prices
    assert "gpt-4o-latest" not in prices  # aliases are names, not models
    assert [v.effective_from for v in prices.versions("openai/gpt-4o-mini")] == [JAN, MAR]
    assert prices.versions("nobody/nothing") == []
    assert [(v.model, v.effective_from) for v in prices.versions()][:4] == [
        ("deepseek/deepseek-chat", JAN), ("groq/llama-3-70b", JAN), ("openai/gpt-4o", JAN),
        ("openai/gpt-4o-mini", JAN),
    ]
    assert prices.aliases() == {"openai/gpt-4o-mini-2024-07-18": "openai/gpt-4o-mini",
                                "gpt-4o-latest": "openai/gpt-4o"}


def test_listings_are_copies() -> None:
    prices = book()
    prices.versions("openai/gpt-4o-mini").clear()
    prices.aliases().clear()
    assert len(prices.versions("openai/gpt-4o-mini")) == 2
    assert prices.aliases()


# --- name resolution ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),  # canonical
        ("openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),  # alias
        ("gpt-4o-latest", "openai/gpt-4o"),  # alias without a provider
        ("gpt-4o-mini", "openai/gpt-4o-mini"),  # bare name, one provider has it
        ("gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),  # bare alias
        ("deepseek-chat", "deepseek/deepseek-chat"),
    ],
)
def test_resolve(name: str, model: str) -> None:
    assert book().resolve(name) == model


def test_bare_name_held_by_two_providers_is_ambiguous() -> None:
    with pytest.raises(UnknownModel) as info:
        book().resolve("llama-3-70b")
    assert isinstance(info.value, NotFound)
    assert "ambiguous" in str(info.value)
    assert "groq/llama-3-70b, together/llama-3-70b" in str(info.value)
    assert info.value.context == {"model": "llama-3-70b",
                                  "candidates": ["groq/llama-3-70b", "together/llama-3-70b"]}


def test_alias_and_model_with_the_same_bare_name_stay_unique() -> None:
    prices = PriceBook([pv("qwen/qwen-max")], aliases=[("qwen/qwen-max-latest", "qwen/qwen-max"),
                                                      ("dashscope/qwen-max", "qwen/qwen-max")])
    assert prices.resolve("qwen-max") == "qwen/qwen-max"
    assert prices.resolve("qwen-max-latest") == "qwen/qwen-max"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("openai/gpt-4o-mni", "openai/gpt-4o-mini"),
        ("gpt4o-mini", "gpt-4o-mini"),
        ("deepseek/deepseek-chta", "deepseek/deepseek-chat"),
        ("azure/deepseek-chat", "deepseek/deepseek-chat"),  # a provider prefix is never bare
    ],
)
def test_unknown_model_suggests_close_names(name: str, suggestion: str) -> None:
    with pytest.raises(UnknownModel) as info:
        book().resolve(name)
    message = str(info.value)
    assert message.startswith(f"unknown model {name!r}; did you mean ")
    assert suggestion in message
    assert suggestion in info.value.context["candidates"]
    assert info.value.context["model"] == name
    assert len(info.value.context["candidates"]) <= 5


def test_unknown_model_without_close_names() -> None:
    with pytest.raises(UnknownModel) as info:
        book().resolve("zzzz")
    assert str(info.value) == "unknown model 'zzzz'"
    assert info.value.context == {"model": "zzzz", "candidates": []}
    assert info.value.code == "model_not_found"


def test_empty_book() -> None:
    prices = PriceBook()
    assert len(prices) == 0 and prices.models() == [] and prices.versions() == []
    with pytest.raises(UnknownModel):
        prices.resolve("gpt-4o")
    with pytest.raises(PriceNotFound):
        prices.version_at("openai/gpt-4o", JAN)


# --- properties --------------------------------------------------------------------------------

@prop
@given(
    st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 10**6)), min_size=1, max_size=10,
             unique_by=lambda pair: pair[0]),
    st.integers(-5, 1005),
    st.integers(0, 86_399),
)
def test_version_at_is_the_latest_start_not_after_at(
    series: list[tuple[int, int]], day: int, second: int
) -> None:
    prices = PriceBook(pv("x/m", JAN + timedelta(days=d), str(p)) for d, p in series)
    at = JAN + timedelta(days=day, seconds=second)
    started = [(d, p) for d, p in series if JAN + timedelta(days=d) <= at]
    if not started:
        with pytest.raises(PriceNotFound):
            prices.version_at("x/m", at)
    else:
        day_started, price = max(started)
        version = prices.version_at("x/m", at)
        assert version.effective_from == JAN + timedelta(days=day_started)
        assert input_price(version) == D(price)


names = st.text(alphabet="abcdefgh-0123456789.", min_size=1, max_size=12)


@prop
@given(st.lists(st.tuples(st.sampled_from(["openai", "qwen", "groq"]), names), min_size=1,
                max_size=8, unique=True))
def test_every_canonical_name_resolves_to_itself_and_bare_names_are_unique_or_refused(
    models: list[tuple[str, str]]
) -> None:
    prices = PriceBook(pv(f"{provider}/{name}") for provider, name in models)
    for provider, name in models:
        assert prices.resolve(f"{provider}/{name}") == f"{provider}/{name}"
        holders = sorted({f"{p}/{n}" for p, n in models if n == name})
        if len(holders) == 1:
            assert prices.resolve(name) == holders[0]
        else:
            with pytest.raises(UnknownModel) as info:
                prices.resolve(name)
            assert info.value.context["candidates"] == holders
