"""Numbers, dates and money for reading in each locale (meterline/web/formats.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from meterline.domain.money import readable
from meterline.web.formats import Formatter


@pytest.mark.parametrize(("value", "currency", "english", "chinese"), [
    ("1234.5", "USD", "1,234.50", "1,234.50"),
    ("0.00125", "USD", "0.0013", "0.0013"),  # below a cent: two significant digits
    ("0.0042", "CNY", "0.0042", "0.0042"),
    ("0.004249", "USD", "0.0042", "0.0042"),
    ("1234567.891", "USD", "1,234,567.89", "1,234,567.89"),
    ("-12.345", "USD", "-12.35", "-12.35"),
    ("0", "USD", "0.00", "0.00"),
    ("1500", "JPY", "1,500", "1,500"),  # no minor unit
])
def test_money_for_reading(value: str, currency: str, english: str, chinese: str) -> None:
    amount = Decimal(value)
    assert Formatter("en").readable(amount, currency) == english
    assert Formatter("zh_CN").readable(amount, currency) == chinese
    # the same digits as the CLI's rule (money.readable), only grouped
    assert english.replace(",", "") == readable(amount, currency)


def test_money_carries_the_exact_value_and_currency() -> None:
    shown = Formatter("en").money(Decimal("0.001255000"), "USD")
    assert str(shown) == '<span class="money" title="0.001255 USD">0.0013 USD</span>'
    assert str(Formatter("en").money("12", "EUR")) == (
        '<span class="money" title="12 EUR">12.00 EUR</span>')
    assert str(Formatter("en").money(None, "USD")) == '<span class="money">-</span>'
    # a currency code is text like any other: escaped
    assert "&lt;b&gt;" in str(Formatter("en").money(Decimal(1), "<b>"))


def test_numbers_percentages_and_dates_per_locale() -> None:
    english, chinese = Formatter("en"), Formatter("zh_CN")
    assert english.number(1234567) == "1,234,567" == chinese.number(1234567)
    assert english.number(Decimal("1.25")) == "1.25"
    assert english.number(None) == "-"
    assert english.percent(0.98765) == "98.8%" and english.percent(None) == "-"
    assert english.day(date(2026, 12, 7)) == "Dec 7, 2026"
    assert chinese.day("2026-12-07") == "2026年12月7日"
    at = datetime(2026, 12, 7, 10, 5, tzinfo=UTC)
    assert english.moment(at).startswith("Dec 7, 2026")
    assert chinese.moment(at).startswith("2026年12月7日")
    assert Formatter.exact(Decimal("0.50")) == "0.5" and Formatter.exact(None) == ""
