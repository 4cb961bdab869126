"""meterline.domain.pricebook: versions in force, aliases and name resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.model_match import MatchRule
from meterline.domain.pricebook import Layer, PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.usage import Usage
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


# --- layers and currencies -------------------------------------------------------------------

def priced(model: str, start: datetime, price: str, currency: str = "USD") -> PriceVersion:
    return PriceVersion.parse({"model": model, "currency": currency, "unit": "1M",
                               "effective_from": start.isoformat(),
                               "prices": {"input_tokens": price}})


APR = datetime(2026, 4, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_a_higher_layer_wins_whatever_its_dates() -> None:
    layered = PriceBook()
    layered.add(priced("a/m", EPOCH, "1"), Layer.GENAI_PRICES)
    layered.add(priced("a/m", APR, "9"), Layer.GENAI_PRICES)  # a later genai-prices change...
    layered.add(priced("a/m", MAR, "2"), Layer.CURATED)
    layered.add(priced("a/m", MAR, "5"), Layer.LITELLM)       # ...and a LiteLLM import
    assert input_price(layered.version_at("a/m", JAN)) == D("1")   # only genai-prices yet
    assert input_price(layered.version_at("a/m", MAR)) == D("2")   # curated from its start
    assert input_price(layered.version_at("a/m", APR)) == D("2")   # and never overridden below
    layered.add(priced("a/m", APR, "3"), Layer.OPERATOR)
    assert input_price(layered.version_at("a/m", APR)) == D("3")
    assert input_price(layered.version_at("a/m", MAR)) == D("2")   # history kept


def test_versions_are_per_currency() -> None:
    layered = PriceBook()
    layered.add(priced("deepseek/chat", JAN, "0.27", "USD"), Layer.CURATED)
    layered.add(priced("deepseek/chat", MAR, "2", "CNY"), Layer.CURATED)  # later, other currency
    assert layered.version_at("deepseek/chat", APR, "USD").currency == "USD"
    assert layered.version_at("deepseek/chat", APR, "CNY").currency == "CNY"
    # No version in the tenant's currency yet: any currency prices it (converted by FX later).
    assert layered.version_at("deepseek/chat", JAN, "CNY").currency == "USD"
    assert layered.version_at("deepseek/chat", APR, "EUR").currency == "CNY"
    assert layered.version_at("deepseek/chat", APR).currency == "CNY"


def test_same_start_in_two_currencies_or_layers_both_kept() -> None:
    layered = PriceBook()
    layered.add(priced("x/m", JAN, "1", "USD"), Layer.CURATED)
    layered.add(priced("x/m", JAN, "7", "CNY"), Layer.CURATED)
    layered.add(priced("x/m", JAN, "2", "USD"), Layer.GENAI_PRICES)
    assert len(layered.versions("x/m")) == 3
    assert input_price(layered.version_at("x/m", JAN, "USD")) == D("1")
    assert input_price(layered.version_at("x/m", JAN, "CNY")) == D("7")
    assert [(e.layer, e.version.currency) for e in layered.in_force_by_layer("x/m", JAN)] == [
        (Layer.CURATED, "USD"), (Layer.CURATED, "CNY"), (Layer.GENAI_PRICES, "USD")]
    assert layered.only(Layer.GENAI_PRICES).versions("x/m") == [priced("x/m", JAN, "2")]


@pytest.mark.parametrize(("origin", "layer"), [
    ("catalog", Layer.CURATED), ("genai-prices", Layer.GENAI_PRICES),
    ("update:genai-prices", Layer.GENAI_PRICES), ("import:litellm", Layer.LITELLM),
    ("update:litellm", Layer.LITELLM), ("manual", Layer.OPERATOR),
    ("import:meterline", Layer.OPERATOR), ("update", Layer.OPERATOR),
])
def test_layer_of_origin(origin: str, layer: Layer) -> None:
    assert Layer.of_origin(origin) is layer
    assert Layer.parse(layer.label) is layer


entries = st.lists(
    st.tuples(st.sampled_from([EPOCH, JAN, MAR, APR]), st.sampled_from(["USD", "CNY"]),
              st.sampled_from(list(Layer)), st.integers(1, 99)),
    min_size=1, max_size=12,
)


@prop
@given(entries, st.sampled_from([EPOCH, JAN, MAR, APR, APR + timedelta(days=1)]),
       st.sampled_from([None, "USD", "CNY", "EUR"]))
def test_version_at_matches_the_rule_written_out(
    added: list[tuple[datetime, str, Layer, int]], at: datetime, currency: str | None,
) -> None:
    layered = PriceBook()
    kept: dict[tuple[datetime, str, Layer], PriceVersion] = {}
    for start, cur, layer, price in added:
        version = priced("p/m", start, str(price), cur)
        layered.add(version, layer)
        kept[(start, cur, layer)] = version  # the last one added with a key stays

    def winner(keys: list[tuple[datetime, str, Layer]]) -> PriceVersion | None:
        in_force = [k for k in keys if k[0] <= at]
        if not in_force:
            return None
        best = max(k[2] for k in in_force)
        return kept[max((k for k in in_force if k[2] == best), key=lambda k: (k[0], k[1]))]

    expected = winner([k for k in kept if k[1] == currency]) if currency else None
    if expected is None:
        every = [k for k in kept if k[0] <= at]
        if every:
            best = max(k[2] for k in every)
            latest = max(k[0] for k in every if k[2] == best)
            candidates = [kept[k] for k in every if k[2] == best and k[0] == latest]
            assert any(layered.version_at("p/m", at, currency) is c for c in candidates)
        else:
            with pytest.raises(PriceNotFound):
                layered.version_at("p/m", at, currency)
        return
    found = layered.version_at("p/m", at, currency)
    assert (found.effective_from, found.currency) == (expected.effective_from, expected.currency)
    assert found == expected


# --- name rules ----------------------------------------------------------------------------------

def test_name_rules_resolve_families_after_exact_names_and_aliases() -> None:
    ruled = PriceBook([pv("openai/gpt-4o-mini"), pv("openai/gpt-4o"), pv("zhipu/glm-4.5")],
                      aliases=[("openai/gpt-4o-2024-08-06", "openai/gpt-4o")])
    ruled.add_rule("openai", MatchRule("starts_with", "gpt-4o-mini"), "openai/gpt-4o-mini")
    ruled.add_rule("openai", MatchRule("regex", r"^gpt-4o(-\d{4}-\d\d-\d\d)?$"), "openai/gpt-4o")
    assert ruled.resolve("openai/gpt-4o-mini-2024-07-18") == "openai/gpt-4o-mini"
    assert ruled.resolve("openai/GPT-4o-2099-01-01") == "openai/gpt-4o"     # case-insensitive
    assert ruled.resolve("openai/gpt-4o-2024-08-06") == "openai/gpt-4o"     # the alias
    assert ruled.resolve("zhipu/GLM-4.5") == "zhipu/glm-4.5"                 # case alone
    assert ruled.knows("openai/gpt-4o-mini-search")
    assert not ruled.knows("anthropic/gpt-4o-mini")   # rules are per provider
    with pytest.raises(UnknownModel):
        ruled.resolve("openai/gpt-4")
    assert ruled.resolve("openai/gpt-4o-mini-2024-07-18") == "openai/gpt-4o-mini"  # remembered
    assert list(ruled.only(Layer.OPERATOR).rules()) == ["openai"]


# --- the provider's built-in tool prices -------------------------------------------------------

def tools_version(provider: str, currency: str = "USD", **prices: str) -> PriceVersion:
    return PriceVersion.parse({"model": f"{provider}/tools", "currency": currency,
                               "billing_type": "count", "effective_from": "2025-01-01",
                               "unit": "1", "prices": prices})


def test_tool_uses_are_priced_by_the_version_else_by_the_provider_tools_entry() -> None:
    own = PriceVersion.parse({"model": "openai/gpt-x", "effective_from": "2025-01-01",
                              "currency": "USD", "unit": "1M", "prices": {"input_tokens": "1"}})
    with_own = PriceVersion.parse({"model": "openai/gpt-y", "effective_from": "2025-01-01",
                                   "currency": "USD", "unit": "1M",
                                   "units": {"web_search_calls": "1"},
                                   "prices": {"input_tokens": "1", "web_search_calls": "0.025"}})
    book = PriceBook([own, with_own, tools_version("openai", web_search_calls="0.01",
                                                   file_search_calls="0.0025")])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    usage = Usage.of(input_tokens=1_000_000, web_search_calls=3)
    assert book.rate(usage, own, at).total.number == Decimal("1.03")
    assert book.rate(usage, with_own, at).total.number == Decimal("1.075")
    # Not a model: not resolved from a bare name, not known, but listed with the prices.
    assert not book.knows("openai/tools") and "openai/tools" in book.models()
    with pytest.raises(UnknownModel):
        book.resolve("tools")
    # No price for a used tool anywhere: the call cannot be priced, never priced at zero.
    with pytest.raises(PriceNotFound, match="code_interpreter_sessions"):
        book.rate(Usage.of(input_tokens=1, code_interpreter_sessions=1), own, at)


def test_tool_prices_come_in_the_version_currency_only() -> None:
    cny = PriceVersion.parse({"model": "qwen/qwen-max", "currency": "CNY", "unit": "1M",
                              "effective_from": "2025-01-01", "prices": {"input_tokens": "2"}})
    book = PriceBook([cny, tools_version("qwen", "USD", web_search_calls="0.01")])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert book.tool_prices(cny, at) is None
    with pytest.raises(PriceNotFound):
        book.rate(Usage.of(input_tokens=5, web_search_calls=1), cny, at)
    book.add(tools_version("qwen", "CNY", web_search_calls="0.04"))
    assert book.rate(Usage.of(web_search_calls=2), cny, at).total.number == Decimal("0.08")
    # A call that used no tools never looks the tools up.
    assert book.rate(Usage.of(input_tokens=1_000_000), cny, at).total.number == Decimal("2")
