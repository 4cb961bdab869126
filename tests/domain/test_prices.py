"""meterline.domain.prices: price versions, their JSON shape, tiers, variants and windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.money import MINOR_UNITS
from meterline.domain.prices import (
    UNIT_SIZES,
    VERSION_FIELDS,
    WEEKDAYS,
    PriceVersion,
    UnitPrice,
    Window,
    parse_effective,
)
from meterline.domain.usage import BillingType, Meter, Usage
from meterline.errors import InvalidInput, InvalidPrice

D = Decimal
plain_zone = ZoneInfo("Asia/Shanghai")
prop = settings(deadline=None, max_examples=200)
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "currency": "USD",
    "effective_from": "2026-01-01",
    "unit": "1M",
    "prices": {"input_tokens": "0.15", "output_tokens": "0.60"},
}


def parse(**changes: Any) -> PriceVersion:
    data = {**BASE, **changes}
    return PriceVersion.parse({k: v for k, v in data.items() if v is not None})


def input_price(version: PriceVersion, usage: Usage | None = None,
                attributes: dict[str, str] | None = None, at: datetime = AT) -> Decimal:
    prices = version.prices_for(usage or Usage(), attributes or {}, at)
    return prices[Meter.INPUT_TOKENS].price


# --- parsing -----------------------------------------------------------------------------------

def test_parse_a_catalog_entry() -> None:
    version = parse(
        currency="usd",
        units={"cached_input_tokens": "1K"},
        prices={"input_tokens": "0.15", "output_tokens": "0.6", "cached_input_tokens": "0.000075"},
        minimum_charge="0.0001",
        source="https://openai.com/api/pricing",
        max_output_tokens=16384,
        context_window=128000,
    )
    assert version.model == "openai/gpt-4o-mini"
    assert version.currency == "USD"
    assert version.effective_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert version.billing_type is BillingType.TOKEN
    assert dict(version.prices) == {
        Meter.INPUT_TOKENS: UnitPrice(D("0.15"), 1_000_000),
        Meter.OUTPUT_TOKENS: UnitPrice(D("0.6"), 1_000_000),
        Meter.CACHED_INPUT_TOKENS: UnitPrice(D("0.000075"), 1_000),
    }
    assert version.minimum_charge == D("0.0001")
    assert version.source == "https://openai.com/api/pricing"
    assert (version.max_output_tokens, version.context_window) == (16384, 128000)
    assert version.id == "openai/gpt-4o-mini@2026-01-01T00:00:00+00:00"
    assert (version.tiers, version.variants, version.windows) == ((), (), ())


def test_defaults() -> None:
    version = PriceVersion.parse({"model": "x/y", "currency": "CNY", "effective_from": "2026-01-01",
                                  "prices": {"images": 1}})
    assert version.prices[Meter.IMAGES] == UnitPrice(D(1), 1)  # unit defaults to "1"
    assert version.minimum_charge == D(0)
    assert version.source == ""
    assert version.max_output_tokens is None and version.context_window is None


def test_model_keyword_overrides_the_entry() -> None:
    version = PriceVersion.parse({**BASE, "model": "gpt-4o-mini"}, model="openai/gpt-4o-mini")
    assert version.model == "openai/gpt-4o-mini"


def test_explicit_id_is_kept() -> None:
    version = PriceVersion(model="a/b", currency="USD", effective_from=AT, prices={}, id="v7")
    assert version.id == "v7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T08:00:00+08:00", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T10:30:00", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),  # naive means UTC
        (date(2026, 3, 1), datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, 10, 30), datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        (datetime(2026, 3, 1, 2, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 3, 1, tzinfo=UTC)),
    ],
    ids=str,
)
def test_parse_effective(value: object, expected: datetime) -> None:
    parsed = parse_effective(value)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-01", "01/03/2026", None, 20260301,
                                   "9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_parse_effective_refuses(value: object) -> None:
    with pytest.raises(InvalidPrice) as info:
        parse_effective(value, "m.effective_from")
    assert info.value.field == "effective_from"
    assert str(info.value).startswith("m.effective_from:")


M = "openai/gpt-4o-mini"
WINDOW = {"timezone": "UTC", "start": "16:30", "end": "00:30", "prices": {"input_tokens": "0.1"}}


@pytest.mark.parametrize(
    ("changes", "in_message", "field"),
    [
        ({"currency": "XYZ"}, f"{M}.currency: unknown currency 'XYZ'", "currency"),
        ({"currency": None}, f"{M}.currency: unknown currency None", "currency"),
        ({"unit": "2K"}, f"{M}.unit: '2K' is not one of 1, 1K, 10K, 1M", "unit"),
        ({"unit": 1000}, f"{M}.unit: 1000", "unit"),
        ({"unit": ["1K"]}, f"{M}.unit:", "unit"),
        ({"unit": {"input_tokens": "1K"}}, f"{M}.unit:", "unit"),
        ({"units": {"output_tokens": "per-token"}}, f"{M}.units.output_tokens:", "unit"),
        ({"units": {"output_tokens": ["1K"]}}, f"{M}.units.output_tokens:", "unit"),
        ({"units": {"bogus": "1K"}}, f"{M}.units: unknown meter 'bogus'", "prices"),
        ({"units": "1K"}, f"{M}.units: must be an object", "units"),
        ({"effective_from": "yesterday"}, f"{M}.effective_from: 'yesterday'", "effective_from"),
        ({"effective_from": None}, f"{M}.effective_from: missing", "effective_from"),
        ({"prices": {"input_tokens": "-0.1"}}, f"{M}.prices.input_tokens: must not be neg",
         f"{M}.prices.input_tokens"),
        ({"prices": {"input_tokens": 0.15}}, f"{M}.prices.input_tokens: give money as a string",
         f"{M}.prices.input_tokens"),
        ({"prices": {"input_tokens": "cheap"}}, f"{M}.prices.input_tokens: 'cheap' is not",
         f"{M}.prices.input_tokens"),
        ({"prices": {"input_tokens": True}}, f"{M}.prices.input_tokens:",
         f"{M}.prices.input_tokens"),
        ({"prices": {"prompt_tokens": "1"}}, f"{M}.prices: unknown meter 'prompt_tokens'",
         "prices"),
        ({"prices": None}, f"{M}.prices: must be an object", "prices"),
        ({"prices": ["0.15"]}, f"{M}.prices: must be an object", "prices"),
        ({"prices": {"input_tokens": "1000000000000"}},
         f"{M}.prices.input_tokens: must be below", f"{M}.prices.input_tokens"),
        ({"prices": {"input_tokens": "0." + "0" * 30 + "1"}},
         f"{M}.prices.input_tokens: must be below", f"{M}.prices.input_tokens"),
        ({"minimum_charge": "-1"}, f"{M}.minimum_charge: must not be negative",
         f"{M}.minimum_charge"),
        ({"billing_type": "tokens"}, f"{M}.billing_type: 'tokens' is not one of", "billing_type"),
        ({"tiers": [{"above_input_tokens": -1, "prices": {}}]},
         f"{M}.tiers[0].above_input_tokens: must be a non-negative integer",
         f"{M}.tiers[0].above_input_tokens"),
        ({"tiers": [{"above_input_tokens": "128000", "prices": {}}]},
         f"{M}.tiers[0].above_input_tokens", f"{M}.tiers[0].above_input_tokens"),
        ({"tiers": [{"above_input_tokens": True, "prices": {}}]},
         f"{M}.tiers[0].above_input_tokens", f"{M}.tiers[0].above_input_tokens"),
        ({"tiers": [{"above_input_tokens": 10, "prices": {"input_tokens": "-1"}}]},
         f"{M}.tiers[0].prices.input_tokens: must not be negative",
         f"{M}.tiers[0].prices.input_tokens"),
        ({"tiers": {"above_input_tokens": 10}}, f"{M}.tiers: must be a list of objects",
         f"{M}.tiers"),
        ({"variants": [{"match": {}, "prices": {}}]}, f"{M}.variants[0].match: must be a non-empty",
         f"{M}.variants[0].match"),
        ({"variants": ["hd"]}, f"{M}.variants: must be a list of objects", f"{M}.variants"),
        ({"windows": [{**WINDOW, "timezone": "Mars/Olympus"}]},
         f"{M}.windows[0].timezone: unknown timezone 'Mars/Olympus'", f"{M}.windows[0]"),
        ({"windows": [{**WINDOW, "start": "25:00"}]},
         f"{M}.windows[0]: start and end must be HH:MM",
         f"{M}.windows[0]"),
        ({"windows": [{**WINDOW, "end": None}]}, f"{M}.windows[0]: start and end must be HH:MM",
         f"{M}.windows[0]"),
        ({"windows": [{**WINDOW, "end": "16:30"}]}, f"{M}.windows[0]: start and end must differ",
         f"{M}.windows[0]"),
        ({"windows": [{**WINDOW, "prices": {"input_tokens": "-1"}}]},
         f"{M}.windows[0].prices.input_tokens", f"{M}.windows[0].prices.input_tokens"),
        ({"windows": [{**WINDOW, "days": "mon-fri"}]},
         f"{M}.windows[0].days: must be a non-empty list of mon, tue", f"{M}.windows[0].days"),
        ({"windows": [{**WINDOW, "days": []}]},
         f"{M}.windows[0].days: must be a non-empty list", f"{M}.windows[0].days"),
        ({"windows": [{**WINDOW, "days": ["mon", "funday"]}]},
         f"{M}.windows[0].days: must be a non-empty list", f"{M}.windows[0].days"),
        ({"windows": [{**WINDOW, "days": ["mon", "Mon"]}]},
         f"{M}.windows[0].days: lists a day twice", f"{M}.windows[0].days"),
        ({"windows": [{**WINDOW, "except_holidays": "XX"}]},
         f"{M}.windows[0].except_holidays: 'XX' is not a country code",
         f"{M}.windows[0].except_holidays"),
        ({"windows": [{**WINDOW, "except_holidays": True}]},
         f"{M}.windows[0].except_holidays: True is not a country code",
         f"{M}.windows[0].except_holidays"),
        ({"max_output_tokens": -5}, f"{M}.max_output_tokens: must be a non-negative integer",
         f"{M}.max_output_tokens"),
        ({"context_window": "big"}, f"{M}.context_window", f"{M}.context_window"),
        ({"model": ""}, "model: missing", "model"),
        ({"model": None}, "model: missing", "model"),
    ],
    ids=repr,
)
def test_parse_refuses_bad_versions_naming_the_field(
    changes: dict[str, Any], in_message: str, field: str
) -> None:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidPrice) as info:
        PriceVersion.parse(data)
    assert isinstance(info.value, InvalidInput)
    assert in_message in str(info.value)
    assert info.value.field == field


def test_parse_refuses_non_objects() -> None:
    with pytest.raises(InvalidPrice, match="must be an object"):
        PriceVersion.parse(["not", "an", "object"])  # type: ignore[arg-type]


# --- unit prices -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("meter", "per", "label"),
    [
        (Meter.INPUT_TOKENS, 1, "token"),
        (Meter.OUTPUT_TOKENS, 1_000, "1K tokens"),
        (Meter.CACHED_INPUT_TOKENS, 10_000, "10K tokens"),
        (Meter.INPUT_TOKENS, 1_000_000, "1M tokens"),
        (Meter.CHARACTERS, 1, "character"),
        (Meter.CHARACTERS, 10_000, "10K characters"),
        (Meter.IMAGES, 1, "image"),
        (Meter.SECONDS, 1, "second"),
        (Meter.REQUESTS, 1, "request"),
        (Meter.INPUT_TOKENS, 100, "100 tokens"),
    ],
)
def test_unit_label(meter: Meter, per: int, label: str) -> None:
    assert UnitPrice(D("0.5"), per).unit_label(meter) == label


def test_unit_sizes() -> None:
    assert dict(UNIT_SIZES) == {"1": 1, "1K": 1000, "10K": 10000, "1M": 1000000}


def test_a_variant_has_tiers_of_its_own() -> None:
    version = parse(
        prices={"input_tokens": "1", "output_tokens": "4"},
        tiers=[{"above_input_tokens": 272000, "prices": {"input_tokens": "2"}}],
        variants=[{"match": {"service_tier": "priority"},
                   "prices": {"input_tokens": "3", "output_tokens": "8"},
                   "tiers": [{"above_input_tokens": 272000,
                              "prices": {"input_tokens": "6", "output_tokens": "9"}}]}],
    )
    assert PriceVersion.parse(version.to_json()) == version
    at = datetime(2026, 2, 1, tzinfo=UTC)
    small, large = Usage.parse({"input_tokens": 1000}), Usage.parse({"input_tokens": 300_000})
    priority = {"service_tier": "priority"}

    def price_of(usage: Usage, attributes: dict[str, str], meter: Meter) -> Decimal:
        return version.prices_for(usage, attributes, at)[meter].price

    assert price_of(small, {}, Meter.INPUT_TOKENS) == D("1")
    assert price_of(large, {}, Meter.INPUT_TOKENS) == D("2")
    assert price_of(small, priority, Meter.INPUT_TOKENS) == D("3")
    assert price_of(large, priority, Meter.INPUT_TOKENS) == D("6")
    assert price_of(large, priority, Meter.OUTPUT_TOKENS) == D("9")
    with pytest.raises(InvalidPrice, match=r"variants\[0\]\.tiers\[0\]\.above_input_tokens"):
        parse(variants=[{"match": {"a": "b"}, "prices": {}, "tiers": [{"prices": {}}]}])


# --- tiers, variants, windows ------------------------------------------------------------------

TIERED = parse(
    prices={"input_tokens": "1.25", "output_tokens": "10"},
    # out of order on purpose: the highest matching threshold wins, not the last listed
    tiers=[
        {"above_input_tokens": 1_000_000, "prices": {"input_tokens": "5"}},
        {"above_input_tokens": 200_000, "prices": {"input_tokens": "2.5", "output_tokens": "15"}},
    ],
)


@pytest.mark.parametrize(
    ("input_tokens", "input_price", "output_price"),
    [
        (0, "1.25", "10"),
        (200_000, "1.25", "10"),  # strictly above: exactly at the threshold is the base price
        (200_001, "2.5", "15"),
        (1_000_000, "2.5", "15"),
        (1_000_001, "5", "10"),  # the top tier names input only; output keeps the base price
    ],
)
def test_tier_by_prompt_size(input_tokens: int, input_price: str, output_price: str) -> None:
    prices = TIERED.prices_for(Usage.of(input_tokens=input_tokens), {}, AT)
    assert prices[Meter.INPUT_TOKENS].price == D(input_price)
    assert prices[Meter.OUTPUT_TOKENS].price == D(output_price)


def test_tier_counts_cached_input_as_prompt() -> None:
    usage = Usage.of(input_tokens=200_001, cached_input_tokens=200_001)
    assert input_price(TIERED, usage) == D("2.5")


IMAGES = PriceVersion.parse({
    "model": "openai/dall-e-3", "currency": "USD", "effective_from": "2026-01-01",
    "billing_type": "count",
    "prices": {"images": "0.04"},
    "variants": [
        {"match": {"size": "1024x1024", "quality": "hd"}, "prices": {"images": "0.08"}},
        {"match": {"size": "1024x1792", "quality": "hd"}, "prices": {"images": "0.12"}},
        {"match": {"size": "1024x1792"}, "prices": {"images": "0.08"}},
    ],
})


@pytest.mark.parametrize(
    ("attributes", "price"),
    [
        ({}, "0.04"),
        ({"size": "1024x1024"}, "0.04"),
        ({"quality": "hd"}, "0.04"),  # a partial match is no match
        ({"size": "1024x1024", "quality": "hd"}, "0.08"),
        ({"size": "1024x1024", "quality": "hd", "style": "vivid"}, "0.08"),  # extra keys are fine
        ({"size": "1024x1792"}, "0.08"),
        ({"size": "1024x1792", "quality": "hd"}, "0.12"),  # the first matching variant wins
        ({"size": "1024x1792", "quality": "standard"}, "0.08"),
    ],
)
def test_variant_by_attributes(attributes: dict[str, str], price: str) -> None:
    assert IMAGES.prices_for(Usage.of(images=1), attributes, AT)[Meter.IMAGES].price == D(price)


OFF_PEAK_UTC = parse(
    prices={"input_tokens": "0.27", "output_tokens": "1.10"},
    windows=[{"timezone": "UTC", "start": "16:30", "end": "00:30",
              "prices": {"input_tokens": "0.135", "output_tokens": "0.55"}}],
)
OFF_PEAK_BEIJING = parse(
    prices={"input_tokens": "0.27", "output_tokens": "1.10"},
    windows=[{"timezone": "Asia/Shanghai", "start": "00:30", "end": "08:30",
              "prices": {"input_tokens": "0.135", "output_tokens": "0.55"}}],
)


@pytest.mark.parametrize(
    ("clock", "off_peak"),
    [
        ("12:00:00", False),
        ("16:29:59.999999", False),
        ("16:30:00", True),  # start inclusive
        ("20:00:00", True),
        ("23:59:59", True),
        ("00:00:00", True),  # past midnight: the window wraps
        ("00:29:59", True),
        ("00:30:00", False),  # end exclusive
        ("08:00:00", False),
    ],
)
@pytest.mark.parametrize("version", [OFF_PEAK_UTC, OFF_PEAK_BEIJING], ids=["UTC", "Shanghai"])
def test_time_window_wrapping_midnight(version: PriceVersion, clock: str, off_peak: bool) -> None:
    at = datetime.combine(date(2026, 6, 1), time.fromisoformat(clock), tzinfo=UTC)
    prices = version.prices_for(Usage.of(input_tokens=1), {}, at)
    expected = ("0.135", "0.55") if off_peak else ("0.27", "1.10")
    assert (prices[Meter.INPUT_TOKENS].price, prices[Meter.OUTPUT_TOKENS].price) == tuple(
        D(x) for x in expected
    )


def test_window_uses_the_instant_not_the_wall_clock_of_the_timestamp() -> None:
    # 01:00 at +08:00 is 17:00 UTC: inside the UTC window
    at = datetime(2026, 6, 2, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    assert input_price(OFF_PEAK_UTC, at=at) == D("0.135")
    assert input_price(OFF_PEAK_BEIJING, at=at) == D("0.135")


@prop
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_window_in_two_timezones_agrees(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    assert OFF_PEAK_UTC.windows[0].applies(at) == OFF_PEAK_BEIJING.windows[0].applies(at)
    minutes = at.hour * 60 + at.minute
    assert OFF_PEAK_UTC.windows[0].applies(at) == (minutes >= 16 * 60 + 30 or minutes < 30)


def test_window_not_wrapping() -> None:
    window = Window("UTC", time(9), time(17), {})
    assert window.applies(datetime(2026, 1, 1, 9, tzinfo=UTC))
    assert window.applies(datetime(2026, 1, 1, 16, 59, tzinfo=UTC))
    assert not window.applies(datetime(2026, 1, 1, 17, tzinfo=UTC))
    assert not window.applies(datetime(2026, 1, 1, 8, 59, tzinfo=UTC))


# Weekdays and holidays: DeepSeek's peak hours, Monday-Friday Beijing time, not on Chinese
# public holidays (the peak window carries the peak prices, the base the off-peak ones).
PEAK_WORKDAYS = parse(
    prices={"input_tokens": "1", "output_tokens": "4"},
    windows=[{"timezone": "Asia/Shanghai", "start": start, "end": end,
              "days": ["mon", "tue", "wed", "thu", "fri"], "except_holidays": "CN",
              "prices": {"input_tokens": "2", "output_tokens": "8"}}
             for start, end in (("09:00", "12:00"), ("14:00", "18:00"))],
)


@pytest.mark.parametrize(
    ("at", "peak"),
    [
        (datetime(2026, 12, 7, 1, 0, tzinfo=UTC), True),    # Monday 09:00 Beijing
        (datetime(2026, 12, 11, 9, 59, tzinfo=UTC), True),  # Friday 17:59 Beijing
        (datetime(2026, 12, 11, 10, 0, tzinfo=UTC), False),  # Friday 18:00: end exclusive
        (datetime(2026, 12, 12, 1, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 12, 13, 6, 0, tzinfo=UTC), False),  # Sunday
        (datetime(2026, 12, 6, 17, 0, tzinfo=UTC), False),  # Sunday 17:00 UTC = Monday 01:00
        (datetime(2026, 10, 1, 2, 0, tzinfo=UTC), False),   # National Day (Thursday)
        (datetime(2026, 10, 7, 2, 0, tzinfo=UTC), False),   # day off of the National Day week
        (datetime(2026, 10, 9, 2, 0, tzinfo=UTC), True),    # Friday after it
        (datetime(2026, 2, 20, 7, 0, tzinfo=UTC), False),   # Spring Festival week (Friday)
        (datetime(2027, 1, 1, 2, 0, tzinfo=UTC), False),    # New Year's Day 2027 (Friday)
    ],
    ids=str,
)
def test_window_on_weekdays_except_holidays(at: datetime, peak: bool) -> None:
    assert input_price(PEAK_WORKDAYS, at=at) == (D("2") if peak else D("1"))


def test_window_days_are_local_days_of_the_window_timezone() -> None:
    # Monday 00:30 in Shanghai is Sunday 16:30 UTC: the window's own day counts.
    window = Window("Asia/Shanghai", time(0), time(1), {}, days=frozenset({0}))
    assert window.applies(datetime(2026, 12, 6, 16, 30, tzinfo=UTC))
    assert not window.applies(datetime(2026, 12, 7, 16, 30, tzinfo=UTC))


def test_window_wrapping_midnight_belongs_to_the_day_it_opened() -> None:
    friday_night = Window("UTC", time(22), time(2), {}, days=frozenset({4}))
    assert friday_night.applies(datetime(2026, 12, 11, 23, tzinfo=UTC))     # Friday 23:00
    assert friday_night.applies(datetime(2026, 12, 12, 1, 59, tzinfo=UTC))  # Saturday 01:59
    assert not friday_night.applies(datetime(2026, 12, 12, 23, tzinfo=UTC))  # Saturday 23:00
    assert not friday_night.applies(datetime(2026, 12, 11, 1, tzinfo=UTC))  # Thursday's night
    # New Year's Eve 2026 is a working Thursday; its night runs into the holiday: still inside
    eve = Window("Asia/Shanghai", time(22), time(2), {}, except_holidays="CN")
    assert eve.applies(datetime(2026, 12, 31, 17, 30, tzinfo=UTC))  # Jan 1, 01:30 Beijing
    assert not eve.applies(datetime(2027, 1, 1, 14, tzinfo=UTC))    # Jan 1, 22:00 Beijing


def test_window_days_and_holidays_parse_and_dump() -> None:
    version = parse(windows=[{**WINDOW, "days": ["Fri", "mon"], "except_holidays": "cn"}])
    window = version.windows[0]
    assert (window.days, window.except_holidays) == (frozenset({0, 4}), "CN")
    assert version.to_json()["windows"] == [{
        "timezone": "UTC", "start": "16:30", "end": "00:30", "days": ["mon", "fri"],
        "except_holidays": "CN", "prices": {"input_tokens": "0.1"},
    }]
    assert PriceVersion.parse(version.to_json()) == version
    plain = parse(windows=[WINDOW])
    assert (plain.windows[0].days, plain.windows[0].except_holidays) == (None, None)
    assert "days" not in plain.to_json()["windows"][0]
    assert not plain.same_prices(version)
    assert not parse(windows=[{**WINDOW, "days": ["mon"]}]).same_prices(
        parse(windows=[{**WINDOW, "days": ["tue"]}]))


@prop
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)),
       st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
def test_window_days_restrict_the_plain_window(naive: datetime, days: list[int]) -> None:
    at = naive.replace(tzinfo=UTC)
    plain = Window("Asia/Shanghai", time(9), time(18), {})
    on_days = Window("Asia/Shanghai", time(9), time(18), {}, days=frozenset(days))
    every_day = Window("Asia/Shanghai", time(9), time(18), {}, days=frozenset(range(7)))
    local_day = at.astimezone(plain_zone).weekday()
    assert every_day.applies(at) == plain.applies(at)
    assert on_days.applies(at) == (plain.applies(at) and local_day in days)


def test_overrides_apply_in_order_tier_variant_window() -> None:
    version = parse(
        prices={"input_tokens": "1", "output_tokens": "2", "images": "3"},
        tiers=[{"above_input_tokens": 100,
                "prices": {"input_tokens": "10", "output_tokens": "20"}}],
        variants=[{"match": {"quality": "hd"}, "prices": {"output_tokens": "200", "images": "30"}}],
        windows=[{"timezone": "UTC", "start": "00:00", "end": "06:00",
                  "prices": {"images": "300"}}],
    )
    night = datetime(2026, 6, 1, 1, tzinfo=UTC)
    prices = version.prices_for(Usage.of(input_tokens=101), {"quality": "hd"}, night)
    assert {m: p.price for m, p in prices.items()} == {
        Meter.INPUT_TOKENS: D("10"), Meter.OUTPUT_TOKENS: D("200"), Meter.IMAGES: D("300")
    }
    prices = version.prices_for(Usage.of(input_tokens=100), {}, AT)
    assert {m: p.price for m, p in prices.items()} == {
        Meter.INPUT_TOKENS: D("1"), Meter.OUTPUT_TOKENS: D("2"), Meter.IMAGES: D("3")
    }


def test_prices_for_leaves_the_version_unchanged() -> None:
    before = TIERED.to_json()
    TIERED.prices_for(Usage.of(input_tokens=2_000_000), {}, AT)
    assert TIERED.to_json() == before


# --- to_json and same_prices -------------------------------------------------------------------

def test_to_json_shape() -> None:
    version = parse(
        unit="1",
        units={"output_tokens": "1K"},
        prices={"input_tokens": "0.00000050", "output_tokens": "0.0015"},
        tiers=[{"above_input_tokens": 32000, "prices": {"input_tokens": "1E-6"}}],
        variants=[{"match": {"size": 1024}, "prices": {"output_tokens": "0.003"}}],
        windows=[WINDOW],
        minimum_charge="0.010",
        source="guide",
    )
    assert version.to_json() == {
        "model": M,
        "billing_type": "token",
        "currency": "USD",
        "effective_from": "2026-01-01T00:00:00+00:00",
        "unit": "1",
        "units": {"output_tokens": "1K"},
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0015"},
        "tiers": [{"above_input_tokens": 32000, "prices": {"input_tokens": "0.000001"}}],
        "variants": [{"match": {"size": "1024"}, "prices": {"output_tokens": "0.003"}}],
        "windows": [{"timezone": "UTC", "start": "16:30", "end": "00:30",
                     "prices": {"input_tokens": "0.1"}}],
        "minimum_charge": "0.01",
        "source": "guide",
    }


def test_same_prices_ignores_dates_sources_and_model() -> None:
    a = parse(source="a")
    b = parse(model="openai/other", effective_from="2027-01-01", source="b",
              prices={"input_tokens": "0.150", "output_tokens": "0.6"})
    assert a.same_prices(b) and b.same_prices(a)


@pytest.mark.parametrize(
    "changes",
    [
        {"prices": {"input_tokens": "0.15", "output_tokens": "0.61"}},
        {"prices": {"input_tokens": "0.15"}},
        {"unit": "1K"},
        {"currency": "CNY"},
        {"minimum_charge": "0.01"},
        {"tiers": [{"above_input_tokens": 1, "prices": {"input_tokens": "1"}}]},
        {"windows": [WINDOW]},
    ],
    ids=repr,
)
def test_same_prices_sees_any_price_change(changes: dict[str, Any]) -> None:
    assert not parse().same_prices(parse(**changes))


def test_window_with_seconds_round_trips() -> None:
    version = parse(windows=[{**WINDOW, "start": "16:30:15"}])
    assert version.windows[0].start == time(16, 30, 15)
    again = PriceVersion.parse(version.to_json())
    assert again == version
    assert again.windows[0].start == time(16, 30, 15)


# --- round trip property -----------------------------------------------------------------------

price_text = st.builds(
    lambda n, places, style: style(D(n).scaleb(-places)),
    st.integers(0, 10**8), st.integers(0, 14),
    st.sampled_from([str, lambda d: f"{d:f}", lambda d: str(d.normalize()), lambda d: f"{d:E}"]),
)
unit_names = st.sampled_from(sorted(UNIT_SIZES))
meter_names = st.sampled_from([m.value for m in Meter])
price_maps = st.dictionaries(meter_names, price_text, max_size=5)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@st.composite
def version_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": draw(st.sampled_from(["openai/gpt-4o", "qwen/qwen-max", "deepseek/chat"])),
        "currency": draw(st.sampled_from(sorted(MINOR_UNITS))),
        "effective_from": draw(st.datetimes(
            min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                       timezone(timedelta(hours=-5, minutes=-30))]),
        )).isoformat(),
        "billing_type": draw(st.sampled_from([b.value for b in BillingType])),
        "unit": draw(unit_names),
        "units": draw(st.dictionaries(meter_names, unit_names, max_size=3)),
        "prices": draw(price_maps),
    }
    if draw(st.booleans()):
        data["tiers"] = draw(st.lists(st.fixed_dictionaries(
            {"above_input_tokens": st.integers(0, 10**7), "prices": price_maps}), max_size=3))
    if draw(st.booleans()):
        data["variants"] = draw(st.lists(st.fixed_dictionaries({
            "match": st.dictionaries(st.sampled_from(["size", "quality", "resolution"]),
                                     st.sampled_from(["1024x1024", "hd", "720p"]), min_size=1),
            "prices": price_maps,
        }), max_size=3))
    if draw(st.booleans()):
        start, end = draw(st.lists(hhmm, min_size=2, max_size=2, unique=True))
        zone = draw(st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"]))
        window: dict[str, Any] = {"timezone": zone, "start": start, "end": end,
                                  "prices": draw(price_maps)}
        if draw(st.booleans()):
            window["days"] = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7,
                                           unique=True))
        if draw(st.booleans()):
            window["except_holidays"] = draw(st.sampled_from(["CN", "cn", "US", "GB"]))
        data["windows"] = [window]
    if draw(st.booleans()):
        data["minimum_charge"] = draw(price_text)
    if draw(st.booleans()):
        data["source"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        data["max_output_tokens"] = draw(st.integers(0, 10**6))
    if draw(st.booleans()):
        data["context_window"] = draw(st.integers(0, 10**7))
    return data


@prop
@given(version_data())
def test_parse_to_json_round_trips(data: dict[str, Any]) -> None:
    version = PriceVersion.parse(data)
    json = version.to_json()
    again = PriceVersion.parse(json)
    assert again.same_prices(version)
    assert again == version
    assert again.to_json() == json
    # every money value is a plain decimal string
    for price in json["prices"].values():
        assert isinstance(price, str) and "E" not in price


@prop
@given(version_data(), st.data())
def test_same_prices_is_false_after_changing_one_price(data: dict[str, Any], draw: Any) -> None:
    version = PriceVersion.parse(data)
    if not version.prices:
        return
    json = version.to_json()
    meter = draw.draw(st.sampled_from(sorted(json["prices"])))
    json["prices"][meter] = str(D(json["prices"][meter]) + D("0.000000000001"))
    assert not PriceVersion.parse(json).same_prices(version)


def test_every_field_a_version_writes_is_a_field_it_reads() -> None:
    full = parse(
        tiers=[{"above_input_tokens": 1000, "prices": {"input_tokens": "1"}}],
        variants=[{"match": {"size": "1"}, "prices": {"images": "1"}}],
        windows=[{"timezone": "UTC", "start": "01:00", "end": "02:00",
                  "prices": {"input_tokens": "1"}}],
        minimum_charge="0.01", source="https://example.com", max_output_tokens=10,
        context_window=100, units={"images": "1"},
    )
    assert set(full.to_json()) <= set(VERSION_FIELDS)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=12)
_PRICE_KEYS = st.sampled_from(["billing_type", "currency", "unit", "prices", "effective_from",
                               "variants", "tiers", "windows", "minimum_charge",
                               "max_output_tokens", "input_tokens", "match", "days"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_PRICE_KEYS, _JSON, max_size=6))
def test_any_price_document_is_parsed_or_refused_naming_the_field(data: dict[str, Any]) -> None:
    try:
        PriceVersion.parse(data, model="test/m")
    except InvalidInput as exc:
        assert exc.message
