"""The shipped catalog prices a model in the tenant's currency where both exist: DeepSeek bills
the same model in USD (international) and CNY (China), from the same dates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.catalog import load_catalog
from meterline.domain.rating import rate
from meterline.domain.usage import Usage

MILLION = Usage.parse({"input_tokens": 1_000_000})
# 10:00 in Beijing: peak on a working day, off-peak on public holidays and at weekends.
NATIONAL_DAY = datetime(2026, 10, 1, 2, tzinfo=UTC)
WORKING_FRIDAY = datetime(2026, 10, 9, 2, tzinfo=UTC)
# The CNY versions skip holidays from 2026-12-07 on.
NEW_YEAR = datetime(2027, 1, 1, 2, tzinfo=UTC)
WORKING_DECEMBER = datetime(2026, 12, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(("model", "currency", "at", "cost"), [
    ("deepseek/deepseek-v4-flash", "USD", WORKING_FRIDAY, "0.3"),
    ("deepseek/deepseek-v4-flash", "USD", NATIONAL_DAY, "0.15"),
    ("deepseek/deepseek-v4-flash", "CNY", WORKING_DECEMBER, "2"),
    ("deepseek/deepseek-v4-flash", "CNY", NEW_YEAR, "1"),
    ("deepseek/deepseek-flash", "USD", WORKING_FRIDAY, "0.3"),
    ("deepseek/deepseek-v4-flash-vision-exp", "USD", NATIONAL_DAY, "0.15"),
])
def test_each_currency_has_its_own_versions(model: str, currency: str, at: datetime,
                                            cost: str) -> None:
    version = load_catalog().version_at(model, at, currency)
    assert version.currency == currency
    assert rate(MILLION, version, at).total.number == Decimal(cost)


def test_a_currency_without_versions_takes_any() -> None:
    book = load_catalog()
    assert book.version_at("deepseek/deepseek-v4-flash", WORKING_FRIDAY, "EUR").currency in (
        "USD", "CNY")
    assert book.version_at("qwen/qwen-plus", WORKING_DECEMBER, "USD").currency == "CNY"
