"""meterline.exports.xlsx: a hand-written workbook, read back with zipfile and xml.etree."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.bills import Bill, BillLine, issue, open_bill
from meterline.domain.money import MINOR_UNITS
from meterline.errors import InvalidInput
from meterline.exports.xlsx import bill_xlsx, column_name
from tests.bill_lines import LATE, NOVEMBER, lines

D = Decimal
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def issued(currency: str = "USD") -> Bill:
    return issue(open_bill("acme", "2026-11", currency, [*NOVEMBER, *LATE]))


Cell = tuple[str, str, str | Decimal]  # (reference, style, value)


def sheet(data: bytes) -> list[list[Cell]]:
    """Rows of cells; numeric cells as Decimal (from the exact <v> text), strings as str."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        root = ET.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in root.iterfind("m:sheetData/m:row", NS):
        cells: list[Cell] = []
        for c in row.iterfind("m:c", NS):
            kind, style = c.get("t"), c.get("s", "0")
            if kind == "inlineStr":
                value: str | Decimal = "".join(t.text or "" for t in c.iterfind(".//m:t", NS))
            elif kind is None:
                v = c.find("m:v", NS)
                value = D(v.text) if v is not None and v.text else ""
            else:
                raise AssertionError(f"unexpected cell type {kind}")
            cells.append((c.get("r", ""), style, value))
        rows.append(cells)
    return rows


def values(rows: list[list[Cell]]) -> list[list[str | Decimal]]:
    return [[value for _, _, value in row] for row in rows]


def test_package_parts_and_content_types() -> None:
    with zipfile.ZipFile(io.BytesIO(bill_xlsx(issued()))) as archive:
        names = archive.namelist()
        assert names[0] == "[Content_Types].xml"
        assert set(names) == {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
                              "xl/_rels/workbook.xml.rels", "xl/styles.xml",
                              "xl/worksheets/sheet1.xml"}
        for name in names:
            ET.fromstring(archive.read(name))  # every part is well-formed XML
        types = archive.read("[Content_Types].xml").decode()
        assert "spreadsheetml.worksheet+xml" in types and "spreadsheetml.sheet.main+xml" in types
        workbook = ET.fromstring(archive.read("xl/workbook.xml"))
        assert workbook.find("m:sheets/m:sheet", NS).get("name") == "Bill 2026-11"  # type: ignore[union-attr]
        styles = archive.read("xl/styles.xml").decode()
        assert 'formatCode="#,##0.00"' in styles


def test_cells_are_typed_and_amounts_sum_to_the_total() -> None:
    bill = issued()
    rows = values(sheet(bill_xlsx(bill)))
    assert rows[0] == ["date", "model", "meter", "type", "quantity", "unit", "unit price",
                       "amount", "currency", "status", "unit price currency", "fx rate"]
    assert rows[1] == ["2026-11", "openai/gpt-4o-mini", "input tokens", "token", D(1234567),
                       "1M tokens", D("0.15"), D("0.19"), "USD", "charged", "USD", D(1)]
    body, total = rows[1:-1], rows[-1]
    assert total == ["total", "", "", "", "", "", "", D("1.95"), "USD", "issued", "", ""]
    amounts = [row[7] for row in body]
    assert all(isinstance(a, Decimal) for a in amounts)
    assert sum(amounts, D(0)) == total[7] == bill.total
    assert [row[0] for row in body if row[1] == "deepseek/deepseek-chat"] == ["2026-10"]


def test_cell_references_and_styles() -> None:
    rows = sheet(bill_xlsx(issued()))
    assert [ref for ref, _, _ in rows[0]] == [f"{c}1" for c in "ABCDEFGHIJKL"]
    assert {style for _, style, _ in rows[0]} == {"1"}           # bold header
    assert rows[1][7][1] == "2" and rows[-1][7][1] == "3"         # money, bold money
    assert rows[1][4][1] == "0"                                   # quantity: general


def test_chinese_workbook() -> None:
    data = bill_xlsx(issued(), "zh")
    rows = values(sheet(data))
    assert rows[0] == ["日期", "模型", "计量项", "类型", "数量", "单位", "单价", "金额", "币种",
                       "状态", "单价币种", "汇率"]
    assert rows[-1][0] == "合计" and rows[-1][9] == "已出账"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "账单 2026-11" in archive.read("xl/workbook.xml").decode()


def test_open_bill_shows_exact_amounts() -> None:
    bill = open_bill("acme", "2026-11", "JPY", NOVEMBER)
    data = bill_xlsx(bill)
    rows = values(sheet(data))
    assert rows[-1][7] == D("1.94535985") == sum((row[7] for row in rows[1:-1]), D(0))  # type: ignore[misc]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert 'formatCode="#,##0.############"' in archive.read("xl/styles.xml").decode()


def test_numbers_are_plain_decimal_text() -> None:
    bill = issue(open_bill("acme", "2026-11", "USD", lines(
        "m/x input_tokens 10000000000 1M_tokens 0.000000000001 0.00000001")))
    with zipfile.ZipFile(io.BytesIO(bill_xlsx(bill))) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    numbers = re.findall(r"<v>([^<]*)</v>", xml)
    assert numbers and all(re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", n) for n in numbers)
    assert "0.000000000001" in numbers


def test_text_is_escaped_and_invalid_xml_characters_dropped() -> None:
    bill = open_bill("acme", "2026-11", "USD", lines("a<b>&\x01c/m images 1 image 1 1"))
    rows = values(sheet(bill_xlsx(bill)))
    assert rows[1][1] == "a<b>&c/m"


def test_same_bill_same_bytes() -> None:
    assert bill_xlsx(issued()) == bill_xlsx(issued())


def test_unknown_language() -> None:
    with pytest.raises(InvalidInput) as err:
        bill_xlsx(issued(), "de")
    assert err.value.field == "lang"


@pytest.mark.parametrize(("index", "name"), [(0, "A"), (9, "J"), (25, "Z"), (26, "AA"),
                                             (701, "ZZ"), (702, "AAA")])
def test_column_name(index: int, name: str) -> None:
    assert column_name(index) == name


amounts = st.builds(lambda n, places: D(n).scaleb(-places), st.integers(0, 10**9),
                    st.integers(0, 10))


@settings(deadline=None, max_examples=100)
@given(st.lists(amounts, max_size=20), st.sampled_from(sorted(MINOR_UNITS)))
def test_any_issued_workbook_adds_up(drawn: list[Decimal], currency: str) -> None:
    bill = issue(open_bill("acme", "2026-11", currency, [
        BillLine(f"p/m{i}", "images", D(i), "image", D(1), value) for i, value in enumerate(drawn)
    ]))
    rows = values(sheet(bill_xlsx(bill)))
    assert sum((row[7] for row in rows[1:-1]), D(0)) == rows[-1][7] == bill.total  # type: ignore[misc]


def test_opens_with_openpyxl() -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(bill_xlsx(issued(), "zh")))
    ws = workbook.active
    assert ws.title == "账单 2026-11" and ws.freeze_panes == "A2"
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "日期" and rows[-1][0] == "合计"
    assert isinstance(rows[1][7], float) and ws["H2"].number_format == "#,##0.00"
