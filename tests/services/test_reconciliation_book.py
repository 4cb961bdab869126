"""meterline.services.reconciliation: the price-change check of a model the book does not know."""

from __future__ import annotations

from datetime import date

import pytest

from meterline.domain.pricebook import PriceBook
from meterline.services.reconciliation import _price_changes


def test_an_unknown_model_has_no_price_changes_and_no_search_for_close_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def search(*_: object) -> str:
        raise AssertionError("a 'did you mean' search for a name nobody reads")

    monkeypatch.setattr(PriceBook, "_suggest", search)
    monkeypatch.setattr(PriceBook, "close_names", search)
    assert _price_changes(PriceBook(), "nobody", "no-such-model", date(2026, 11, 1),
                          date(2026, 12, 1)) == []
