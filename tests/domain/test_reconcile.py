"""meterline.domain.reconcile: metered days against billed periods, exactly."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.reconcile import BilledPeriod, MeteredDay, reconcile, status_of, tolerance_of
from meterline.errors import InvalidInput

D = Decimal
NOV = date(2026, 11, 1)
DEC = date(2026, 12, 1)


def day(n: int) -> date:
    return NOV + timedelta(days=n - 1)


def test_a_monthly_bill_line_is_compared_with_every_metered_day_inside_it() -> None:
    metered = [MeteredDay("openai", "openai/gpt-5", day(n), D("1.5")) for n in (1, 2, 30)]
    metered += [MeteredDay("openai", "openai/gpt-5", DEC, D("9"))]  # after the billed month
    billed = [BilledPeriod("openai", "openai/gpt-5", NOV, DEC, D("4.5"))]
    rows = reconcile(metered, billed)
    assert [(r.start, r.end, r.metered, r.billed, r.status) for r in rows] == [
        (NOV, DEC, D("4.5"), D("4.5"), "match"),
        (DEC, date(2026, 12, 2), D("9"), None, "only_metered"),
    ]
    assert rows[0].to_json() == {
        "provider": "openai", "model": "openai/gpt-5", "date": "2026-11-01",
        "until": "2026-12-01", "metered": "4.5", "billed": "4.5", "difference": "0",
        "difference_pct": "0", "status": "match", "causes": []}


def test_statuses_and_the_tolerance() -> None:
    metered = [MeteredDay("p", "p/a", day(1), D("100")), MeteredDay("p", "p/b", day(1), D("100")),
               MeteredDay("p", "p/c", day(1), D("100")), MeteredDay("p", "p/d", day(1), D("7"))]
    billed = [BilledPeriod("p", "p/a", day(1), day(2), D("100.9")),   # within 1 %
              BilledPeriod("p", "p/b", day(1), day(2), D("101.5")),   # over
              BilledPeriod("p", "p/c", day(1), day(2), D("90")),      # under
              BilledPeriod("p", "p/e", day(1), day(2), D("3"))]       # never metered
    rows = {r.model: r for r in reconcile(metered, billed, D("0.01"))}
    assert {m: r.status for m, r in rows.items()} == {
        "p/a": "match", "p/b": "over", "p/c": "under", "p/d": "only_metered",
        "p/e": "only_billed"}
    assert rows["p/b"].difference == D("1.5") and rows["p/b"].difference_pct == D("1.50")
    assert rows["p/c"].difference == D("-10") and rows["p/c"].difference_pct == D("-10.00")
    assert rows["p/e"].difference == D("3") and rows["p/e"].difference_pct is None
    assert status_of(D("100"), D("101"), D("0.01")) == "match"  # on the bound
    assert status_of(D("0"), D("0"), D("0")) == "match"


def test_billed_lines_of_one_period_add_up() -> None:
    billed = [BilledPeriod("p", "p/a", day(1), day(2), D("0.1"))] * 3
    [row] = reconcile([MeteredDay("p", "p/a", day(1), D("0.3"))], billed, D("0"))
    assert (row.billed, row.status) == (D("0.3"), "match")


@pytest.mark.parametrize("value", ["-0.1", "1.5", "x", "NaN", True])
def test_a_tolerance_is_a_share_from_zero_to_one(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        tolerance_of(value)
    assert refused.value.field == "tolerance"
    assert tolerance_of("0.05") == D("0.05")


amounts = st.decimals(min_value=-1000, max_value=10**6, places=6, allow_nan=False)
days = st.integers(1, 40)


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.sampled_from("ab"), days, amounts), max_size=30),
       st.lists(st.tuples(st.sampled_from("abc"), days, st.integers(1, 31), amounts),
                max_size=10))
def test_nothing_is_lost_or_counted_twice(metered_raw: list[tuple[str, int, Decimal]],
                                          billed_raw: list[tuple[str, int, int, Decimal]]) -> None:
    metered = [MeteredDay("p", f"p/{m}", day(n), a) for m, n, a in metered_raw]
    billed = [BilledPeriod("p", f"p/{m}", day(n), day(n + length), a)
              for m, n, length, a in billed_raw]
    rows = reconcile(metered, billed)
    assert sum((r.metered or D(0) for r in rows), D(0)) == sum((m.amount for m in metered), D(0))
    assert sum((r.billed or D(0) for r in rows), D(0)) == sum((b.amount for b in billed), D(0))
    for row in rows:
        assert row.difference == (row.billed or 0) - (row.metered or 0)
        assert row.status == status_of(row.metered, row.billed, D("0.01"))
