"""meterline.domain.usage: canonical usage quantities (SPEC §1) and their validation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.usage import (
    BILLING_TYPE,
    FRACTIONAL_METERS,
    METER_UNIT,
    METERS,
    BillingType,
    Meter,
    Usage,
)
from meterline.errors import InvalidInput, InvalidUsage

D = Decimal
prop = settings(deadline=None, max_examples=300)


def test_meters_are_the_spec_list() -> None:
    # SPEC §1's meters, plus the part of cache writes kept an hour (REFERENCE: Anthropic prices
    # cache writes by TTL) and the built-in tools providers bill per use (docs/decisions.md)
    assert set(METERS) == {
        "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "characters", "images", "seconds", "requests",
        "cache_write_1h_tokens", "web_search_calls", "file_search_calls",
        "code_interpreter_sessions",
    }
    assert {b.value for b in BillingType} == {"token", "character", "count", "second"}
    assert {Meter.SECONDS} == FRACTIONAL_METERS


@pytest.mark.parametrize(
    ("meter", "billing", "unit"),
    [
        (Meter.INPUT_TOKENS, BillingType.TOKEN, "tokens"),
        (Meter.CACHED_INPUT_TOKENS, BillingType.TOKEN, "tokens"),
        (Meter.CACHE_WRITE_TOKENS, BillingType.TOKEN, "tokens"),
        (Meter.OUTPUT_TOKENS, BillingType.TOKEN, "tokens"),
        (Meter.REASONING_TOKENS, BillingType.TOKEN, "tokens"),
        (Meter.CHARACTERS, BillingType.CHARACTER, "characters"),
        (Meter.IMAGES, BillingType.COUNT, "images"),
        (Meter.SECONDS, BillingType.SECOND, "seconds"),
        (Meter.REQUESTS, BillingType.COUNT, "requests"),
    ],
)
def test_billing_type_and_unit_of_each_meter(meter: Meter, billing: BillingType, unit: str) -> None:
    assert BILLING_TYPE[meter] is billing
    assert METER_UNIT[meter] == unit


# --- parsing valid usage -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"input_tokens": 1000, "output_tokens": 500},
         {Meter.INPUT_TOKENS: D(1000), Meter.OUTPUT_TOKENS: D(500)}),
        ({"input_tokens": "1000"}, {Meter.INPUT_TOKENS: D(1000)}),
        ({"input_tokens": D("1000")}, {Meter.INPUT_TOKENS: D(1000)}),
        ({"input_tokens": "1E+3"}, {Meter.INPUT_TOKENS: D(1000)}),
        ({"characters": 500}, {Meter.CHARACTERS: D(500)}),
        ({"images": 1}, {Meter.IMAGES: D(1)}),
        ({"seconds": 30}, {Meter.SECONDS: D(30)}),
        ({"seconds": 2.5}, {Meter.SECONDS: D("2.5")}),
        ({"seconds": 0.1}, {Meter.SECONDS: D("0.1")}),  # exactly a tenth, not the binary float
        ({"seconds": "12.25"}, {Meter.SECONDS: D("12.25")}),
        ({"requests": 2}, {Meter.REQUESTS: D(2)}),
        ({"input_tokens": 10**15 - 1}, {Meter.INPUT_TOKENS: D(10**15 - 1)}),
        ({"seconds": "0.000001"}, {Meter.SECONDS: D("0.000001")}),
        # zeros are dropped; a part may equal the whole
        ({"input_tokens": 0, "output_tokens": 0}, {}),
        ({"input_tokens": 10, "cached_input_tokens": 6, "cache_write_tokens": 4},
         {Meter.INPUT_TOKENS: D(10), Meter.CACHED_INPUT_TOKENS: D(6),
          Meter.CACHE_WRITE_TOKENS: D(4)}),
        ({"output_tokens": 7, "reasoning_tokens": 7},
         {Meter.OUTPUT_TOKENS: D(7), Meter.REASONING_TOKENS: D(7)}),
        ({}, {}),
    ],
)
def test_parse_valid(data: dict[str, Any], expected: dict[Meter, Decimal]) -> None:
    usage = Usage.parse(data)
    assert dict(usage.quantities) == expected
    for meter in Meter:
        assert usage.get(meter) == expected.get(meter, D(0))
        assert isinstance(usage.get(meter), Decimal)


def test_of_is_parse_with_keywords() -> None:
    assert Usage.of(input_tokens=1000, output_tokens="500") == Usage.parse(
        {"input_tokens": 1000, "output_tokens": 500}
    )
    assert Usage() == Usage.parse({})


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"input_tokens": -1}, "usage.input_tokens", "must not be negative"),
        ({"output_tokens": "-5"}, "usage.output_tokens", "must not be negative"),
        ({"seconds": -0.5}, "usage.seconds", "must not be negative"),
        ({"input_tokens": 10**15}, "usage.input_tokens", "must be below 1,000,000,000,000,000"),
        ({"characters": "1E+15"}, "usage.characters", "must be below"),
        ({"seconds": "0.0000001"}, "usage.seconds", "at most 6 decimal places"),
        ({"input_tokens": 1.5}, "usage.input_tokens", "whole number"),
        ({"input_tokens": 1.0}, "usage.input_tokens", "whole number"),  # floats never for tokens
        ({"images": 2.0}, "usage.images", "whole number"),
        ({"output_tokens": "1.5"}, "usage.output_tokens", "whole number"),
        ({"characters": D("0.5")}, "usage.characters", "whole number"),
        ({"seconds": float("nan")}, "usage.seconds", "whole number"),
        ({"seconds": float("inf")}, "usage.seconds", "whole number"),
        ({"images": True}, "usage.images", "must be a number"),
        ({"input_tokens": None}, "usage.input_tokens", "must be a number"),
        ({"input_tokens": "abc"}, "usage.input_tokens", "must be a number"),
        ({"input_tokens": "NaN"}, "usage.input_tokens", "must be a number"),
        ({"input_tokens": [1]}, "usage.input_tokens", "must be a number"),
        ({"bogus_tokens": 1}, "usage.bogus_tokens", "unknown meter"),
        ({"prompt_tokens": 1}, "usage.prompt_tokens", "unknown meter"),
        ({"input_tokens": 10, "cached_input_tokens": 6, "cache_write_tokens": 5},
         "usage.input_tokens", "cached_input_tokens + usage.cache_write_tokens"),
        ({"input_tokens": 10, "cached_input_tokens": 11},
         "usage.input_tokens", "must not exceed"),
        ({"cache_write_tokens": 1}, "usage.input_tokens", "must not exceed"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "usage.reasoning_tokens",
         "must not exceed usage.output_tokens"),
        ({"reasoning_tokens": 1}, "usage.reasoning_tokens", "must not exceed"),
    ],
    ids=repr,
)
def test_parse_refuses_bad_quantities_naming_the_field(
    data: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidUsage) as info:
        Usage.parse(data)
    assert isinstance(info.value, InvalidInput)
    assert info.value.field == field
    assert field in str(info.value)
    assert fragment in str(info.value)


def test_unknown_meter_message_lists_known_meters() -> None:
    with pytest.raises(InvalidUsage, match="known: input_tokens, cached_input_tokens"):
        Usage.parse({"tokens": 1})


@pytest.mark.parametrize("data", [[], "input_tokens=1", None, 5], ids=repr)
def test_parse_refuses_non_objects(data: object) -> None:
    with pytest.raises(InvalidUsage) as info:
        Usage.parse(data)
    assert info.value.field == "usage"


def test_direct_construction_checks_the_part_whole_rules() -> None:
    with pytest.raises(InvalidUsage):
        Usage({Meter.INPUT_TOKENS: D(1), Meter.CACHED_INPUT_TOKENS: D(2)})
    with pytest.raises(InvalidUsage):
        Usage({Meter.OUTPUT_TOKENS: D(1), Meter.REASONING_TOKENS: D(2)})


# --- to_json -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "json"),
    [
        ({"output_tokens": "500", "input_tokens": 1000},
         {"input_tokens": 1000, "output_tokens": 500}),
        ({"seconds": 2.5, "requests": 1}, {"seconds": "2.5", "requests": 1}),
        ({"seconds": "30.0"}, {"seconds": 30}),
        ({"input_tokens": 0}, {}),
    ],
)
def test_to_json(data: dict[str, Any], json: dict[str, Any]) -> None:
    out = Usage.parse(data).to_json()
    assert out == json
    assert all(type(out[k]) is type(json[k]) for k in json)
    # meters come out in canonical order
    assert list(out) == [m.value for m in Meter if m.value in out]


# --- properties --------------------------------------------------------------------------------

@st.composite
def usage_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    total_in = draw(st.integers(0, 10**9))
    cached = draw(st.integers(0, total_in))
    written = draw(st.integers(0, total_in - cached))
    total_out = draw(st.integers(0, 10**9))
    reasoning = draw(st.integers(0, total_out))
    for name, value in [("input_tokens", total_in), ("cached_input_tokens", cached),
                        ("cache_write_tokens", written), ("output_tokens", total_out),
                        ("reasoning_tokens", reasoning)]:
        if draw(st.booleans()) or value:
            data[name] = draw(st.sampled_from([value, str(value)]))
    for name in ("characters", "images", "requests"):
        if draw(st.booleans()):
            data[name] = draw(st.integers(0, 10**6))
    if draw(st.booleans()):
        data["seconds"] = str(draw(st.decimals(min_value=0, max_value=10**5, places=3)))
    return data


@prop
@given(usage_data())
def test_parse_keeps_every_quantity_exactly_and_round_trips(data: dict[str, Any]) -> None:
    usage = Usage.parse(data)
    for name, value in data.items():
        assert usage.get(Meter(name)) == D(str(value))
    assert Usage.parse(usage.to_json()) == usage
    assert all(q > 0 for q in usage.quantities.values())


@prop
@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_parts_larger_than_the_whole_are_refused(whole: int, excess: int) -> None:
    with pytest.raises(InvalidUsage):
        Usage.parse({"input_tokens": whole, "cached_input_tokens": whole + excess})
    with pytest.raises(InvalidUsage):
        Usage.parse({"output_tokens": whole, "reasoning_tokens": whole + excess})


@prop
@given(st.sampled_from(sorted(METERS - {"seconds"})),
       st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_refused_for_whole_count_meters(name: str, value: float) -> None:
    with pytest.raises(InvalidUsage) as info:
        Usage.parse({name: value})
    assert info.value.field == f"usage.{name}"


def test_one_hour_cache_writes_are_part_of_the_cache_writes() -> None:
    usage = Usage.of(input_tokens=100, cache_write_tokens=60, cache_write_1h_tokens=60)
    assert usage.get(Meter.CACHE_WRITE_1H_TOKENS) == 60
    with pytest.raises(InvalidUsage) as refused:
        Usage.of(input_tokens=100, cache_write_tokens=60, cache_write_1h_tokens=61)
    assert refused.value.field == "usage.cache_write_1h_tokens"
    assert "must not exceed usage.cache_write_tokens" in refused.value.message
