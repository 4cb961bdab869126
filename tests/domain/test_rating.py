"""meterline.domain.rating: usage × price version -> exact charge lines and total."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.money import MAX_PRICE, MAX_PRICE_PLACES, MINOR_UNITS, Amount
from meterline.domain.prices import UNIT_SIZES, PriceVersion
from meterline.domain.rating import MINIMUM_CHARGE, ChargeLine, rate
from meterline.domain.usage import Meter, Usage
from meterline.errors import CurrencyMismatch, NotFound, PriceNotFound

D = Decimal
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
prop = settings(deadline=None, max_examples=300)


def version(prices: dict[str, str], *, currency: str = "USD", unit: str = "1",
            model: str = "test/model", **extra: Any) -> PriceVersion:
    return PriceVersion.parse({"model": model, "currency": currency,
                               "effective_from": "2026-01-01", "unit": unit,
                               "prices": prices, **extra})


def lines_of(rating: Any) -> list[tuple[str, Decimal, Decimal]]:
    return [(line.meter, line.quantity, line.amount) for line in rating.lines]


# --- the worked examples from the billing guides -----------------------------------------------

WORKED = [
    pytest.param(
        version({"input_tokens": "0.0000005", "output_tokens": "0.0000015"}),
        {"input_tokens": 1000, "output_tokens": 500},
        [("input_tokens", 1000, "0.0005"), ("output_tokens", 500, "0.00075")],
        "0.00125", "USD", id="tokens-unit-1",
    ),
    pytest.param(
        version({"characters": "0.000001"}, billing_type="character"),
        {"characters": 500},
        [("characters", 500, "0.0005")], "0.0005", "USD", id="characters",
    ),
    pytest.param(
        version({"images": "0.01"}, billing_type="count"),
        {"images": 1},
        [("images", 1, "0.01")], "0.01", "USD", id="image",
    ),
    pytest.param(
        version({"seconds": "0.001"}, billing_type="second"),
        {"seconds": 30},
        [("seconds", 30, "0.03")], "0.03", "USD", id="seconds",
    ),
    pytest.param(
        version({"seconds": "0.001"}, billing_type="second"),
        {"seconds": 2.5},
        [("seconds", "2.5", "0.0025")], "0.0025", "USD", id="fractional-seconds",
    ),
    pytest.param(
        version({"input_tokens": "0.002", "output_tokens": "0.008"}, currency="CNY", unit="1K"),
        {"input_tokens": 1500, "output_tokens": 2000},
        [("input_tokens", 1500, "0.003"), ("output_tokens", 2000, "0.016")],
        "0.019", "CNY", id="per-1K-CNY",
    ),
    pytest.param(
        version({"input_tokens": "0.15", "output_tokens": "0.60"}, unit="1M"),
        {"input_tokens": 1000, "output_tokens": 500},
        [("input_tokens", 1000, "0.00015"), ("output_tokens", 500, "0.0003")],
        "0.00045", "USD", id="per-1M",
    ),
]


@pytest.mark.parametrize(("price", "usage", "lines", "total", "currency"), WORKED)
def test_worked_examples(price: PriceVersion, usage: dict[str, Any],
                         lines: list[tuple[str, Any, str]], total: str, currency: str) -> None:
    rating = rate(Usage.parse(usage), price, AT)
    assert lines_of(rating) == [(m, D(str(q)), D(a)) for m, q, a in lines]
    assert rating.total == Amount(D(total), currency)
    assert rating.currency == currency
    assert rating.model == price.model
    assert rating.price_version is price


@pytest.mark.parametrize(
    ("unit", "amount"),
    [("1", "121932631.124828532112482292332114"), ("1M", "121.932631124828532112482292332114")],
)
def test_long_unit_prices_keep_every_digit(unit: str, amount: str) -> None:
    # 33 significant digits: more than Python's default 28-digit context would keep
    price = version({"input_tokens": "0.123456789012345678901234"}, unit=unit)
    rating = rate(Usage.of(input_tokens=987654321), price, AT)
    assert rating.lines[0].amount == D(amount)
    assert rating.total == Amount(D(amount), "USD")
    assert rating.to_json()["cost"] == amount


def test_largest_valid_price_times_largest_quantity_is_exact() -> None:
    # the bounds in money.py/usage.py promise this never needs rounding
    price = "999999999999." + "9" * 30
    tokens = 10**15 - 1
    rating = rate(Usage.of(input_tokens=tokens, output_tokens=tokens),
                  version({"input_tokens": price, "output_tokens": price}), AT)
    exact = Fraction(D(price)) * tokens
    assert [Fraction(line.amount) for line in rating.lines] == [exact, exact]
    assert Fraction(rating.total.number) == 2 * exact


def test_rating_json_is_strings_with_units() -> None:
    price = version({"input_tokens": "0.002", "output_tokens": "0.008"}, currency="CNY", unit="1K",
                    model="qwen/qwen-turbo")
    rating = rate(Usage.of(input_tokens=1500, output_tokens=2000), price, AT)
    assert rating.to_json() == {
        "model": "qwen/qwen-turbo",
        "cost": "0.019",
        "currency": "CNY",
        "price_version": "qwen/qwen-turbo@2026-01-01T00:00:00+00:00",
        "lines": [
            {"meter": "input_tokens", "quantity": "1500", "unit": "1K tokens",
             "unit_price": "0.002", "amount": "0.003"},
            {"meter": "output_tokens", "quantity": "2000", "unit": "1K tokens",
             "unit_price": "0.008", "amount": "0.016"},
        ],
    }
    first = rate(Usage.of(input_tokens=1000, output_tokens=500),
                 version({"input_tokens": "0.0000005", "output_tokens": "0.0000015"}), AT)
    assert first.to_json()["cost"] == "0.00125"
    assert [line["unit"] for line in first.to_json()["lines"]] == ["token", "token"]


# --- prompt cache ------------------------------------------------------------------------------

CACHE_PRICES = {"input_tokens": "2", "cached_input_tokens": "0.5", "cache_write_tokens": "2.5",
                "output_tokens": "8"}


@pytest.mark.parametrize(
    ("prices", "usage", "lines"),
    [
        (CACHE_PRICES,
         {"input_tokens": 10000, "cached_input_tokens": 4000, "cache_write_tokens": 1000,
          "output_tokens": 100},
         [("input_tokens", 5000, "0.01"), ("cached_input_tokens", 4000, "0.002"),
          ("cache_write_tokens", 1000, "0.0025"), ("output_tokens", 100, "0.0008")]),
        # without cache prices both parts fall back to the plain input price, on their own lines
        ({"input_tokens": "2", "output_tokens": "8"},
         {"input_tokens": 10000, "cached_input_tokens": 4000, "cache_write_tokens": 1000},
         [("input_tokens", 5000, "0.01"), ("cached_input_tokens", 4000, "0.008"),
          ("cache_write_tokens", 1000, "0.002")]),
        # a cache-read price only: writes still fall back
        ({"input_tokens": "2", "cached_input_tokens": "0.2"},
         {"input_tokens": 300, "cached_input_tokens": 100, "cache_write_tokens": 100},
         [("input_tokens", 100, "0.0002"), ("cached_input_tokens", 100, "0.00002"),
          ("cache_write_tokens", 100, "0.0002")]),
        # the whole prompt from cache: no plain input line
        (CACHE_PRICES, {"input_tokens": 4000, "cached_input_tokens": 4000},
         [("cached_input_tokens", 4000, "0.002")]),
        # the whole prompt written to cache
        (CACHE_PRICES, {"input_tokens": 1000, "cache_write_tokens": 1000},
         [("cache_write_tokens", 1000, "0.0025")]),
        # cache prices alone need no plain input price when nothing is plain
        ({"cached_input_tokens": "0.5"}, {"input_tokens": 10, "cached_input_tokens": 10},
         [("cached_input_tokens", 10, "0.000005")]),
    ],
)
def test_cache_lines(prices: dict[str, str], usage: dict[str, int],
                     lines: list[tuple[str, int, str]]) -> None:
    price = version(prices, unit="1M")
    rating = rate(Usage.parse(usage), price, AT)
    assert lines_of(rating) == [(m, D(q), D(a)) for m, q, a in lines]
    assert rating.total.number == sum((D(a) for _, _, a in lines), D(0))


def test_cache_fallback_line_shows_the_input_unit_price() -> None:
    rating = rate(Usage.of(input_tokens=10, cached_input_tokens=10),
                  version({"input_tokens": "0.002"}, unit="1K"), AT)
    (line,) = rating.lines
    assert (line.meter, line.unit_price, line.per, line.unit) == (
        "cached_input_tokens", D("0.002"), 1000, "1K tokens")


# --- reasoning ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prices", "usage", "lines"),
    [
        ({"output_tokens": "1", "reasoning_tokens": "2"},
         {"output_tokens": 1000, "reasoning_tokens": 400},
         [("output_tokens", 600, "0.6"), ("reasoning_tokens", 400, "0.8")]),
        # no reasoning price: reasoning stays inside output, one line
        ({"output_tokens": "1"}, {"output_tokens": 1000, "reasoning_tokens": 400},
         [("output_tokens", 1000, "1")]),
        # all output was reasoning: no empty output line
        ({"output_tokens": "1", "reasoning_tokens": "2"},
         {"output_tokens": 400, "reasoning_tokens": 400},
         [("reasoning_tokens", 400, "0.8")]),
        # a reasoning price but no reasoning: plain output
        ({"output_tokens": "1", "reasoning_tokens": "2"}, {"output_tokens": 1000},
         [("output_tokens", 1000, "1")]),
    ],
)
def test_reasoning_split_only_with_a_reasoning_price(
    prices: dict[str, str], usage: dict[str, int], lines: list[tuple[str, int, str]]
) -> None:
    rating = rate(Usage.parse(usage), version(prices, unit="1K"), AT)
    assert lines_of(rating) == [(m, D(q), D(a)) for m, q, a in lines]


# --- one-hour cache writes ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prices", "usage", "lines"),
    [
        # Anthropic's shape: 5-minute writes at 1.25x the input price, 1-hour ones at 2x
        ({"input_tokens": "1", "cache_write_tokens": "1.25", "cache_write_1h_tokens": "2"},
         {"input_tokens": 2000, "cache_write_tokens": 1000, "cache_write_1h_tokens": 600},
         [("input_tokens", 1000, "1"), ("cache_write_tokens", 400, "0.5"),
          ("cache_write_1h_tokens", 600, "1.2")]),
        # every write kept an hour: no empty 5-minute line
        ({"input_tokens": "1", "cache_write_tokens": "1.25", "cache_write_1h_tokens": "2"},
         {"input_tokens": 1000, "cache_write_tokens": 1000, "cache_write_1h_tokens": 1000},
         [("cache_write_1h_tokens", 1000, "2")]),
        # no one-hour price: every write at the cache-write price, one line
        ({"input_tokens": "1", "cache_write_tokens": "1.25"},
         {"input_tokens": 2000, "cache_write_tokens": 1000, "cache_write_1h_tokens": 600},
         [("input_tokens", 1000, "1"), ("cache_write_tokens", 1000, "1.25")]),
    ],
)
def test_one_hour_cache_writes_split_only_with_their_own_price(
    prices: dict[str, str], usage: dict[str, int], lines: list[tuple[str, int, str]]
) -> None:
    rating = rate(Usage.parse(usage), version(prices, unit="1K"), AT)
    assert lines_of(rating) == [(m, D(q), D(a)) for m, q, a in lines]


# --- tiers, variants, windows through rating ---------------------------------------------------

LONG_CONTEXT = version(
    {"input_tokens": "0.0024", "output_tokens": "0.0096"}, currency="CNY", unit="1K",
    tiers=[{"above_input_tokens": 32000, "prices": {"input_tokens": "0.0048",
                                                     "output_tokens": "0.0192"}},
           {"above_input_tokens": 128000, "prices": {"input_tokens": "0.012",
                                                      "output_tokens": "0.048"}}],
)


@pytest.mark.parametrize(
    ("input_tokens", "total"),
    [
        (32000, "0.0864"),  # 32 × 0.0024 + 1 × 0.0096: at the threshold, base prices
        (32001, "0.1728048"),  # 32.001 × 0.0048 + 1 × 0.0192: the tier prices the whole call
        (128000, "0.6336"),
        (128001, "1.584012"),  # highest matching tier
    ],
)
def test_prompt_size_tier(input_tokens: int, total: str) -> None:
    rating = rate(Usage.of(input_tokens=input_tokens, output_tokens=1000), LONG_CONTEXT, AT)
    assert rating.total == Amount(D(total), "CNY")


IMAGE_MODEL = version(
    {"images": "0.04"}, billing_type="count",
    variants=[{"match": {"size": "1024x1024", "quality": "hd"}, "prices": {"images": "0.08"}},
              {"match": {"size": "1792x1024"}, "prices": {"images": "0.08"}},
              {"match": {"quality": "hd"}, "prices": {"images": "0.12"}}],
)


@pytest.mark.parametrize(
    ("attributes", "total"),
    [
        ({}, "0.12"),
        ({"size": "1024x1024", "quality": "standard"}, "0.12"),
        ({"size": "1024x1024", "quality": "hd"}, "0.24"),
        ({"size": "1792x1024", "quality": "standard"}, "0.24"),
        ({"size": "1792x1024", "quality": "hd"}, "0.24"),  # the first matching variant wins
    ],
)
def test_image_variants(attributes: dict[str, str], total: str) -> None:
    rating = rate(Usage.of(images=3), IMAGE_MODEL, AT, attributes)
    assert rating.total == Amount(D(total), "USD")
    assert rating.lines[0].unit == "image"


DEEPSEEK = version(
    {"input_tokens": "0.27", "cached_input_tokens": "0.07", "output_tokens": "1.10"}, unit="1M",
    windows=[{"timezone": "UTC", "start": "16:30", "end": "00:30",
              "prices": {"input_tokens": "0.135", "cached_input_tokens": "0.035",
                         "output_tokens": "0.55"}}],
)


@pytest.mark.parametrize(
    ("clock", "total"),
    [
        ((12, 0), "0.00247"),  # 1000×0.27 + 2000×1.10 per 1M
        ((16, 29, 59), "0.00247"),
        ((16, 30), "0.001235"),  # half price off-peak
        ((23, 59), "0.001235"),
        ((0, 0), "0.001235"),
        ((0, 29), "0.001235"),
        ((0, 30), "0.00247"),
    ],
)
def test_off_peak_window(clock: tuple[int, ...], total: str) -> None:
    at = datetime(2026, 6, 1, *clock, tzinfo=UTC)
    rating = rate(Usage.of(input_tokens=1000, output_tokens=2000), DEEPSEEK, at)
    assert rating.total == Amount(D(total), "USD")


# --- minimum charge and requests ---------------------------------------------------------------

MINIMUM = version({"input_tokens": "0.001", "output_tokens": "0.002"}, unit="1K",
                  minimum_charge="0.01")


@pytest.mark.parametrize(
    ("input_tokens", "topup", "total"),
    [
        (0, "0.01", "0.01"),
        (1000, "0.009", "0.01"),
        (9999, "0.000001", "0.01"),
        (10000, None, "0.01"),  # exactly the minimum: no top-up line
        (25000, None, "0.025"),
    ],
)
def test_minimum_charge(input_tokens: int, topup: str | None, total: str) -> None:
    rating = rate(Usage.of(input_tokens=input_tokens), MINIMUM, AT)
    assert rating.total == Amount(D(total), "USD")
    extra = [line for line in rating.lines if line.meter == MINIMUM_CHARGE]
    if topup is None:
        assert extra == []
    else:
        assert extra == [ChargeLine(MINIMUM_CHARGE, D(1), "call", D(topup), 1, D(topup))]
        assert rating.lines[-1] is extra[0]
        assert extra[0].billing_type == "count"
    assert sum((line.amount for line in rating.lines), D(0)) == rating.total.number


@pytest.mark.parametrize(
    ("usage", "requests"),
    [({"input_tokens": 1000}, 1), ({}, 1), ({"requests": 3}, 3), ({"requests": 1}, 1)],
)
def test_requests_price_defaults_to_one_request(usage: dict[str, int], requests: int) -> None:
    price = version({"input_tokens": "0.000001", "requests": "0.005"})
    rating = rate(Usage.parse(usage), price, AT)
    (line,) = [line for line in rating.lines if line.meter == "requests"]
    assert (line.quantity, line.amount, line.unit) == (D(requests), D("0.005") * requests,
                                                       "request")
    assert rating.lines[-1] is line


def test_requests_without_a_requests_price_add_nothing() -> None:
    rating = rate(Usage.of(input_tokens=1000, requests=2), version({"input_tokens": "0.000001"}),
                  AT)
    assert lines_of(rating) == [("input_tokens", D(1000), D("0.001"))]


def test_empty_usage_costs_nothing() -> None:
    rating = rate(Usage(), version({"input_tokens": "1"}, currency="CNY"), AT)
    assert rating.lines == ()
    assert rating.total == Amount.zero("CNY")


# --- missing prices ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prices", "usage", "meter"),
    [
        ({"input_tokens": "1"}, {"input_tokens": 1, "output_tokens": 1}, "output_tokens"),
        ({"output_tokens": "1"}, {"input_tokens": 1}, "input_tokens"),
        ({"cached_input_tokens": "1"}, {"input_tokens": 2, "cached_input_tokens": 1},
         "input_tokens"),
        ({"output_tokens": "1"}, {"input_tokens": 1, "cached_input_tokens": 1},
         "cached_input_tokens"),
        ({"output_tokens": "1"}, {"input_tokens": 1, "cache_write_tokens": 1},
         "cache_write_tokens"),
        ({"reasoning_tokens": "1"}, {"output_tokens": 2, "reasoning_tokens": 1}, "output_tokens"),
        ({"input_tokens": "1"}, {"characters": 5}, "characters"),
        ({"input_tokens": "1"}, {"images": 1}, "images"),
        ({"images": "1"}, {"seconds": 1}, "seconds"),
    ],
)
def test_used_meter_without_price_raises(prices: dict[str, str], usage: dict[str, int],
                                         meter: str) -> None:
    with pytest.raises(PriceNotFound) as info:
        rate(Usage.parse(usage), version(prices, model="acme/m1"), AT)
    assert isinstance(info.value, NotFound)
    assert str(info.value) == f"acme/m1 has no price for {meter}"
    assert info.value.context == {"model": "acme/m1", "meter": meter}


def test_unused_meters_need_no_price() -> None:
    rating = rate(Usage.of(images=2), version({"images": "0.5"}), AT)
    assert rating.total == Amount(D(1), "USD")


@pytest.mark.parametrize(
    ("meter", "billing_type"),
    [("input_tokens", "token"), ("reasoning_tokens", "token"), ("characters", "character"),
     ("images", "count"), ("seconds", "second"), ("requests", "count"),
     (MINIMUM_CHARGE, "count")],
)
def test_charge_line_billing_type(meter: str, billing_type: str) -> None:
    assert ChargeLine(meter, D(1), "x", D(1), 1, D(1)).billing_type == billing_type


# --- properties --------------------------------------------------------------------------------

# The whole valid range of a price: below 10^12 with up to 30 places (42 significant digits),
# so products with quantities up to 10^14 go far past Python's default 28 digits.
@st.composite
def prices_st(draw: st.DrawFn) -> Decimal:
    places = draw(st.integers(0, MAX_PRICE_PLACES))
    bound = int(MAX_PRICE) * 10**places - 1
    n = draw(st.one_of(st.integers(0, 10**6), st.integers(0, bound), st.just(bound)))
    return D(f"{n}E-{places}")  # exact (scaleb would round to 28 digits)



units_st = st.sampled_from(sorted(UNIT_SIZES))
OPTIONAL = ["cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens",
            "reasoning_tokens", "requests"]
ALWAYS = ["input_tokens", "output_tokens", "characters", "images", "seconds"]


@st.composite
def priced(draw: st.DrawFn, minimum: bool = True) -> PriceVersion:
    chosen = ALWAYS + [m for m in OPTIONAL if draw(st.booleans())]
    data: dict[str, Any] = {
        "model": "p/m", "effective_from": "2026-01-01",
        "currency": draw(st.sampled_from(sorted(MINOR_UNITS))),
        "unit": draw(units_st),
        "units": draw(st.dictionaries(st.sampled_from(chosen), units_st)),
        "prices": {m: str(draw(prices_st())) for m in chosen},
    }
    if minimum and draw(st.booleans()):
        data["minimum_charge"] = str(draw(prices_st()))
    return PriceVersion.parse(data)


# Quantities up to 10^14 (so that ×5 in the linearity test stays below MAX_QUANTITY).
counts = st.one_of(st.integers(0, 10**7), st.integers(0, 10**14))


@st.composite
def usages(draw: st.DrawFn) -> dict[str, Any]:
    total_in = draw(counts)
    cached = draw(st.integers(0, total_in))
    written = draw(st.integers(0, total_in - cached))
    total_out = draw(counts)
    seconds = D(draw(counts)).scaleb(-draw(st.integers(0, 6)))
    return {
        "input_tokens": total_in, "cached_input_tokens": cached, "cache_write_tokens": written,
        "cache_write_1h_tokens": draw(st.integers(0, written)),
        "output_tokens": total_out, "reasoning_tokens": draw(st.integers(0, total_out)),
        "characters": draw(counts), "images": draw(st.integers(0, 100)),
        "seconds": str(seconds), "requests": draw(st.integers(1, 5)),
    }


def _exact(line: ChargeLine) -> Fraction:
    return Fraction(line.quantity) * Fraction(line.unit_price) / line.per


@prop
@given(usages(), priced())
def test_total_is_the_exact_sum_of_exact_lines(data: dict[str, Any], price: PriceVersion) -> None:
    rating = rate(Usage.parse(data), price, AT)
    assert rating.total.currency == price.currency
    assert Fraction(rating.total.number) == sum((Fraction(x.amount) for x in rating.lines),
                                                Fraction(0))
    for line in rating.lines:
        assert Fraction(line.amount) == _exact(line)  # never rounded
        assert line.quantity > 0
    raw = sum((_exact(x) for x in rating.lines if x.meter != MINIMUM_CHARGE), Fraction(0))
    assert Fraction(rating.total.number) == max(raw, Fraction(price.minimum_charge))


@prop
@given(usages(), priced())
def test_lines_split_the_quantities_without_losing_any(data: dict[str, Any],
                                                       price: PriceVersion) -> None:
    usage = Usage.parse(data)
    rating = rate(usage, price, AT)
    by_meter: dict[str, Decimal] = {}
    for line in rating.lines:
        assert line.meter not in by_meter  # one line per meter
        by_meter[line.meter] = line.quantity

    def q(*meters: str) -> Decimal:
        return sum((by_meter.get(m, D(0)) for m in meters), D(0))

    assert q("input_tokens", "cached_input_tokens", "cache_write_tokens",
             "cache_write_1h_tokens") == usage.get(Meter.INPUT_TOKENS)
    assert q("cache_write_tokens", "cache_write_1h_tokens") == usage.get(
        Meter.CACHE_WRITE_TOKENS)
    assert ("cache_write_1h_tokens" in by_meter) == (
        Meter.CACHE_WRITE_1H_TOKENS in price.prices
        and usage.get(Meter.CACHE_WRITE_1H_TOKENS) > 0)
    assert q("output_tokens", "reasoning_tokens") == usage.get(Meter.OUTPUT_TOKENS)
    assert ("reasoning_tokens" in by_meter) == (
        Meter.REASONING_TOKENS in price.prices and usage.get(Meter.REASONING_TOKENS) > 0)
    for meter in ("characters", "images", "seconds"):
        assert q(meter) == usage.get(Meter(meter))
    if Meter.REQUESTS in price.prices:
        assert q("requests") == usage.get(Meter.REQUESTS)


@prop
@given(usages(), priced(minimum=False), st.integers(2, 5))
def test_rating_is_linear_without_a_minimum(data: dict[str, Any], price: PriceVersion,
                                            factor: int) -> None:
    scaled = {k: str(D(str(v)) * factor) for k, v in data.items()}
    once = rate(Usage.parse(data), price, AT)
    many = rate(Usage.parse(scaled), price, AT)
    assert many.total == once.total * factor
    assert [Fraction(x.amount) for x in many.lines] == [
        Fraction(x.amount) * factor for x in once.lines]


@prop
@given(usages(), priced(), priced())
def test_totals_in_different_currencies_never_mix(data: dict[str, Any], a: PriceVersion,
                                                  b: PriceVersion) -> None:
    usage = Usage.parse(data)
    first, second = rate(usage, a, AT).total, rate(usage, b, AT).total
    if first.currency == second.currency:
        # (exact: plain Decimal + would round to the default 28 significant digits)
        assert Fraction((first + second).number) == Fraction(first.number) + Fraction(
            second.number)
    else:
        with pytest.raises(CurrencyMismatch):
            first + second


@prop
@given(usages(), priced())
def test_rating_json_matches_the_rating(data: dict[str, Any], price: PriceVersion) -> None:
    rating = rate(Usage.parse(data), price, AT)
    out = rating.to_json()
    assert D(out["cost"]) == rating.total.number
    assert sum((Fraction(line["amount"]) for line in out["lines"]), Fraction(0)) == Fraction(
        out["cost"])
    assert all(isinstance(v, str) for line in out["lines"] for v in line.values())
