"""meterline.exports.csv: English and Chinese bill CSVs whose amounts add up to the total."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.bills import Bill, BillLine, issue, open_bill
from meterline.domain.money import MINOR_UNITS, convert_at
from meterline.errors import InvalidInput
from meterline.exports.csv import bill_csv
from tests.bill_lines import LATE, NOVEMBER, lines

D = Decimal


def issued() -> Bill:
    return issue(open_bill("acme", "2026-11", "USD", [*NOVEMBER, *LATE]))


def read(data: bytes, encoding: str = "utf-8") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def test_english_headers_rows_and_total_row() -> None:
    data = bill_csv(issued(), "en")
    assert not data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    rows = read(data)
    assert rows[0] == ["date", "model", "meter", "type", "quantity", "unit", "unit price",
                       "amount", "currency", "status", "unit price currency", "fx rate"]
    assert rows[1] == ["2026-11", "openai/gpt-4o-mini", "input tokens", "token", "1234567",
                       "1M tokens", "0.15", "0.19", "USD", "charged", "USD", "1"]
    assert rows[-1] == ["total", "", "", "", "", "", "", "1.95", "USD", "issued", "", ""]
    assert len(rows) == 1 + len(NOVEMBER) + len(LATE) + 1


def test_chinese_headers_and_bom() -> None:
    data = bill_csv(issued(), "zh")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = read(data, "utf-8-sig")
    assert rows[0] == ["日期", "模型", "计量项", "类型", "数量", "单位", "单价", "金额", "币种",
                       "状态", "单价币种", "汇率"]
    assert rows[-1][0] == "合计" and rows[-1][9] == "已出账"
    by_model = {(row[1], row[9]): row for row in rows[1:-1]}
    image = by_model[("qwen/wanx-v1", "已计费")]
    assert image[2:6] == ["图片", "按次", "7", "张"]
    assert by_model[("qwen/wanx-v1", "已退款")][7] == "-0.40"
    tts = by_model[("openai/gpt-4o-mini-tts", "已计费")]
    assert tts[2:6] == ["字符", "按字符", "12345", "千字符"]


def _sum_matches(rows: list[list[str]], total: Decimal) -> None:
    body, last = rows[1:-1], rows[-1]
    assert sum((D(row[7]) for row in body), D(0)) == D(last[7]) == total


def test_amount_column_sums_to_the_total_to_the_cent() -> None:
    bill = issued()
    for lang in ("en", "zh"):
        rows = read(bill_csv(bill, lang), "utf-8-sig")
        _sum_matches(rows, bill.total)
        assert all(len(row[7].partition(".")[2]) == 2 for row in rows[1:])  # "0.60", not "0.6"


def test_an_open_bill_exports_exact_amounts() -> None:
    bill = open_bill("acme", "2026-11", "USD", NOVEMBER)
    rows = read(bill_csv(bill))
    _sum_matches(rows, bill.total)
    assert rows[-1][7] == "1.94535985" and rows[-1][9] == "open"


def test_late_usage_shows_its_own_cycle() -> None:
    rows = read(bill_csv(issued()))
    late = [row for row in rows if row[1] == "deepseek/deepseek-chat"]
    assert [row[0] for row in late] == ["2026-10"]


def test_formula_like_text_is_defused_but_numbers_are_not() -> None:
    bill = issue(open_bill("acme", "2026-11", "USD", lines("""
        =HYPERLINK("x")/m  images 1  image 0.5 0.5
        m/x                images -1 image 0.5 -0.5 refund
    """)))
    rows = read(bill_csv(bill))
    assert rows[1][1] == "'=HYPERLINK(\"x\")/m"
    assert [row[7] for row in rows[1:]] == ["0.50", "-0.50", "0.00"]


def test_unknown_language() -> None:
    with pytest.raises(InvalidInput) as err:
        bill_csv(issued(), "fr")
    assert err.value.field == "lang"


amounts = st.builds(lambda n, places: D(n).scaleb(-places), st.integers(0, 10**9),
                    st.integers(0, 10))


@settings(deadline=None, max_examples=150)
@given(st.lists(amounts, max_size=25), st.sampled_from(sorted(MINOR_UNITS)),
       st.sampled_from(["en", "zh"]))
def test_any_issued_bill_adds_up(values: list[Decimal], currency: str, lang: str) -> None:
    drawn = [BillLine(f"p/m{i}", "input_tokens", D(i), "1M tokens", D(1), value)
             for i, value in enumerate(values)]
    bill = issue(open_bill("acme", "2026-11", currency, drawn))
    rows = read(bill_csv(bill, lang), "utf-8-sig")
    _sum_matches(rows, bill.total)
    places = MINOR_UNITS[currency]
    assert all(len(row[7].partition(".")[2]) == places for row in rows[1:])


def test_a_line_priced_in_another_currency_names_it_and_its_rate() -> None:
    usd = BillLine("openai/gpt-4o-mini", "input_tokens", D(1234567), "1M tokens", D("0.15"),
                   D("1.314813855"), price_currency="USD")  # 0.18518505 USD at 7.1
    free = BillLine("openai/free", "input_tokens", D(0), "1M tokens", D("0.15"), D(0),
                    price_currency="USD")
    own = BillLine("qwen/qwen-max", "input_tokens", D(1000), "1M tokens", D("2.4"),
                   D("0.0024"))
    bill = open_bill("shop", "2026-11", "CNY", [usd, free, own])
    rows = {row[1]: row for row in read(bill_csv(bill))[1:-1]}
    assert rows["openai/gpt-4o-mini"][7:] == ["1.314813855", "CNY", "charged", "USD", "7.1"]
    assert rows["openai/free"][10:] == ["USD", ""]  # no amount to take a rate from
    assert rows["qwen/qwen-max"][10:] == ["CNY", "1"]
    # a rate the amount does not fit (it changed within the cycle): the line's own average
    other = read(bill_csv(bill, rates={"USD": D("7.3")}))[1:-1]
    assert {row[1]: row[11] for row in other}["openai/gpt-4o-mini"] == "7.1"


def test_a_reciprocal_rate_in_force_is_shown_as_used() -> None:
    reciprocal = D("0.1408450704225352112676056338")  # 1 / 7.1, as the ledger stores it
    cny = BillLine("deepseek/deepseek-chat", "output_tokens", D(333), "1M tokens", D("8"),
                   convert_at(D("0.002664"), reciprocal), price_currency="CNY")
    bill = open_bill("acme", "2026-11", "USD", [cny])
    [row] = read(bill_csv(bill, rates={"CNY": reciprocal}))[1:-1]
    assert row[10:] == ["CNY", "0.1408450704225352112676056338"]
    # without it, the average the amount gives: ten digits, the last ones the rounding's
    [row] = read(bill_csv(bill))[1:-1]
    assert row[11] == "0.1408450826"
