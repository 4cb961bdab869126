"""Foreign-exchange rates with effective dates.

A rate says: from ``effective_from`` on, 1 ``base`` = ``rate`` ``quote``. The rate in force at a
call's timestamp converts it; the rate used is stored with the record, so a bill can always be
explained. Where only the opposite direction is stored, its reciprocal is used (to 28 significant
digits) and that derived rate is what gets stored. Where no rate covers the time, the conversion
fails with :class:`FxRateMissing` and the caller records the amount unconverted and marked.
Every conversion goes through :func:`meterline.domain.money.convert_at` (10 decimal places,
half-even), here or, where the rate is already known, directly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from meterline.domain.money import Amount, convert_at, currency_code, unit_price
from meterline.errors import FxRateMissing, InvalidInput

_RECIPROCAL = Context(prec=28)


@dataclass(frozen=True, slots=True)
class FxRate:
    base: str
    quote: str
    rate: Decimal
    effective_from: datetime

    @classmethod
    def parse(cls, base: str, quote: str, rate: object, effective_from: datetime) -> FxRate:
        base_code = currency_code(base, field="base")
        quote_code = currency_code(quote, field="quote")
        if base_code == quote_code:
            raise InvalidInput("base and quote currencies must differ", field="quote")
        value = unit_price(rate, field="rate")
        if value <= 0:
            raise InvalidInput(f"rate: must be greater than zero, got {rate!r}", field="rate")
        if effective_from.tzinfo is None:
            raise InvalidInput("effective_from needs a timezone", field="effective_from")
        return cls(base_code, quote_code, value, effective_from)


class FxTable:
    """The stored rates, looked up by currency pair and time."""

    def __init__(self, rates: Iterable[FxRate] = ()) -> None:
        self._by_pair: dict[tuple[str, str], list[FxRate]] = {}
        for rate in rates:
            self.add(rate)

    def add(self, rate: FxRate) -> None:
        series = self._by_pair.setdefault((rate.base, rate.quote), [])
        series.append(rate)
        series.sort(key=lambda r: r.effective_from)

    def _in_force(self, base: str, quote: str, at: datetime) -> FxRate | None:
        series = self._by_pair.get((base, quote))
        if not series:
            return None
        index = bisect.bisect_right([r.effective_from for r in series], at) - 1
        return series[index] if index >= 0 else None

    def rate(self, base: str, quote: str, at: datetime) -> Decimal:
        """Units of ``quote`` per unit of ``base`` at time ``at``."""
        if base == quote:
            return Decimal(1)
        direct = self._in_force(base, quote, at)
        if direct is not None:
            return direct.rate
        inverse = self._in_force(quote, base, at)
        if inverse is not None:
            return _RECIPROCAL.divide(Decimal(1), inverse.rate)
        raise FxRateMissing(
            f"no FX rate from {base} to {quote} in force at {at.isoformat()}",
            base=base,
            quote=quote,
            at=at.isoformat(),
        )

    def convert(self, amount: Amount, to: str, at: datetime) -> tuple[Amount, Decimal]:
        """The converted amount (``convert_at``: 10 places, half-even) and the rate used; an
        amount already in ``to`` is not converted, so it stays exact."""
        if amount.currency == to:
            return amount, Decimal(1)
        rate = self.rate(amount.currency, to, at)
        return Amount(convert_at(amount.number, rate), to), rate

    def converted(self, number: Decimal, base: str, quote: str, at: datetime) -> Decimal:
        """``number`` of ``base`` in ``quote`` at the rate in force at ``at`` (FxRateMissing
        where none is); in its own currency it stays exact."""
        if base == quote:
            return number
        return convert_at(number, self.rate(base, quote, at))

    def rates_between(self, base: str, quote: str, start: datetime, end: datetime
                      ) -> set[Decimal]:
        """Every rate ``rate(base, quote, at)`` gives for some ``at`` in [start, end) (none
        for the times no rate covers)."""
        changes = sorted(r.effective_from for pair in ((base, quote), (quote, base))
                         for r in self._by_pair.get(pair, ()) if start < r.effective_from < end)
        found = set()
        for at in (start, *changes):
            try:
                found.add(self.rate(base, quote, at))
            except FxRateMissing:
                continue
        return found

    def all(self) -> list[FxRate]:
        return [rate for series in self._by_pair.values() for rate in series]
