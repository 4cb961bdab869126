"""meterline.domain.fx: FX rates with effective dates, inverse rates, conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.fx import FxRate, FxTable
from meterline.domain.money import CONVERTED_PLACES, Amount, convert_at, decimal_places
from meterline.errors import FxRateMissing, InvalidInput

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
prop = settings(deadline=None, max_examples=200)


def usd_cny() -> FxTable:
    # added out of order on purpose
    return FxTable([FxRate.parse("USD", "CNY", "7.2", FEB), FxRate.parse("usd", "cny", "7.1", JAN)])


# --- FxRate.parse ------------------------------------------------------------------------------

def test_parse_normalises_and_keeps_the_rate_exact() -> None:
    rate = FxRate.parse("usd", "cny", "7.1234", JAN)
    assert rate == FxRate("USD", "CNY", D("7.1234"), JAN)


@pytest.mark.parametrize(
    ("base", "quote", "rate", "effective_from", "field"),
    [
        ("XXX", "CNY", "7.1", JAN, "base"),
        ("USD", "ZZZ", "7.1", JAN, "quote"),
        ("USD", "usd", "1", JAN, "quote"),
        ("USD", "CNY", "0", JAN, "rate"),
        ("USD", "CNY", "-7.1", JAN, "rate"),
        ("USD", "CNY", 7.1, JAN, "rate"),
        ("USD", "CNY", "seven", JAN, "rate"),
        ("USD", "CNY", "7.1", datetime(2026, 1, 1), "effective_from"),
    ],
)
def test_parse_refuses_bad_input_naming_the_field(
    base: str, quote: str, rate: object, effective_from: datetime, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        FxRate.parse(base, quote, rate, effective_from)
    assert info.value.field == field
    assert field in str(info.value)


# --- rate in force -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (JAN, D("7.1")),  # inclusive at effective_from
        (JAN + timedelta(days=15), D("7.1")),
        (FEB - timedelta(microseconds=1), D("7.1")),
        (FEB, D("7.2")),
        (datetime(2030, 6, 1, tzinfo=UTC), D("7.2")),
        # 08:00 at +08:00 is midnight UTC: the February rate is already in force
        (datetime(2026, 2, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))), D("7.2")),
        (datetime(2026, 2, 1, 7, 59, tzinfo=timezone(timedelta(hours=8))), D("7.1")),
    ],
)
def test_rate_in_force_by_effective_date(at: datetime, expected: Decimal) -> None:
    assert usd_cny().rate("USD", "CNY", at) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (JAN, D("0.1408450704225352112676056338")),  # 1/7.1 to 28 significant digits
        (FEB, D("0.1388888888888888888888888889")),  # 1/7.2, last digit rounded
    ],
)
def test_inverse_rate_is_the_reciprocal_to_28_digits(at: datetime, expected: Decimal) -> None:
    assert usd_cny().rate("CNY", "USD", at) == expected


def test_inverse_of_a_terminating_rate_is_exact() -> None:
    table = FxTable([FxRate.parse("USD", "CNY", "8", JAN)])
    assert table.rate("CNY", "USD", JAN) == D("0.125")


def test_direct_rate_wins_over_inverse() -> None:
    table = FxTable([FxRate.parse("USD", "CNY", "8", JAN), FxRate.parse("CNY", "USD", "0.13", JAN)])
    assert table.rate("CNY", "USD", JAN) == D("0.13")
    assert table.rate("USD", "CNY", JAN) == D("8")


def test_same_currency_needs_no_rate() -> None:
    assert FxTable().rate("USD", "USD", JAN) == D(1)


@pytest.mark.parametrize(
    ("base", "quote", "at"),
    [
        ("USD", "CNY", JAN - timedelta(seconds=1)),  # before the first rate
        ("CNY", "USD", JAN - timedelta(seconds=1)),  # nor is there an inverse yet
        ("USD", "EUR", FEB),  # no such pair at all
        ("EUR", "CNY", FEB),
    ],
)
def test_missing_rate_raises(base: str, quote: str, at: datetime) -> None:
    with pytest.raises(FxRateMissing) as info:
        usd_cny().rate(base, quote, at)
    assert base in str(info.value) and quote in str(info.value)
    assert info.value.context == {"base": base, "quote": quote, "at": at.isoformat()}


def test_later_rate_with_same_start_is_used() -> None:
    table = FxTable([FxRate.parse("USD", "CNY", "7.1", JAN)])
    table.add(FxRate.parse("USD", "CNY", "7.15", JAN))
    assert table.rate("USD", "CNY", JAN) == D("7.15")


def test_all_lists_every_stored_rate() -> None:
    rates = usd_cny().all()
    assert sorted((r.base, r.quote, r.rate) for r in rates) == [
        ("USD", "CNY", D("7.1")), ("USD", "CNY", D("7.2"))
    ]


# --- conversion --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("amount", "to", "at", "expected", "rate"),
    [
        (Amount.of("0.00125", "USD"), "CNY", JAN, Amount.of("0.008875", "CNY"), D("7.1")),
        (Amount.of("100", "USD"), "CNY", FEB, Amount.of("720", "CNY"), D("7.2")),
        (Amount.of("0.019", "CNY"), "CNY", JAN, Amount.of("0.019", "CNY"), D(1)),
    ],
)
def test_convert(amount: Amount, to: str, at: datetime, expected: Amount, rate: Decimal) -> None:
    assert usd_cny().convert(amount, to, at) == (expected, rate)


def test_convert_with_inverse_rate_is_unrounded() -> None:
    table = FxTable([FxRate.parse("USD", "CNY", "8", JAN)])
    converted, rate = table.convert(Amount.of("0.019", "CNY"), "USD", JAN)
    assert rate == D("0.125")
    assert converted == Amount.of("0.002375", "USD")


def test_convert_without_rate_raises() -> None:
    with pytest.raises(FxRateMissing):
        usd_cny().convert(Amount.of("1", "EUR"), "USD", FEB)


# --- properties --------------------------------------------------------------------------------

rates = st.builds(lambda n, places: D(n).scaleb(-places),
                  st.integers(1, 10**9), st.integers(0, 8))
amounts = st.builds(lambda n, places: D(n).scaleb(-places),
                    st.integers(-(10**15), 10**15), st.integers(0, 18))
pairs = st.sampled_from([("USD", "CNY"), ("EUR", "USD"), ("JPY", "CNY"), ("GBP", "HKD")])


@prop
@given(rates, amounts, pairs, st.booleans())
def test_convert_then_stored_rate_reproduces_the_amount(
    stored: Decimal, number: Decimal, pair: tuple[str, str], inverse: bool
) -> None:
    base, quote = pair
    table = FxTable([FxRate.parse(base, quote, stored, JAN)])
    source, target = (quote, base) if inverse else (base, quote)
    amount = Amount(number, source)
    converted, used = table.convert(amount, target, FEB)
    assert converted.currency == target
    # the record keeps (amount, rate): the product rounded once, half-even, to 10 places
    # (money.convert_at) gives exactly the converted amount again
    exact = Fraction(number) * Fraction(used)
    assert abs(Fraction(converted.number) - exact) <= Fraction(1, 2 * 10**CONVERTED_PLACES)
    assert converted.number == convert_at(number, used)
    assert decimal_places(converted.number) <= CONVERTED_PLACES
    assert used == table.rate(source, target, FEB)
    if inverse:
        # the reciprocal is 1/stored to 28 significant digits
        assert abs(Fraction(used) * Fraction(stored) - 1) <= Fraction(1, 10**27)
    else:
        assert used == stored


@prop
@given(
    st.lists(st.tuples(st.integers(0, 400), rates), min_size=1, max_size=8,
             unique_by=lambda pair: pair[0]),
    st.integers(-10, 410),
    st.integers(0, 86_399),
)
def test_rate_in_force_is_the_latest_not_after_at(
    series: list[tuple[int, Decimal]], day: int, second: int
) -> None:
    table = FxTable(FxRate.parse("USD", "CNY", r, JAN + timedelta(days=d)) for d, r in series)
    at = JAN + timedelta(days=day, seconds=second)
    started = [(d, r) for d, r in series if JAN + timedelta(days=d) <= at]
    if not started:
        with pytest.raises(FxRateMissing):
            table.rate("USD", "CNY", at)
    else:
        assert table.rate("USD", "CNY", at) == max(started)[1]


@prop
@given(rates)
def test_reciprocal_has_28_significant_digits_at_most(stored: Decimal) -> None:
    table = FxTable([FxRate.parse("USD", "CNY", stored, JAN)])
    inverse = table.rate("CNY", "USD", JAN)
    assert len(inverse.normalize().as_tuple().digits) <= 28
    with localcontext() as ctx:
        ctx.prec = 28
        assert inverse == D(1) / stored


def test_rates_between_are_those_in_force_at_some_time_of_the_span() -> None:
    table = usd_cny()  # 7.1 from JAN, 7.2 from FEB
    march = datetime(2026, 3, 1, tzinfo=UTC)
    assert table.rates_between("USD", "CNY", JAN, FEB) == {D("7.1")}
    assert table.rates_between("USD", "CNY", JAN + timedelta(days=3), march) == {D("7.1"),
                                                                                D("7.2")}
    assert table.rates_between("USD", "CNY", FEB, march) == {D("7.2")}
    # before any rate: none; the inverse direction: reciprocals
    assert table.rates_between("USD", "CNY", JAN - timedelta(days=9), JAN) == set()
    assert table.rates_between("CNY", "USD", FEB, march) == {table.rate("CNY", "USD", FEB)}
