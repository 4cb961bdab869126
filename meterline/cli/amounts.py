"""Amounts in the CLI's text output, rounded for a person to read (``money.readable``: the
currency's minor digits, two significant digits below one minor unit). ``--json`` prints the
exact values the API gives."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from meterline.domain.money import readable


def shown(value: Decimal | str | None, currency: str | None = None) -> str:
    """An exact amount (or money string of the API), rounded for reading; ``-`` where there is
    none."""
    if value is None or value == "":
        return "-"
    if isinstance(value, Decimal):
        return readable(value, currency)
    try:
        return readable(Decimal(value), currency)
    except InvalidOperation:
        return value  # not a number: shown as it came rather than hidden
