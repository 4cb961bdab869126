"""meterline.domain.money: decimal(), currency codes, formatting, rounding and Amount."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.money import (
    CONVERTED_PLACES,
    MINOR_UNITS,
    Amount,
    convert_at,
    convert_lines,
    currency_code,
    decimal,
    decimal_places,
    format_decimal,
    quantize_minor,
    readable,
    round_converted,
    sum_amounts,
    unit_price,
)
from meterline.errors import CurrencyMismatch, InvalidInput

D = Decimal
CURRENCIES = sorted(MINOR_UNITS)

# Exact decimals with any scale: an integer shifted by 0..20 places.
exact_decimals = st.builds(
    lambda n, places: D(n).scaleb(-places),
    st.integers(-(10**15), 10**15),
    st.integers(0, 20),
)
currencies = st.sampled_from(CURRENCIES)
prop = settings(deadline=None, max_examples=300)


# --- decimal() ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.00125", D("0.00125")),
        (" 12 ", D("12")),
        ("-2.50", D("-2.50")),
        ("1e-3", D("0.001")),
        (7, D(7)),
        (0, D(0)),
        (10**30, D(10**30)),
        (D("0.1"), D("0.1")),
    ],
)
def test_decimal_accepts_str_int_and_decimal_exactly(value: object, expected: Decimal) -> None:
    result = decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_decimal_keeps_string_digits_exactly() -> None:
    # the point of refusing floats: "0.1" is exactly one tenth
    assert decimal("0.1") * 3 == D("0.3")
    assert decimal("0.1").as_tuple() == D("0.1").as_tuple()


@pytest.mark.parametrize(
    "value",
    [0.1, 1.0, 0.0, -3.5, float("nan"), float("inf"), True, False],
    ids=repr,
)
def test_decimal_refuses_floats_and_bools(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        decimal(value, field="prices.input_tokens")
    assert info.value.field == "prices.input_tokens"
    assert str(info.value).startswith("prices.input_tokens:")
    assert "string or integer" in str(info.value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "not a decimal number"),
        ("", "not a decimal number"),
        ("1,5", "not a decimal number"),
        ("0x10", "not a decimal number"),
        (None, "not a decimal number"),
        ([1], "not a decimal number"),
        (b"1", "not a decimal number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-inf", "not a finite number"),
        ("sNaN", "not a finite number"),
        (D("NaN"), "not a finite number"),
        (D("-Infinity"), "not a finite number"),
    ],
    ids=repr,
)
def test_decimal_refuses_non_numbers(value: object, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decimal(value, field="minimum_charge")
    assert info.value.field == "minimum_charge"
    assert str(info.value).startswith("minimum_charge:")
    assert fragment in str(info.value)


def test_decimal_default_field_is_amount() -> None:
    with pytest.raises(InvalidInput) as info:
        decimal(0.5)
    assert info.value.field == "amount"
    assert info.value.context == {"field": "amount"}


# --- unit prices: 0 <= price < 10^12, at most 30 decimal places ---------------------------------

@pytest.mark.parametrize(
    ("value", "places"),
    [("0.150", 2), ("1E-30", 30), ("0", 0), ("0.000", 0), ("12", 0), ("1E+3", 0),
     ("-0.05", 2), ("1.10", 1), ("0.0000005", 7)],
)
def test_decimal_places(value: str, places: int) -> None:
    assert decimal_places(D(value)) == places


@pytest.mark.parametrize(
    "value",
    ["0", "0.0000005", 7, D("1E-30"), "999999999999." + "9" * 30,
     "0.15" + "0" * 40],  # trailing zeros do not count as places
    ids=repr,
)
def test_unit_price_accepts(value: object) -> None:
    assert unit_price(value, field="rate") == D(str(value))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("-0.01", "must not be negative"),
        ("1000000000000", "must be below 1,000,000,000,000 with at most 30 decimal places"),
        ("1E+12", "must be below"),
        ("0." + "0" * 30 + "1", "at most 30 decimal places"),
        (0.5, "string or integer"),
        (True, "string or integer"),
        ("abc", "not a decimal number"),
    ],
    ids=repr,
)
def test_unit_price_refuses(value: object, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        unit_price(value, field="prices.output_tokens")
    assert info.value.field == "prices.output_tokens"
    assert str(info.value).startswith("prices.output_tokens:")
    assert fragment in str(info.value)


# --- currency codes ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"), [("USD", "USD"), ("usd", "USD"), ("Cny", "CNY"), ("JPY", "JPY")]
)
def test_currency_code_normalises_known_codes(value: str, expected: str) -> None:
    assert currency_code(value) == expected


@pytest.mark.parametrize("value", ["XXX", "", "US", "USDD", " USD", None, 840, ["USD"]], ids=repr)
def test_currency_code_refuses_unknown(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        currency_code(value, field="tenant.currency")
    assert info.value.field == "tenant.currency"
    message = str(info.value)
    assert message.startswith("tenant.currency: unknown currency")
    assert "CNY" in message and "USD" in message  # lists the known codes


@pytest.mark.parametrize(("code", "digits"), [("USD", 2), ("CNY", 2), ("EUR", 2), ("JPY", 0),
                                              ("KRW", 0), ("VND", 0)])
def test_minor_units(code: str, digits: int) -> None:
    assert MINOR_UNITS[code] == digits


# --- format_decimal ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("0.00125"), "0.00125"),
        (D("12"), "12"),
        (D("100"), "100"),
        (D("10.0"), "10"),
        (D("12.500"), "12.5"),
        (D("0"), "0"),
        (D("0.000"), "0"),
        (D("-0"), "0"),
        (D("1E+3"), "1000"),
        (D("1E-7"), "0.0000001"),
        (D("-1.50"), "-1.5"),
        (D("123456789.000000000001"), "123456789.000000000001"),
    ],
)
def test_format_decimal(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


@prop
@given(exact_decimals, st.integers(-30, 30))
def test_format_decimal_is_plain_exact_and_canonical(value: Decimal, shift: int) -> None:
    number = value.scaleb(shift)
    text = format_decimal(number)
    assert "E" not in text and "e" not in text
    assert D(text) == number
    if "." in text:
        assert not text.endswith("0") and not text.endswith(".")
    # equal numbers format the same whatever their exponent
    assert format_decimal(number.normalize()) == text


# --- rounding ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("0.005", "USD", "0.01"),
        ("0.00499999", "USD", "0.00"),
        ("0.015", "USD", "0.02"),  # half-up, not banker's rounding (which gives 0.02 too)
        ("0.025", "USD", "0.03"),  # banker's rounding would give 0.02
        ("1.235", "CNY", "1.24"),
        ("0.125", "EUR", "0.13"),
        ("0.019", "CNY", "0.02"),
        ("0.00125", "USD", "0.00"),
        ("2.5", "JPY", "3"),
        ("2.4999", "JPY", "2"),
        ("-0.005", "USD", "-0.01"),  # symmetric: halves go away from zero
        ("-0.004", "USD", "0.00"),
        ("7", "USD", "7.00"),
    ],
)
def test_quantize_minor_half_up(value: str, currency: str, expected: str) -> None:
    result = quantize_minor(D(value), currency)
    assert result == D(expected)
    assert result.as_tuple().exponent == -MINOR_UNITS[currency]


def _reference_round(value: Decimal, digits: int) -> Decimal:
    """Independent half-up (away from zero) oracle: floor(|x|·10^d + 1/2) / 10^d."""
    with localcontext() as ctx:
        ctx.prec = 100
        scaled = abs(value).scaleb(digits) + D("0.5")
        whole = scaled.to_integral_value(rounding=ROUND_FLOOR)
        result = whole.scaleb(-digits)
        return -result if value < 0 else result


@prop
@given(exact_decimals, currencies)
def test_rounded_is_half_up_within_half_a_minor_unit(value: Decimal, currency: str) -> None:
    amount = Amount(value, currency)
    rounded = amount.rounded()
    digits = MINOR_UNITS[currency]
    half = D(5).scaleb(-digits - 1)
    assert rounded.currency == currency
    assert rounded.number.as_tuple().exponent == -digits
    assert abs(rounded.number - value) <= half
    if abs(rounded.number - value) == half:  # a tie goes away from zero
        assert abs(rounded.number) > abs(value)
    assert rounded.number == _reference_round(value, digits)
    assert rounded.rounded() == rounded  # idempotent


# --- Amount ------------------------------------------------------------------------------------

def test_amount_of_and_zero() -> None:
    assert Amount.of("0.00125", "usd") == Amount(D("0.00125"), "USD")
    assert Amount.of(3, "CNY").number == D(3)
    assert Amount.zero("jpy") == Amount(D(0), "JPY")
    assert Amount(D("1.0"), "USD") == Amount(D("1.00"), "USD")
    assert hash(Amount(D("1.0"), "USD")) == hash(Amount(D("1.00"), "USD"))
    assert Amount(D("1"), "USD") != Amount(D("1"), "CNY")


def test_amount_of_refuses_float() -> None:
    with pytest.raises(InvalidInput):
        Amount.of(0.1, "USD")


@pytest.mark.parametrize("number", [1, "1", 1.0, None])
def test_amount_number_must_be_decimal(number: object) -> None:
    with pytest.raises(TypeError, match="must be Decimal"):
        Amount(number, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["usd", "XXX", ""])
def test_amount_currency_must_be_a_known_code(currency: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Amount(D(1), currency)
    assert info.value.field == "currency"
    assert repr(currency) in str(info.value)


def test_amount_arithmetic_is_exact() -> None:
    a = Amount.of("0.0005", "USD")
    b = Amount.of("0.00075", "USD")
    assert a + b == Amount.of("0.00125", "USD")
    assert b - a == Amount.of("0.00025", "USD")
    assert -a == Amount.of("-0.0005", "USD")
    assert a * 3 == Amount.of("0.0015", "USD")
    assert a * D("0.5") == Amount.of("0.00025", "USD")
    # far more digits than the default 28-digit context keeps
    big = Amount.of("123456789012345678901234567890", "USD")
    tiny = Amount.of("0.000000000000000000000000000001", "USD")
    assert (big + tiny).number == D("123456789012345678901234567890.000000000000000000000000000001")


def test_amount_refuses_float_factor() -> None:
    with pytest.raises(TypeError, match="float"):
        Amount.of("1", "USD") * 1.5


def test_amount_comparisons() -> None:
    small, large = Amount.of("0.01", "USD"), Amount.of("0.02", "USD")
    assert small < large and small <= large and small <= small
    assert large > small and large >= small
    assert not large < small and not large <= small


def test_amount_str() -> None:
    assert str(Amount.of("0.001250", "USD")) == "0.00125 USD"
    assert str(Amount.of("0.019", "cny")) == "0.019 CNY"


OPERATIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_amounts_of_two_currencies_never_mix(operation: str) -> None:
    usd, cny = Amount.of("1", "USD"), Amount.of("1", "CNY")
    with pytest.raises(CurrencyMismatch) as info:
        OPERATIONS[operation](usd, cny)
    assert isinstance(info.value, InvalidInput)
    assert "USD" in str(info.value) and "CNY" in str(info.value)
    assert {info.value.context["left"], info.value.context["right"]} == {"USD", "CNY"}


def test_sum_amounts() -> None:
    parts = [Amount.of(x, "CNY") for x in ("0.003", "0.016")]
    assert sum_amounts(parts, "CNY") == Amount.of("0.019", "CNY")
    assert sum_amounts([], "cny") == Amount.zero("CNY")
    with pytest.raises(CurrencyMismatch):
        sum_amounts([*parts, Amount.of("1", "USD")], "CNY")
    with pytest.raises(CurrencyMismatch):
        sum_amounts(parts, "USD")


@prop
@given(st.lists(exact_decimals, max_size=20), currencies)
def test_sum_amounts_is_the_exact_sum(numbers: list[Decimal], currency: str) -> None:
    total = sum_amounts([Amount(n, currency) for n in numbers], currency)
    with localcontext() as ctx:
        ctx.prec = 200
        expected = sum(numbers, D(0))
    assert total == Amount(expected, currency)


@prop
@given(exact_decimals, exact_decimals, exact_decimals, currencies)
def test_addition_is_exact_commutative_and_associative(
    x: Decimal, y: Decimal, z: Decimal, currency: str
) -> None:
    a, b, c = (Amount(n, currency) for n in (x, y, z))
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert (a + b) - b == a
    assert a + -a == Amount.zero(currency)


@prop
@given(exact_decimals, exact_decimals, st.lists(currencies, min_size=2, max_size=2, unique=True))
def test_mixing_currencies_always_raises(x: Decimal, y: Decimal, pair: list[str]) -> None:
    a, b = Amount(x, pair[0]), Amount(y, pair[1])
    for operation in OPERATIONS.values():
        with pytest.raises(CurrencyMismatch):
            operation(a, b)


# --- converted amounts: round_converted, convert_at --------------------------------------------

STEP = Fraction(1, 10**CONVERTED_PLACES)
# Any scale, well past the ten places kept, and the exact ties (…5 at the eleventh place).
long_decimals = st.builds(lambda n, places: D(n).scaleb(-places),
                          st.integers(-(10**40), 10**40), st.integers(0, 40))
ties = st.builds(lambda n: D(n * 10 + 5).scaleb(-(CONVERTED_PLACES + 1)),
                 st.integers(-(10**15), 10**15))


@prop
@given(st.one_of(long_decimals, ties))
def test_round_converted_is_half_even_at_ten_places(value: Decimal) -> None:
    rounded = round_converted(value)
    error = Fraction(rounded) - Fraction(value)
    assert abs(error) <= STEP / 2
    assert Fraction(rounded) % STEP == 0  # on the grid of ten places
    if abs(error) == STEP / 2:  # a tie goes to the even last digit
        assert (Fraction(rounded) / STEP).numerator % 2 == 0


@prop
@given(st.one_of(long_decimals, ties))
def test_round_converted_is_idempotent_and_never_adds_places(value: Decimal) -> None:
    rounded = round_converted(value)
    assert round_converted(rounded) == rounded
    assert str(round_converted(rounded)) == str(rounded)
    assert decimal_places(rounded) <= min(CONVERTED_PLACES, decimal_places(value))
    exponent = rounded.as_tuple().exponent
    assert isinstance(exponent, int) and exponent >= -CONVERTED_PLACES  # not even zeros beyond
    if decimal_places(value) <= CONVERTED_PLACES:
        assert rounded == value  # nothing to round: the same number


@prop
@given(st.one_of(long_decimals, ties))
def test_round_converted_is_symmetric(value: Decimal) -> None:
    # a refund (the negated record) converts to exactly the negated amount
    assert round_converted(-value) == -round_converted(value)


def test_round_converted_examples() -> None:
    assert round_converted(D("0.0095546478873239436619718309858195")) == D("0.0095546479")
    assert round_converted(D("0.46884214000000000000000000000920")) == D("0.46884214")
    assert round_converted(D("0.00000000005")) == 0  # half to even: 0
    assert round_converted(D("0.00000000015")) == D("0.0000000002")
    assert round_converted(D("0.00000000025")) == D("0.0000000002")
    assert str(round_converted(D("7.100"))) == "7.100"


@prop
@given(st.lists(exact_decimals, max_size=10), exact_decimals.filter(lambda r: r > 0))
def test_convert_lines_is_the_exact_sum_of_converted_lines(lines: list[Decimal],
                                                           rate: Decimal) -> None:
    total = convert_lines(lines, rate)
    assert Fraction(total) == sum((Fraction(convert_at(a, rate)) for a in lines), Fraction(0))
    assert decimal_places(total) <= CONVERTED_PLACES


@pytest.mark.parametrize(("value", "currency", "shown"), [
    ("0.0095546478873239436619718309858195", "USD", "0.0096"),
    ("0.46884214000000000000000000000920", "USD", "0.47"),
    ("1234.5", "CNY", "1234.50"),
    ("0", "USD", "0.00"),
    ("-0", "USD", "0.00"),  # a refund of a call that cost nothing
    ("-0E-12", "JPY", "0"),
    ("0.004", "USD", "0.004"),  # not "0.00": a small budget keeps its digits
    ("0.00999", "USD", "0.01"),
    ("0.000999", "USD", "0.001"),
    ("-0.0042", "USD", "-0.0042"),
    ("1234.5", "JPY", "1235"),
    ("0.5", "JPY", "0.5"),
    ("12.345", None, "12.35"),
])
def test_readable(value: str, currency: str | None, shown: str) -> None:
    assert readable(D(value), currency) == shown


@prop
@given(exact_decimals, currencies)
def test_readable_is_close_and_never_zero_for_a_nonzero_amount(value: Decimal,
                                                              currency: str) -> None:
    shown = D(readable(value, currency))
    minor = D(1).scaleb(-MINOR_UNITS[currency])
    if abs(value) >= minor:
        assert abs(shown - value) <= minor / 2
    elif value:
        assert shown != 0 and abs(shown - value) <= abs(value) / 10
