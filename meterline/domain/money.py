"""Money: Decimal numbers, currencies and amounts.

Every money value enters the system through :func:`decimal` (floats are refused: 0.1 is not a
price) and travels as an :class:`Amount`, which will not mix currencies. Ledger amounts stay
unrounded; :meth:`Amount.rounded` is called once, when a bill is issued. The one other rounding
is of a converted amount: :func:`convert_at`, the only place an amount is multiplied by an FX
rate, keeps :data:`CONVERTED_PLACES` decimal places (docs/decisions.md, "Converted amounts").
:func:`readable` is for people only: text tables, alert messages, the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Final

from meterline.errors import CurrencyMismatch, InvalidInput

#: Minor units (digits after the point) of the currencies meterline knows, by ISO 4217 code.
MINOR_UNITS: Final[dict[str, int]] = {
    "USD": 2, "CNY": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KRW": 0, "HKD": 2, "SGD": 2,
    "TWD": 2, "AUD": 2, "CAD": 2, "CHF": 2, "INR": 2, "BRL": 2, "MXN": 2, "RUB": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "IDR": 2, "THB": 2, "VND": 0, "MYR": 2,
    "PHP": 2, "AED": 2, "SAR": 2, "TRY": 2, "ZAR": 2, "NZD": 2, "ILS": 2, "CZK": 2,
}

#: Arithmetic context for money. A price (< 10^12, at most 30 decimal places: 42 digits) times
#: a quantity (< 10^15, at most 6 places: 21 digits) has at most 63 digits, and dividing by a
#: unit size only moves the point, so 80 digits keep every ledger amount and sum exact — and
#: should anything ever need rounding, the Inexact trap raises instead of rounding silently.
MONEY_CONTEXT: Final = Context(prec=80, rounding=ROUND_HALF_UP,
                               traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
#: For the one deliberate rounding: a bill's amounts to the currency's minor unit.
ROUNDING_CONTEXT: Final = Context(prec=60, rounding=ROUND_HALF_UP)
#: FX conversion multiplies by a rate of up to 28 digits; 120 digits keep the product exact.
CONVERSION_CONTEXT: Final = Context(prec=120, rounding=ROUND_HALF_UP,
                                    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
#: Decimal places of an amount converted into another currency. A reciprocal rate has 28
#: significant digits, so an exact product carries thirty-odd places that are noise, not money;
#: ten keep a millionth of a cent (an amount per token is ~1e-7) and every sum of them short.
CONVERTED_PLACES: Final = 10
_CONVERTED_EXPONENT: Final = Decimal(1).scaleb(-CONVERTED_PLACES)
_CONVERTED_ROUNDING: Final = Context(prec=160, rounding=ROUND_HALF_EVEN,
                                     traps=[InvalidOperation, DivisionByZero, Overflow])
MAX_PRICE: Final = Decimal(10) ** 12
MAX_PRICE_PLACES: Final = 30

ZERO: Final = Decimal(0)


def decimal(value: object, *, field: str = "amount") -> Decimal:
    """The one way to make a money Decimal: from str, int or Decimal; never from float."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool | float):
        raise InvalidInput(f"{field}: give money as a string or integer, not {value!r}",
                           field=field)
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(f"{field}: {value!r} is not a decimal number", field=field) from None
    else:
        raise InvalidInput(f"{field}: {value!r} is not a decimal number", field=field)
    if not result.is_finite():
        raise InvalidInput(f"{field}: {value!r} is not a finite number", field=field)
    return result


def decimal_places(value: Decimal) -> int:
    """Digits after the point, trailing zeros not counted ("0.150" -> 2, "1E-30" -> 30)."""
    if not value:
        return 0
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing))


def unit_price(value: object, *, field: str) -> Decimal:
    """A price or rate: 0 ≤ value < 10^12 with at most 30 decimal places (see MONEY_CONTEXT)."""
    number = decimal(value, field=field)
    if number < 0:
        raise InvalidInput(f"{field}: must not be negative, got {value!r}", field=field)
    if number >= MAX_PRICE or decimal_places(number) > MAX_PRICE_PLACES:
        raise InvalidInput(f"{field}: must be below {MAX_PRICE:,} with at most "
                           f"{MAX_PRICE_PLACES} decimal places, got {value!r}", field=field)
    return number


def currency_code(value: object, *, field: str = "currency") -> str:
    """Validate and normalise an ISO 4217 code that meterline knows."""
    if not isinstance(value, str) or value.upper() not in MINOR_UNITS:
        raise InvalidInput(
            f"{field}: unknown currency {value!r}; known: {', '.join(sorted(MINOR_UNITS))}",
            field=field,
        )
    return value.upper()


def format_decimal(value: Decimal) -> str:
    """Plain notation without exponent or trailing zeros ("0.00125", "12", "0")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def round_converted(value: Decimal) -> Decimal:
    """A converted amount to at most CONVERTED_PLACES decimal places, half-even (unbiased: over
    many conversions the roundings cancel out instead of drifting up). A value that already
    has no more places is returned as it is, so rounding again changes nothing."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -CONVERTED_PLACES:
        return value
    return value.quantize(_CONVERTED_EXPONENT, context=_CONVERTED_ROUNDING)


def convert_at(number: Decimal, rate: Decimal) -> Decimal:
    """``number`` in another currency at ``rate``: the one conversion every part of meterline
    uses (ledger, rollups, budgets, statistics, forecasts, reconciliation), so the same amount
    converts to the same number everywhere. Sums of converted amounts are then exact."""
    return round_converted(CONVERSION_CONTEXT.multiply(number, rate))


def convert_lines(amounts: Iterable[Decimal], rate: Decimal) -> Decimal:
    """A record's amount converted line by line: the sum of its converted charge lines, which
    is what the bill lines (summed from converted lines) add up to."""
    total = ZERO
    for amount in amounts:
        total = MONEY_CONTEXT.add(total, convert_at(amount, rate))
    return total


#: Significant digits :func:`readable` keeps of an amount below the currency's minor unit.
READABLE_DIGITS: Final = 2


def readable(value: Decimal, currency: str | None = None) -> str:
    """An amount for a person to read, never for arithmetic: the currency's minor digits
    ("0.47", "1234.50"; 2 for an unknown or no currency), or, below one minor unit, two
    significant digits ("0.0096", "0.00012", "0.003"), so a small amount never reads as zero."""
    places = MINOR_UNITS.get(currency or "", 2)
    minor = Decimal(1).scaleb(-places)
    with localcontext(ROUNDING_CONTEXT):
        if value == 0:
            shown = abs(value).quantize(minor)  # a refunded zero reads "0.00", not "-0.00"
        elif abs(value) >= minor:
            shown = value.quantize(minor, rounding=ROUND_HALF_UP)
        else:
            shown = value.quantize(_significant(value), rounding=ROUND_HALF_UP)
            if abs(shown) >= minor:  # 0.00999 -> 0.0100: a whole minor unit after all
                shown = shown.quantize(minor)
            elif shown.adjusted() > value.adjusted():  # 0.000999 -> 0.00100: one digit too many
                shown = shown.quantize(_significant(shown))
            return format_decimal(shown)  # "0.003", not "0.0030"
    return format(shown, "f")


def _significant(value: Decimal) -> Decimal:
    return Decimal(1).scaleb(value.adjusted() - READABLE_DIGITS + 1)


def quantize_minor(value: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    exponent = Decimal(1).scaleb(-MINOR_UNITS[currency])
    with localcontext(ROUNDING_CONTEXT):
        return value.quantize(exponent, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Amount:
    """An exact amount of money in one currency."""

    number: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.number, Decimal):
            raise TypeError(f"Amount.number must be Decimal, got {type(self.number).__name__}")
        if self.currency not in MINOR_UNITS:
            raise InvalidInput(f"unknown currency {self.currency!r}", field="currency")

    @classmethod
    def of(cls, number: object, currency: str) -> Amount:
        return cls(decimal(number), currency_code(currency))

    @classmethod
    def zero(cls, currency: str) -> Amount:
        return cls(ZERO, currency_code(currency))

    def _same(self, other: Amount) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} and {other.currency}",
                left=self.currency,
                right=other.currency,
            )

    def __add__(self, other: Amount) -> Amount:
        self._same(other)
        with localcontext(MONEY_CONTEXT):
            return Amount(self.number + other.number, self.currency)

    def __sub__(self, other: Amount) -> Amount:
        self._same(other)
        with localcontext(MONEY_CONTEXT):
            return Amount(self.number - other.number, self.currency)

    def __neg__(self) -> Amount:
        return Amount(-self.number, self.currency)

    def __mul__(self, factor: Decimal | int) -> Amount:
        if isinstance(factor, float):
            raise TypeError("money cannot be multiplied by a float")
        with localcontext(MONEY_CONTEXT):
            return Amount(self.number * factor, self.currency)

    def __lt__(self, other: Amount) -> bool:
        self._same(other)
        return self.number < other.number

    def __le__(self, other: Amount) -> bool:
        self._same(other)
        return self.number <= other.number

    def rounded(self) -> Amount:
        """Half-up to the minor unit: for bills, at issue time only."""
        return Amount(quantize_minor(self.number, self.currency), self.currency)

    def __str__(self) -> str:
        return f"{format_decimal(self.number)} {self.currency}"


def sum_amounts(amounts: list[Amount], currency: str) -> Amount:
    total = Amount.zero(currency)
    for amount in amounts:
        total = total + amount
    return total
