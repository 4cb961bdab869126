"""Numbers, dates and money as a page shows them in one locale (Babel's formats).

Money for reading follows :func:`meterline.domain.money.readable` — the one rule the CLI uses
too: the currency's minor digits, two significant digits below one minor unit — then gets the
locale's grouping. The exact amount stays in the ``title`` tooltip; exports carry exact values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal as babel_decimal
from babel.numbers import format_percent
from markupsafe import Markup

from meterline.domain.money import format_decimal, readable


def _decimal(value: Decimal | str | int | None) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None


class Formatter:
    """The formats of one locale (``en`` or ``zh_CN``), handed to every template as ``fmt``."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def number(self, value: int | Decimal | None) -> str:
        """A count or quantity, grouped (``12,345``), every digit kept."""
        if value is None:
            return "-"
        return str(babel_decimal(value, locale=self.locale, decimal_quantization=False))

    def percent(self, share: float | Decimal | None) -> str:
        """A share (0.9876) as a percentage with one decimal (``98.8%``); ``-`` without one."""
        if share is None:
            return "-"
        return str(format_percent(share, format="#,##0.0%", locale=self.locale))

    def day(self, value: date | str | None) -> str:
        if value is None:
            return "-"
        day = date.fromisoformat(value) if isinstance(value, str) else value
        return str(format_date(day, format="medium", locale=self.locale))

    def moment(self, value: datetime | None) -> str:
        """A time, in UTC (records of every tenant share one clock on the page)."""
        if value is None:
            return "-"
        return str(format_datetime(value, format="medium", tzinfo=UTC, locale=self.locale))

    def readable(self, value: Decimal | str | None, currency: str | None = None) -> str:
        """An amount rounded for reading, with the locale's grouping; ``-`` without one."""
        number = _decimal(value)
        if number is None:
            return "-" if value in (None, "") else str(value)
        text = readable(number, currency)
        places = len(text.partition(".")[2])
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return str(babel_decimal(Decimal(text), format=pattern, locale=self.locale,
                                 decimal_quantization=True))

    def money(self, value: Decimal | str | None, currency: str | None) -> Markup:
        """``<span title="exact CUR">rounded CUR</span>``: the amount for reading beside its
        currency, the exact value in the tooltip."""
        number = _decimal(value)
        if number is None:
            return Markup('<span class="money">-</span>')
        code = currency or ""
        exact = format_decimal(number)
        return Markup('<span class="money" title="{} {}">{} {}</span>').format(
            exact, code, self.readable(number, code), code)

    @staticmethod
    def exact(value: Decimal | str | None) -> str:
        number = _decimal(value)
        return "" if number is None else format_decimal(number)

