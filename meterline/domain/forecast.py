"""Month-end spend forecast from a daily cost series, and the backtest that keeps it honest.

The method (docs/forecast.md has the reasoning and the backtest numbers), for a month of ``D``
days seen on day ``d`` with a fraction ``f`` of that day gone (``f = 1`` at the end of the day)::

    projected = spent so far + level × (weight of the rest of today + Σ weights of the days left)

    level  = ½ × (average of the last 7 complete days) + ½ × (average of the last 28 complete days)

A day's weight is 1, or — once 28 complete days of history exist — its weekday's factor: the
average spend of that weekday over the last 28 days divided by the average of all 28 days (so a
whole week weighs exactly 7). History runs across month boundaries, so on the 2nd of a month the
forecast still rests on four weeks of spending, where the naive projection
(``spent × D / days elapsed``) rests on one day. With no complete day at all, the level is today's
pace (spend ÷ fraction of the day gone, after the first hour). A negative level (refunds) counts
as zero, so the projection is never below what was spent.

Ledger money is exact; a forecast divides, so it works in its own context (34 digits, half-up)
and rounds the estimated part to 12 decimal places. ``spent`` is added to it exactly.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Final

from meterline.domain.money import MONEY_CONTEXT

#: A projection is an estimate: it may round, unlike ledger money (see module docstring).
FORECAST_CONTEXT: Final = Context(prec=34, rounding=ROUND_HALF_UP)
ESTIMATE_PLACES: Final = Decimal("1e-12")
RECENT_DAYS: Final = 7
LONG_DAYS: Final = 28
#: Weekday factors need every weekday seen four times.
SEASONAL_MIN_DAYS: Final = 28
#: Before an hour of the first day has gone, its pace says nothing.
MIN_FRACTION_FOR_PACE: Final = Decimal(1) / Decimal(24)
METHOD: Final = "recent-pace"
ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)

DailySeries = Mapping[date, Decimal]
BUCKETS: Final = ("overall", "days 1-7", "days 8-14", "days 15-21", "days 22+")


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def month_label(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(frozen=True, slots=True)
class Projection:
    """A month-end forecast and the numbers it was made from."""

    month: str
    as_of: date
    days_in_month: int
    spent: Decimal
    projected: Decimal
    naive: Decimal
    daily_level: Decimal
    #: Monday first; None when history was too short for weekday factors.
    weekday_factors: tuple[Decimal, ...] | None
    history_days: int
    method: str


def _value(series: DailySeries, day: date) -> Decimal:
    return series.get(day, ZERO)


def _first_day(series: DailySeries) -> date | None:
    return min(series) if series else None


def _history(series: DailySeries, last: date, count: int) -> list[Decimal]:
    """Up to ``count`` complete days ending with ``last``, oldest first; days missing from the
    series between its first day and ``last`` spent nothing."""
    first = _first_day(series)
    if first is None or last < first:
        return []
    available = (last - first).days + 1
    start = last - timedelta(days=min(count, available) - 1)
    return [_value(series, start + timedelta(days=i)) for i in range((last - start).days + 1)]


def _mean(values: Sequence[Decimal]) -> Decimal:
    return sum(values, ZERO) / len(values)


def weekday_factors(series: DailySeries, last: date) -> tuple[Decimal, ...] | None:
    """Each weekday's average over the last 28 complete days (ending ``last``) divided by the
    average of all 28: a whole week's factors add up to 7."""
    days = _history(series, last, LONG_DAYS)
    if len(days) < SEASONAL_MIN_DAYS:
        return None
    with localcontext(FORECAST_CONTEXT):
        overall = sum(days, ZERO)
        if overall <= 0:
            return None
        by_weekday: dict[int, list[Decimal]] = {}
        start = last - timedelta(days=len(days) - 1)
        for offset, value in enumerate(days):
            by_weekday.setdefault((start + timedelta(days=offset)).weekday(), []).append(value)
        # One division per factor: (sum_w / count_w) / (sum / n) = sum_w × n / (count_w × sum).
        return tuple(sum(by_weekday[w], ZERO) * len(days) / (len(by_weekday[w]) * overall)
                     for w in range(7))


def project(series: DailySeries, as_of: date, elapsed: Decimal = ONE) -> Projection:
    """Forecast the total of ``as_of``'s month, seen when ``elapsed`` (0 < elapsed ≤ 1) of day
    ``as_of`` has gone. Only days up to ``as_of`` are read, so a backtest may pass the whole
    series; ``series[as_of]`` is the spend of the day so far."""
    if not ZERO < elapsed <= ONE:
        raise ValueError(f"elapsed must be in (0, 1], not {elapsed}")
    month_start = as_of.replace(day=1)
    total_days = days_in_month(as_of)
    with localcontext(MONEY_CONTEXT):
        spent = sum((_value(series, month_start + timedelta(days=i))
                     for i in range(as_of.day)), ZERO)
    last_complete = as_of if elapsed == ONE else as_of - timedelta(days=1)
    long = _history(series, last_complete, LONG_DAYS)
    factors = weekday_factors(series, last_complete)
    with localcontext(FORECAST_CONTEXT):
        if long:
            recent = long[-RECENT_DAYS:]
            # ½ (s7 / n7 + s28 / n28) as one division, so that equal days give an exact level.
            level = ((sum(recent, ZERO) * len(long) + sum(long, ZERO) * len(recent))
                     / (2 * len(recent) * len(long)))
            method = METHOD + ("+weekday" if factors else "")
        elif elapsed >= MIN_FRACTION_FOR_PACE:
            level, method = _value(series, as_of) / elapsed, "todays-pace"
        else:
            level, method = ZERO, "no-history"
        level = max(level, ZERO)

        def weight(day: date) -> Decimal:
            return factors[day.weekday()] if factors else ONE

        remaining = (ONE - elapsed) * weight(as_of) + sum(
            (weight(as_of + timedelta(days=i)) for i in range(1, total_days - as_of.day + 1)),
            ZERO)
        estimate = (level * remaining).quantize(ESTIMATE_PLACES)
        days_elapsed = as_of.day - 1 + elapsed
        naive = (spent * total_days / days_elapsed).quantize(ESTIMATE_PLACES)
    with localcontext(MONEY_CONTEXT):
        projected = spent + estimate
    return Projection(month_label(as_of), as_of, total_days, spent, projected, naive,
                      level.quantize(ESTIMATE_PLACES), factors, len(long), method)


def naive_projection(spent: Decimal, day_of_month: int, total_days: int) -> Decimal:
    """The linear projection at the end of ``day_of_month``: spent × D / d."""
    with localcontext(FORECAST_CONTEXT):
        return spent * total_days / day_of_month


@dataclass(frozen=True, slots=True)
class Backtest:
    """MAPE (in %, two places) of month-end forecasts made at the end of every day of every
    complete month, by bucket of the day of the month."""

    months: tuple[str, ...]
    forecasts: int
    method: Mapping[str, Decimal]
    naive: Mapping[str, Decimal]
    #: Complete months whose actual total was zero (a percentage error has no meaning there).
    skipped: tuple[str, ...] = ()


def bucket(day_of_month: int) -> str:
    if day_of_month <= 7:
        return "days 1-7"
    if day_of_month <= 14:
        return "days 8-14"
    if day_of_month <= 21:
        return "days 15-21"
    return "days 22+"


def complete_months(series: DailySeries) -> list[date]:
    """First days of the months lying wholly between the series' first and last day."""
    if not series:
        return []
    first, last = min(series), max(series)
    month = first if first.day == 1 else (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    found = []
    while month.replace(day=days_in_month(month)) <= last:
        found.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


def backtest(series: DailySeries) -> Backtest:
    """For each day d of each complete month: the forecast made at the end of day d (from the
    series up to d only) against the month's actual total, for this method and the naive one."""
    errors: dict[str, dict[str, list[Decimal]]] = {
        name: {b: [] for b in BUCKETS} for name in ("method", "naive")}
    months, skipped = [], []
    for month in complete_months(series):
        total_days = days_in_month(month)
        with localcontext(MONEY_CONTEXT):
            actual = sum((_value(series, month + timedelta(days=i)) for i in range(total_days)),
                         ZERO)
        if actual <= 0:
            skipped.append(month_label(month))
            continue
        months.append(month_label(month))
        for offset in range(total_days):
            day = month + timedelta(days=offset)
            made = project(series, day)
            naive = naive_projection(made.spent, day.day, total_days)
            for name, value in (("method", made.projected), ("naive", naive)):
                with localcontext(FORECAST_CONTEXT):
                    error = abs(value - actual) / actual * 100
                errors[name]["overall"].append(error)
                errors[name][bucket(day.day)].append(error)
    return Backtest(tuple(months), len(errors["method"]["overall"]),
                    _mape(errors["method"]), _mape(errors["naive"]), tuple(skipped))


def _mape(errors: Mapping[str, list[Decimal]]) -> dict[str, Decimal]:
    with localcontext(FORECAST_CONTEXT):
        return {name: _mean(values).quantize(Decimal("0.01"))
                for name, values in errors.items() if values}
