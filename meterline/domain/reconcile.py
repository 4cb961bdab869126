"""Reconciliation: what meterline metered against what a provider billed (SPEC §1, §6).

Both sides are amounts per provider and model in one currency. Metered amounts come per day;
a provider's bill line covers a charge period (a day, or a whole month in a monthly bill), so
each billed period is compared with the metered days inside it, and metered days that no billed
period of that provider and model covers are rows of their own (``only_metered``).

A row's status: ``match`` when the difference is within ``tolerance`` (a share of the metered
amount: 0.01 is 1 %), else ``over`` (billed more than metered) or ``under``; ``only_metered`` and
``only_billed`` when one side has nothing. Amounts stay exact; ``difference_pct`` is the
difference as a percentage of the metered amount, rounded half-up to two places for display.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NamedTuple

from meterline.domain.money import MONEY_CONTEXT, ROUNDING_CONTEXT, ZERO, format_decimal
from meterline.errors import InvalidInput

DEFAULT_TOLERANCE: Final = Decimal("0.01")
_PERCENT_PLACES: Final = Decimal("0.01")


class MeteredDay(NamedTuple):
    provider: str
    model: str
    day: date
    amount: Decimal


class BilledPeriod(NamedTuple):
    """A provider's charge for a model over ``start`` (inclusive) to ``end`` (exclusive)."""

    provider: str
    model: str
    start: date
    end: date
    amount: Decimal


class Row(NamedTuple):
    provider: str
    model: str
    start: date
    end: date
    metered: Decimal | None
    billed: Decimal | None
    status: str

    @property
    def difference(self) -> Decimal:
        return MONEY_CONTEXT.subtract(self.billed or ZERO, self.metered or ZERO)

    @property
    def difference_pct(self) -> Decimal | None:
        if not self.metered:
            return None
        # for display only: the one rounding here
        share = ROUNDING_CONTEXT.divide(MONEY_CONTEXT.multiply(self.difference, 100),
                                        self.metered)
        return share.quantize(_PERCENT_PLACES, rounding=ROUND_HALF_UP, context=ROUNDING_CONTEXT)

    def to_json(self) -> dict[str, Any]:
        pct = self.difference_pct
        return {
            "provider": self.provider, "model": self.model, "date": self.start.isoformat(),
            "until": self.end.isoformat(),
            "metered": format_decimal(self.metered) if self.metered is not None else None,
            "billed": format_decimal(self.billed) if self.billed is not None else None,
            "difference": format_decimal(self.difference),
            "difference_pct": format_decimal(pct) if pct is not None else None,
            "status": self.status,
        }


def tolerance_of(value: object) -> Decimal:
    """A share from 0 to 1 (``0.01`` is 1 %), from a number or its text."""
    try:
        share = Decimal(str(value).strip()) if not isinstance(value, bool) else None
    except ArithmeticError:
        share = None
    if share is None or not share.is_finite() or not ZERO <= share <= 1:
        raise InvalidInput(f"tolerance: a share from 0 to 1 (0.01 is 1 %), not {value!r}",
                           field="tolerance")
    return share


def status_of(metered: Decimal | None, billed: Decimal | None, tolerance: Decimal) -> str:
    if billed is None:
        return "only_metered"
    if metered is None:
        return "only_billed"
    difference = MONEY_CONTEXT.subtract(billed, metered)
    if abs(difference) <= MONEY_CONTEXT.multiply(abs(metered), tolerance):
        return "match"
    return "over" if difference > 0 else "under"


def reconcile(metered: Iterable[MeteredDay], billed: Iterable[BilledPeriod],
              tolerance: Decimal = DEFAULT_TOLERANCE) -> list[Row]:
    """Rows ordered by provider, model and date."""
    periods: dict[tuple[str, str, date, date], Decimal] = {}
    for line in billed:
        if line.end <= line.start:
            raise InvalidInput(f"billed period of {line.provider}/{line.model} ends "
                               f"({line.end}) before it starts ({line.start})", field="period")
        key = (line.provider, line.model, line.start, line.end)
        periods[key] = MONEY_CONTEXT.add(periods.get(key, ZERO), line.amount)
    by_model: dict[tuple[str, str], list[tuple[date, date]]] = {}
    for provider, model, start, end in sorted(periods):
        by_model.setdefault((provider, model), []).append((start, end))

    covered: dict[tuple[str, str, date, date], Decimal] = {}
    alone: dict[tuple[str, str, date], Decimal] = {}
    for provider, model, day, amount in metered:
        period = next(((start, end) for start, end in by_model.get((provider, model), ())
                       if start <= day < end), None)
        if period is None:
            day_key = (provider, model, day)
            alone[day_key] = MONEY_CONTEXT.add(alone.get(day_key, ZERO), amount)
        else:
            covering = (provider, model, *period)
            covered[covering] = MONEY_CONTEXT.add(covered.get(covering, ZERO), amount)

    rows = [Row(provider, model, start, end, covered.get((provider, model, start, end)),
                amount, status_of(covered.get((provider, model, start, end)), amount,
                                  tolerance))
            for (provider, model, start, end), amount in periods.items()]
    rows += [Row(provider, model, day, date.fromordinal(day.toordinal() + 1), amount, None,
                 "only_metered")
             for (provider, model, day), amount in alone.items()]
    return sorted(rows, key=lambda row: (row.provider, row.model, row.start, row.end))
