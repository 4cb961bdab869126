"""meterline.domain.forecast: the month-end projection and its backtest."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.forecast import (
    backtest,
    complete_months,
    days_in_month,
    naive_projection,
    project,
    weekday_factors,
)

D = Decimal
prop = settings(deadline=None, max_examples=200)

amounts = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False,
                      allow_infinity=False)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


def series_of(start: date, values: list[Decimal]) -> dict[date, Decimal]:
    return {start + timedelta(days=i): v for i, v in enumerate(values)}


@prop
@given(amounts, days, st.integers(0, 70), st.sampled_from(["1", "0.25", "0.5", "0.75"]))
def test_a_constant_daily_spend_projects_exactly(daily, as_of, history, elapsed):
    """Whatever the history length (none, some, enough for weekday factors) and however much of
    today has gone, c a day projects to exactly c × days in the month."""
    fraction = D(elapsed)
    start = as_of.replace(day=1) - timedelta(days=history)
    series = series_of(start, [daily] * ((as_of - start).days + 1))
    series[as_of] = daily * fraction  # today so far
    made = project(series, as_of, fraction)
    assert made.projected == daily * days_in_month(as_of)
    assert made.spent == daily * (as_of.day - 1) + daily * fraction
    assert made.naive == daily * days_in_month(as_of)


@prop
@given(st.lists(st.decimals(min_value=-50, max_value=10_000, places=4, allow_nan=False,
                            allow_infinity=False), min_size=1, max_size=90),
       days, st.sampled_from(["1", "0.01", "0.5"]))
def test_the_projection_is_never_below_what_was_spent(values, as_of, elapsed):
    """Refunds (negative days) included: the rest of the month is never forecast below zero."""
    series = series_of(as_of - timedelta(days=len(values) - 1), values)
    made = project(series, as_of, D(elapsed))
    assert made.projected >= made.spent
    assert made.spent == sum((v for d, v in series.items() if d.month == as_of.month
                              and d.year == as_of.year), D(0))


def test_days_after_as_of_are_not_read():
    series = series_of(date(2026, 3, 1), [D(5)] * 31)
    peeked = dict(series)
    peeked[date(2026, 3, 20)] = D(10_000)
    assert project(series, date(2026, 3, 10)) == project(peeked, date(2026, 3, 10))


def test_weekday_factors_shape_the_rest_of_the_month():
    # Four weeks of history from Monday 2026-02-02: 10 on weekdays, nothing at weekends.
    start = date(2026, 2, 2)
    values = [D(10) if (start + timedelta(days=i)).weekday() < 5 else D(0) for i in range(32)]
    series = series_of(start, values)
    factors = weekday_factors(series, date(2026, 3, 1))
    assert factors == (D("1.4"),) * 5 + (D(0), D(0))
    made = project(series, date(2026, 3, 5))  # a Thursday: 18 weekdays left in March
    assert made.method == "recent-pace+weekday" and made.daily_level == D("7.142857142857")
    weekdays_left = sum(1 for d in range(6, 32) if date(2026, 3, d).weekday() < 5)
    assert weekdays_left == 18
    assert made.spent == D(40)
    assert made.projected == D(40) + (D(10) * weekdays_left).quantize(D("1"))
    # Without weekday factors (history too short) every day weighs the same.
    short = project(series_of(date(2026, 3, 2), values[28:]), date(2026, 3, 5))
    assert short.method == "recent-pace" and short.weekday_factors is None


def test_the_first_hours_of_a_series_use_todays_pace():
    today = date(2026, 4, 1)
    assert project({today: D(2)}, today, D("0.25")).projected == D(2) + D(8) * D("29.75")
    too_early = project({today: D(2)}, today, D("0.01"))
    assert (too_early.projected, too_early.method) == (D(2), "no-history")
    assert project({}, today, D("0.5")).projected == 0
    with pytest.raises(ValueError, match="elapsed"):
        project({}, today, D(0))


def test_naive_projection_is_linear():
    assert naive_projection(D(10), 10, 30) == D(30)
    # Estimates round at 34 significant digits (FORECAST_CONTEXT), not the default 28.
    assert naive_projection(D(1), 3, 31) == D("10." + "3" * 32)


def test_complete_months_lie_wholly_inside_the_series():
    series = series_of(date(2026, 1, 15), [D(1)] * 80)  # 15 Jan .. 4 Apr
    assert complete_months(series) == [date(2026, 2, 1), date(2026, 3, 1)]
    assert complete_months(series_of(date(2026, 2, 1), [D(1)] * 28)) == [date(2026, 2, 1)]
    assert complete_months(series_of(date(2026, 2, 1), [D(1)] * 27)) == []
    assert complete_months({}) == []


def _reference_mape(values: list[int], start: date) -> dict[str, dict[str, Fraction]]:
    """Both methods recomputed with fractions from their definitions, for a series of one month
    starting on its 1st (shorter than 28 days of history, so no weekday factors)."""
    total_days = len(values)
    actual = Fraction(sum(values))
    errors: dict[str, dict[str, list[Fraction]]] = {"method": {}, "naive": {}}
    for d in range(1, total_days + 1):
        seen = [Fraction(v) for v in values[:d]]
        spent = sum(seen)
        recent = seen[-7:]
        level = (sum(recent) / len(recent) + sum(seen) / len(seen)) / 2
        ours = spent + level * (total_days - d)
        naive = spent * total_days / d
        key = ("days 1-7" if d <= 7 else "days 8-14" if d <= 14
               else "days 15-21" if d <= 21 else "days 22+")
        for name, value in (("method", ours), ("naive", naive)):
            error = abs(value - actual) / actual * 100
            errors[name].setdefault(key, []).append(error)
            errors[name].setdefault("overall", []).append(error)
    return {name: {k: sum(v) / len(v) for k, v in buckets.items()}
            for name, buckets in errors.items()}


def test_backtest_arithmetic_on_a_hand_made_month():
    # February 2026: 1 a day for two weeks, then 3 a day: the month costs 56.
    values = [1] * 14 + [3] * 14
    series = series_of(date(2026, 2, 1), [D(v) for v in values])
    result = backtest(series)
    assert result.months == ("2026-02",) and result.forecasts == 28 and not result.skipped
    # Days 1-14 both methods see 1 a day and project 28: 50% off, every day.
    for name in ("method", "naive"):
        mapes = getattr(result, name)
        assert mapes["days 1-7"] == mapes["days 8-14"] == D("50.00")
    # Day 15 by hand: level = (9/7 + 17/15) / 2 = 127/105; 17 + 13 × 127/105 = 3436/105.
    assert project(series, date(2026, 2, 15)).projected == D("32.723809523810")
    reference = _reference_mape(values, date(2026, 2, 1))
    for name in ("method", "naive"):
        with localcontext(Context(prec=50, rounding=ROUND_HALF_UP)):
            expected = {k: (D(v.numerator) / D(v.denominator)).quantize(D("0.01"))
                        for k, v in reference[name].items()}
        assert dict(getattr(result, name)) == expected
    assert result.method["overall"] < result.naive["overall"]


def test_backtest_skips_months_without_spend_and_partial_months():
    series = series_of(date(2026, 1, 20), [D(0)] * 40 + [D(2)] * 40)  # 20 Jan .. 9 Apr
    result = backtest(series)
    assert result.skipped == ("2026-02",) and result.months == ("2026-03",)
    assert result.forecasts == 31
    assert backtest({}).months == () and backtest({}).method == {}
