"""Budget rules: scopes, periods, thresholds, and the arithmetic of holds (property-tested)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.domain.budgets import (
    DEFAULT_THRESHOLDS,
    Scope,
    crossed,
    fits,
    period_bounds,
    period_label,
    projection,
    remaining,
    thresholds,
)
from meterline.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_scope_covers_only_what_it_names() -> None:
    everything = Scope()
    assert everything.covers("acme", None, None, "openai", "openai/gpt-5")
    assert everything.describe() == "deployment"
    scope = Scope(tenant="acme", user="bob", model="openai/gpt-5")
    assert scope.covers("acme", "bob", "key_1", "openai", "openai/gpt-5")
    assert not scope.covers("acme", "ann", "key_1", "openai", "openai/gpt-5")
    assert not scope.covers("beta", "bob", "key_1", "openai", "openai/gpt-5")
    assert not scope.covers("acme", "bob", "key_1", "openai", "openai/gpt-5-mini")
    assert scope.describe() == "tenant acme · user bob · model openai/gpt-5"
    assert Scope(tenant="acme").key_text != Scope(provider="acme").key_text


def test_scope_refuses_user_without_tenant_and_user_with_key() -> None:
    with pytest.raises(InvalidInput, match="needs its tenant"):
        Scope(user="bob")
    with pytest.raises(InvalidInput, match="user or a key"):
        Scope(tenant="acme", user="bob", key="key_1")


def test_periods_follow_the_budget_timezone() -> None:
    at = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # already December 1st in Shanghai
    start, end = period_bounds("month", at, SHANGHAI)
    assert start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert period_label("month", start, SHANGHAI) == "2026-12"
    start, end = period_bounds("day", at, ZoneInfo("UTC"))
    assert (start, end) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert period_label("day", start, ZoneInfo("UTC")) == "2026-11-30"
    start, end = period_bounds("total", at, SHANGHAI)
    assert end is None and period_label("total", start, SHANGHAI) == "total"


def test_december_rolls_into_the_next_year() -> None:
    start, end = period_bounds("month", datetime(2026, 12, 15, tzinfo=UTC), ZoneInfo("UTC"))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_thresholds_parse_sort_and_refuse_out_of_range() -> None:
    assert thresholds(None) == DEFAULT_THRESHOLDS
    assert thresholds("1, 0.5,0.8,0.5") == (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
    for bad in ("0", "1.01", "-0.5", "", "x"):
        with pytest.raises(InvalidInput) as caught:
            thresholds(bad)
        assert caught.value.field == "thresholds"


def test_crossed_reports_each_threshold_once() -> None:
    limit, levels = Decimal(10), DEFAULT_THRESHOLDS
    assert crossed(limit, levels, Decimal(0), Decimal(4)) == []
    assert crossed(limit, levels, Decimal(4), Decimal(5)) == [Decimal("0.5")]
    assert crossed(limit, levels, Decimal(5), Decimal(9)) == [Decimal("0.8")]
    assert crossed(limit, levels, Decimal(0), Decimal(11)) == list(levels)
    assert crossed(limit, levels, Decimal(11), Decimal(12)) == []


def test_projection_is_linear_in_time_after_the_first_hour() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    assert projection(Decimal(3), start, end, datetime(2026, 11, 1, 0, 30, tzinfo=UTC)) == 3
    assert projection(Decimal(10), start, end, datetime(2026, 11, 11, tzinfo=UTC)) == 30
    assert projection(Decimal(10), start, None, datetime(2026, 11, 11, tzinfo=UTC)) == 10


money = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100), places=6)


@given(limit=money, calls=st.lists(st.tuples(money, st.floats(0, 1)), max_size=60),
       concurrency=st.integers(1, 8))
def test_holds_never_let_spend_pass_the_limit(limit: Decimal, calls: list[tuple[Decimal, float]],
                                              concurrency: int) -> None:
    """Calls are admitted while in flight together, each settles at most at its hold: whatever
    the interleaving, spent never passes the limit, and a call is refused only if it did not
    fit at that moment."""
    spent, reserved = Decimal(0), Decimal(0)
    in_flight: list[tuple[Decimal, Decimal]] = []
    for hold, share in calls:
        real = (hold * Decimal(str(round(share, 3)))).quantize(Decimal("0.000001"))
        if fits(limit, spent, reserved, hold):
            reserved += hold
            in_flight.append((hold, real))
        else:
            assert spent + reserved + hold > limit
            assert remaining(limit, spent, reserved) < hold
        if len(in_flight) >= concurrency:
            done_hold, done_real = in_flight.pop(0)
            reserved -= done_hold
            spent += done_real
        assert spent + reserved <= limit
    for done_hold, done_real in in_flight:
        reserved -= done_hold
        spent += done_real
    assert reserved == 0 and spent <= limit
