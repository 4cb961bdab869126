"""meterline.domain.bills: cycles, lines, rounding at issue, status transitions, adjustments."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.bills import (
    Bill,
    BillClosed,
    BillLine,
    BillStatus,
    Cycle,
    InvalidTransition,
    add_lines,
    adjustment_lines,
    issue,
    open_bill,
    parse_cycle,
    round_amounts,
    to_json,
    transition,
    transition_many,
)
from meterline.domain.money import MINOR_UNITS, quantize_minor
from meterline.errors import Conflict, InvalidInput
from tests.bill_lines import lines

D = Decimal
prop = settings(deadline=None, max_examples=300)


NOVEMBER = lines("""
    openai/gpt-4o-mini     input_tokens   1234567  1M_tokens  0.15  0.18518505
    openai/gpt-4o-mini     output_tokens  333333   1M_tokens  0.6   0.1999998
    qwen/wanx-v1           images         7        image      0.2   1.4
    volcano/seedance       seconds        12.5     second     0.03  0.375
    openai/gpt-4o-mini-tts characters     12345    1K_characters 0.015 0.185175
""")


# --- cycles ------------------------------------------------------------------------------------

def test_parse_cycle_and_str() -> None:
    cycle = parse_cycle("2026-11")
    assert cycle == Cycle(2026, 11)
    assert str(cycle) == "2026-11"
    assert parse_cycle(" 2026-01 ") == Cycle(2026, 1)
    assert parse_cycle(cycle) is cycle


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-11", "2026/11", "2026-1", "", "x",
                                 "２０２６-１１", "1969-12", "9999-01", None, 202611, "2026-11-01"])
def test_bad_cycles_name_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_cycle(bad)
    assert err.value.field == "cycle"


def test_next_previous_and_order() -> None:
    assert Cycle(2026, 12).next() == Cycle(2027, 1)
    assert Cycle(2027, 1).previous() == Cycle(2026, 12)
    assert Cycle(2026, 11).next() == Cycle(2026, 12)
    assert Cycle(2026, 2) < Cycle(2026, 10) < Cycle(2027, 1)


def test_bounds_in_the_tenant_timezone() -> None:
    utc = datetime(2026, 10, 31, 16, tzinfo=UTC)
    assert parse_cycle("2026-11").bounds("Asia/Shanghai") == (
        utc, datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert parse_cycle("2026-11").bounds() == (datetime(2026, 11, 1, tzinfo=UTC),
                                               datetime(2026, 12, 1, tzinfo=UTC))
    # New York leaves summer time on 2026-11-01 at 02:00: the month starts at -04:00, ends at -05:00
    assert parse_cycle("2026-11").bounds(ZoneInfo("America/New_York")) == (
        datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 12, 1, 5, tzinfo=UTC))
    start, end = parse_cycle("2026-12").bounds("Asia/Shanghai")
    assert (start, end) == (datetime(2026, 11, 30, 16, tzinfo=UTC),
                            datetime(2026, 12, 31, 16, tzinfo=UTC))


def test_unknown_timezone_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_cycle("2026-11").bounds("Mars/Olympus")
    assert err.value.field == "timezone"


def test_cycle_containing() -> None:
    at = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)
    assert Cycle.containing(at, "Asia/Shanghai") == Cycle(2026, 11)
    assert Cycle.containing(at) == Cycle(2026, 10)
    assert Cycle.containing(datetime(2026, 10, 31, 16, 30)) == Cycle(2026, 10)  # naive is UTC


@prop
@given(st.integers(1970, 9997), st.integers(1, 12),
       st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Australia/Lord_Howe",
                        "America/Sao_Paulo", "Pacific/Kiritimati", "Asia/Kathmandu"]))
def test_cycles_tile_time(year: int, month: int, tz: str) -> None:
    cycle = Cycle(year, month)
    start, end = cycle.bounds(tz)
    assert start.tzinfo is UTC and start < end
    assert end == cycle.next().bounds(tz)[0]
    assert Cycle.containing(start, tz) == cycle
    assert Cycle.containing(end - timedelta(microseconds=1), tz) == cycle
    assert parse_cycle(str(cycle)) == cycle


# --- lines -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("meter", "billing_type"), [
    ("input_tokens", "token"), ("cached_input_tokens", "token"), ("cache_write_tokens", "token"),
    ("output_tokens", "token"), ("reasoning_tokens", "token"), ("characters", "character"),
    ("images", "count"), ("requests", "count"), ("seconds", "second"),
    ("minimum_charge", "count"),
])
def test_billing_type_comes_from_the_meter(meter: str, billing_type: str) -> None:
    line = BillLine("m/x", meter, D(1), "unit", D(1), D(1))
    assert line.billing_type == billing_type


@pytest.mark.parametrize(("unit", "per"), [("1M tokens", 1_000_000), ("1K characters", 1000),
                                           ("10K tokens", 10_000), ("image", 1), ("second", 1)])
def test_per_from_the_unit(unit: str, per: int) -> None:
    assert BillLine("m/x", "input_tokens", D(1), unit, D(1), D(1)).per == per


@pytest.mark.parametrize(("changes", "field"), [
    ({"meter": "tokens"}, "meter"),
    ({"model": ""}, "model"),
    ({"unit": ""}, "unit"),
    ({"quantity": 1.5}, "quantity"),
    ({"amount": 0.1}, "amount"),
    ({"amount": D("NaN")}, "amount"),
    ({"unit_price": D("-1")}, "unit_price"),
    ({"amount": D("-1")}, "amount"),                    # a charged line is never negative
    ({"refund": True}, "amount"),                        # a refund line is never positive
    ({"adjustment_of": "2026-13"}, "cycle"),
])
def test_bad_lines_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        dataclasses.replace(NOVEMBER[0], **changes)  # type: ignore[arg-type]
    assert err.value.field == field


def test_a_refund_is_a_new_negative_line() -> None:
    charged = NOVEMBER[0]
    refund = charged.refunded()
    assert (refund.quantity, refund.amount) == (-charged.quantity, -charged.amount)
    assert (refund.refund, refund.status, charged.status) == (True, "refunded", "charged")
    assert charged.amount == D("0.18518505")          # the charged line is unchanged
    with pytest.raises(InvalidInput):
        refund.refunded()


def test_lines_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NOVEMBER[0].amount = D(0)  # type: ignore[misc]


# --- open bills --------------------------------------------------------------------------------

def test_open_bill_total_is_the_exact_sum() -> None:
    bill = open_bill("acme", "2026-11", "usd", NOVEMBER)
    assert bill.status is BillStatus.OPEN and bill.currency == "USD" and bill.user is None
    assert bill.total == D("2.34535985")
    assert sum(line.amount for line in bill.lines) == bill.total


def test_line_order_is_canonical() -> None:
    forward = open_bill("acme", "2026-11", "USD", NOVEMBER)
    backward = open_bill("acme", "2026-11", "USD", reversed(NOVEMBER))
    assert forward == backward
    assert issue(forward) == issue(backward)


def test_a_bill_whose_total_is_not_its_lines_sum_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        Bill("acme", None, Cycle(2026, 11), "USD", BillStatus.OPEN, tuple(NOVEMBER), D("2.34"))
    assert err.value.field == "total"


def test_an_issued_bill_must_be_rounded() -> None:
    with pytest.raises(InvalidInput) as err:
        Bill("acme", None, Cycle(2026, 11), "USD", BillStatus.ISSUED, tuple(NOVEMBER[:1]),
             D("0.18518505"))
    assert err.value.field == "amount"


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        open_bill("acme", "2026-11", "XXX", NOVEMBER)
    assert err.value.field == "currency"


def test_add_lines_to_an_open_bill() -> None:
    bill = add_lines(open_bill("acme", "2026-11", "USD", NOVEMBER[:2]), NOVEMBER[2:])
    assert bill == open_bill("acme", "2026-11", "USD", NOVEMBER)


# --- issue: rounding once ----------------------------------------------------------------------

def test_issue_rounds_once_and_lines_add_up() -> None:
    issued = issue(open_bill("acme", "2026-11", "USD", NOVEMBER))
    assert issued.status is BillStatus.ISSUED
    assert issued.total == D("2.35")  # 2.34535985 half-up
    # lines in canonical order (model, meter); floors 0.18 0.19 0.18 1.40 0.37 sum to 2.32, and the
    # three missing cents go to the largest remainders (0.0099998, 0.00518505, 0.005175): 0.375
    # keeps 0.37 although alone it would round to 0.38
    assert [line.unrounded for line in issued.lines] == [
        D("0.18518505"), D("0.1999998"), D("0.185175"), D("1.4"), D("0.375")]
    assert [format(line.amount, "f") for line in issued.lines] == [
        "0.19", "0.20", "0.19", "1.40", "0.37"]
    assert sum(line.amount for line in issued.lines) == issued.total


def test_thirds_keep_the_total() -> None:
    third = "m/x input_tokens 1 token 0.3333333333 0.3333333333"
    bill = issue(open_bill("acme", "2026-11", "USD", lines("\n".join([third] * 3))))
    # each third alone rounds to 0.33 (total 0.99); the total of 0.9999999999 rounds to 1.00
    assert bill.total == D("1.00")
    assert sorted(line.amount for line in bill.lines) == [D("0.33"), D("0.33"), D("0.34")]


def test_many_small_lines_do_not_vanish() -> None:
    small = [BillLine(f"m/model-{i:04d}", "input_tokens", D(4), "1M tokens", D(1000), D("0.004"))
             for i in range(1000)]
    bill = issue(open_bill("acme", "2026-11", "USD", small))
    assert bill.total == D("4.00")
    assert sum(line.amount for line in bill.lines) == D("4.00")
    assert sum(1 for line in bill.lines if line.amount == D("0.01")) == 400


def test_half_up_at_the_total() -> None:
    bill = issue(open_bill("acme", "2026-11", "USD", lines("m/x images 1 image 0.125 0.125")))
    assert bill.total == D("0.13")
    refund = issue(open_bill("acme", "2026-11", "USD",
                             lines("m/x images -1 image 0.125 -0.125 refund")))
    assert refund.total == D("-0.13")  # half-up rounds halves away from zero


def test_zero_minor_unit_currency() -> None:
    bill = issue(open_bill("acme", "2026-11", "JPY", lines("""
        m/a input_tokens 1000 1M_tokens 1500 1.5
        m/b input_tokens 1000 1M_tokens 1500 1.5
        m/c input_tokens 1000 1M_tokens 1400 1.4
    """)))
    assert bill.total == D("4")
    assert sorted(line.amount for line in bill.lines) == [D(1), D(1), D(2)]


def test_empty_bill_issues_at_zero() -> None:
    bill = issue(open_bill("acme", "2026-11", "USD"))
    assert bill.total == 0 and bill.lines == ()
    assert to_json(bill)["total"] == "0"


def test_charge_and_its_refund_round_to_opposites() -> None:
    charge = NOVEMBER[1]
    bill = issue(open_bill("acme", "2026-11", "USD", [charge, charge.refunded()]))
    assert bill.total == 0
    amounts = sorted(line.amount for line in bill.lines)
    assert amounts == [D("-0.20"), D("0.20")]


amounts = st.builds(lambda n, places: D(n).scaleb(-places),
                    st.integers(0, 10**12), st.integers(0, 12))


@st.composite
def bill_lines(draw: st.DrawFn) -> list[BillLine]:
    out = []
    for i, (amount, refund) in enumerate(draw(st.lists(st.tuples(amounts, st.booleans()),
                                                       max_size=40))):
        sign = -1 if refund else 1
        out.append(BillLine(f"p/m{i}", "output_tokens", sign * D(i + 1), "1M tokens", D(1),
                            sign * amount, refund=refund))
    return out


@prop
@given(bill_lines(), st.sampled_from(sorted(MINOR_UNITS)))
def test_issue_properties(drawn: list[BillLine], currency: str) -> None:
    bill = open_bill("acme", "2026-11", currency, drawn)
    issued = issue(bill)
    unit = D(1).scaleb(-MINOR_UNITS[currency])
    # the issued lines and the issued total add up exactly
    assert sum((line.amount for line in issued.lines), D(0)) == issued.total
    # the total is the exact total rounded once, half-up: at most half a minor unit away
    assert issued.total == quantize_minor(bill.total, currency)
    assert abs(issued.total - bill.total) <= unit / 2
    for before, after in zip(bill.lines, issued.lines, strict=True):
        assert after.amount == quantize_minor(after.amount, currency)
        assert abs(after.amount - before.amount) < unit  # each line within one minor unit
        assert after.unrounded == before.amount
        assert (after.amount >= 0) if not after.refund else (after.amount <= 0)
        assert dataclasses.replace(after, amount=before.amount, unrounded=None) == before


@prop
@given(st.lists(amounts, max_size=30), st.sampled_from(["USD", "JPY"]))
def test_round_amounts_matches_single_rounding_for_one_line(values: list[Decimal],
                                                            currency: str) -> None:
    for value in values[:1]:
        assert round_amounts([value], currency) == ([quantize_minor(value, currency)],
                                                    quantize_minor(value, currency))
    rounded, total = round_amounts(values, currency)
    assert sum(rounded, D(0)) == total


# --- status transitions ------------------------------------------------------------------------

def _bill(status: str) -> Bill:
    bill = open_bill("acme", "2026-11", "USD", NOVEMBER, user="alice")
    if status in ("issued", "paid"):
        bill = issue(bill)
    return dataclasses.replace(bill, status=BillStatus(status))


@pytest.mark.parametrize(("start", "end"), [
    ("open", "issued"), ("open", "void"), ("issued", "paid"), ("issued", "void")])
def test_allowed_transitions(start: str, end: str) -> None:
    after = transition(_bill(start), end)
    assert after.status == end
    if start == "issued":
        assert after.lines == _bill(start).lines and after.total == D("2.35")


REFUSED = [(s, e) for s in ("open", "issued", "paid", "void")
           for e in ("open", "issued", "paid", "void")
           if (s, e) not in {("open", "issued"), ("open", "void"), ("issued", "paid"),
                             ("issued", "void")}]


@pytest.mark.parametrize(("start", "end"), REFUSED)
def test_refused_transitions_name_status_and_what_is_allowed(start: str, end: str) -> None:
    with pytest.raises(InvalidTransition) as err:
        transition(_bill(start), end)
    error = err.value
    assert isinstance(error, InvalidInput) and error.field == "status"
    expected = {"open": ["issued", "void"], "issued": ["paid", "void"], "paid": [],
                "void": []}[start]
    assert error.context["allowed"] == expected
    assert error.context["current"] == start and error.context["requested"] == end
    assert f"allowed from {start}: {', '.join(expected) or 'none'}" in error.message


def test_issue_twice_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        issue(issue(_bill("open")))


def test_unknown_status_name() -> None:
    with pytest.raises(InvalidInput) as err:
        transition(_bill("open"), "closed")
    assert err.value.field == "status"


def test_transition_many_all_or_nothing() -> None:
    bills = [open_bill("acme", "2026-11", "USD", NOVEMBER, user=u) for u in ("a", "b", "c")]
    changed, refusals = transition_many(bills, "issued")
    assert refusals == () and [b.status for b in changed] == ["issued"] * 3
    assert all(b.total == D("2.35") for b in changed)

    mixed = [bills[0], changed[1], bills[2], changed[1]]
    changed2, refusals2 = transition_many(mixed, "issued")
    assert changed2 == ()  # nothing changes when any bill is refused
    assert [(r.bill.user, r.error.field) for r in refusals2] == [("b", "status"), ("b", "bill")]
    body = refusals2[0].to_json()
    assert body["allowed"] == ["paid", "void"] and body["status"] == "issued"
    assert body["cycle"] == "2026-11" and body["user"] == "b"

    with pytest.raises(InvalidInput):
        transition_many(bills, "finished")
    assert transition_many([], "paid") == ((), ())


# --- issued bills never change; adjustments and refunds ----------------------------------------

@pytest.mark.parametrize("status", ["issued", "paid", "void"])
def test_closed_bills_take_no_lines(status: str) -> None:
    with pytest.raises(BillClosed) as err:
        add_lines(_bill(status), NOVEMBER[:1])
    assert isinstance(err.value, Conflict)
    assert "adjustment" in err.value.message


def test_late_usage_lands_in_the_next_open_cycle_as_adjustments() -> None:
    late = lines("deepseek/deepseek-chat output_tokens 1000 1M_tokens 2 0.002")
    marked = adjustment_lines("2026-10", late)
    assert [line.adjustment_of for line in marked] == ["2026-10"]
    assert late[0].adjustment_of is None  # the input is not edited
    bill = open_bill("acme", "2026-11", "USD", [*NOVEMBER, *marked])
    assert bill.total == D("2.34735985")
    body = to_json(bill)
    adjusted = [line for line in body["lines"] if line["adjustment_of"]]
    assert adjusted == [{
        "model": "deepseek/deepseek-chat", "meter": "output_tokens", "billing_type": "token",
        "quantity": "1000", "unit": "1M tokens", "unit_price": "2", "amount": "0.002",
        "status": "charged", "adjustment_of": "2026-10",
    }]


def test_adjustments_must_name_an_earlier_cycle() -> None:
    for cycle in ("2026-11", "2026-12"):
        with pytest.raises(InvalidInput) as err:
            open_bill("acme", "2026-11", "USD", adjustment_lines(cycle, NOVEMBER[:1]))
        assert err.value.field == "adjustment_of"
    with pytest.raises(InvalidInput) as err:
        adjustment_lines("2026-09", adjustment_lines("2026-10", NOVEMBER[:1]))
    assert err.value.field == "adjustment_of"


def test_refund_of_an_issued_cycle_is_a_negative_adjustment() -> None:
    october = issue(open_bill("acme", "2026-10", "USD", NOVEMBER))
    refund = adjustment_lines(october.cycle, [NOVEMBER[2].refunded()])
    november = issue(open_bill("acme", "2026-11", "USD", [*NOVEMBER, *refund]))
    assert october.total == D("2.35") and november.total == D("0.95")
    line = next(line for line in november.lines if line.refund)
    assert (line.amount, line.status, line.adjustment_of) == (D("-1.40"), "refunded", "2026-10")


# --- JSON --------------------------------------------------------------------------------------

def test_to_json_shape() -> None:
    body = to_json(issue(open_bill("acme", "2026-11", "CNY", NOVEMBER, user="alice")))
    assert list(body) == ["tenant", "user", "cycle", "currency", "status", "total", "lines"]
    assert body["tenant"] == "acme" and body["user"] == "alice" and body["cycle"] == "2026-11"
    assert body["currency"] == "CNY" and body["status"] == "issued" and body["total"] == "2.35"
    assert body["lines"][3] == {
        "model": "qwen/wanx-v1", "meter": "images", "billing_type": "count", "quantity": "7",
        "unit": "image", "unit_price": "0.2", "amount": "1.4", "status": "charged",
        "adjustment_of": None,
    }
    for line in body["lines"]:
        for key in ("quantity", "unit_price", "amount"):
            assert isinstance(line[key], str) and "E" not in line[key]
    assert sum(D(line["amount"]) for line in body["lines"]) == D(body["total"])
