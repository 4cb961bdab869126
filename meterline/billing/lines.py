"""Billed lines and balances as the providers' bills and APIs give them, checked and exact.

A line is one provider charge for a model over a period of days (``BilledPeriod``), in one
currency, with the provider's own row kept (``raw``: the JSON object or CSV row it came from).
Money is read from the provider's text (or from JSON parsed with Decimal for its numbers), never
through a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from meterline.domain.money import (
    MAX_PRICE_PLACES,
    currency_code,
    decimal,
    decimal_places,
    format_decimal,
)
from meterline.domain.reconcile import BilledPeriod
from meterline.errors import InvalidInput

#: Beyond any real bill; the bound keeps every sum exact (see money.py).
MAX_AMOUNT: Final = Decimal(10) ** 15


@dataclass(frozen=True, slots=True)
class BilledLine:
    """A billed period with the currency it is billed in, and the provider's row it came from
    (not part of equality: two lines are the same charge whatever their rows looked like)."""

    period: BilledPeriod
    currency: str
    raw: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Balance:
    """What a provider account holds, as the provider said it at ``at``."""

    provider: str
    account: str
    amount: Decimal
    currency: str
    at: datetime

    def to_json(self) -> dict[str, str]:
        return {"provider": self.provider, "account": self.account,
                "amount": format_decimal(self.amount), "currency": self.currency,
                "at": self.at.isoformat()}


def amount(value: object, where: str, column: str) -> Decimal:
    """A billed amount: a decimal number (text, integer or Decimal; never a float) below
    ``MAX_AMOUNT`` with at most 30 decimal places; refunds may be negative."""
    if isinstance(value, str):
        value = value.strip().replace(",", "")  # "1,234.50" as some consoles write it
    try:
        number = decimal(value, field=column)
    except InvalidInput:
        raise InvalidInput(f"{where}: {column} {value!r} is not a number", field=column) from None
    if abs(number) >= MAX_AMOUNT or decimal_places(number) > MAX_PRICE_PLACES:
        raise InvalidInput(f"{where}: {column} {value!r} is out of range (below {MAX_AMOUNT:,} "
                           f"with at most {MAX_PRICE_PLACES} decimal places)", field=column)
    return number


def currency(value: object, where: str, column: str) -> str:
    try:
        return currency_code(str(value or "").strip(), field=column)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", field=column) from None


def day(value: object, where: str, column: str) -> date:
    """A calendar day from ``2026-10-05``, ``2026/10/05``, ``2026-10-05 13:00:00`` or an ISO
    date-time (the day as written: a provider's bill days are its own)."""
    text = str(value or "").strip().replace("/", "-")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        raise InvalidInput(f"{where}: {column} {value!r} is not a date", field=column) from None


def model_name(provider: str, model: object) -> str:
    text = str(model or "").strip()
    return text if text.startswith(f"{provider}/") else f"{provider}/{text}"


def billed(provider: str, model: object, start: date, value: Decimal, code: str,
           raw: Mapping[str, Any], end: date | None = None) -> BilledLine:
    """A line of ``provider``'s for ``model`` from ``start`` until ``end`` (exclusive; one day
    by default)."""
    until = end if end is not None and end > start else start + timedelta(days=1)
    return BilledLine(BilledPeriod(provider, model_name(provider, model), start, until, value),
                      code, raw)


def first(row: Mapping[str, Any], *columns: str) -> str:
    """The first of ``columns`` the row has a non-empty value in ("" when none has)."""
    for column in columns:
        value = row.get(column)
        if value is not None and str(value).strip():
            return str(value).strip()
    return ""
