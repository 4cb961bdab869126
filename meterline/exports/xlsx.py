"""A bill as an .xlsx workbook, written by hand: a zip of minimal SpreadsheetML (no dependency).

One sheet with the same table as the CSV (header, one row per line, total row). Quantities,
unit prices and amounts are numeric cells whose ``<v>`` holds the exact decimal text, so Excel
reads numbers and a parser reads exact values; text is written as inline strings. Amounts use a
number format with the currency's minor digits (and more digits while a bill is open and
unrounded). The header row is bold and frozen. The zip's timestamps are fixed, so the same bill
gives the same bytes.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from decimal import Decimal
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from meterline.domain.bills import Bill
from meterline.domain.money import MINOR_UNITS, format_decimal, quantize_minor
from meterline.exports.labels import AMOUNT, SHEET, Cell, bill_table, language

_MAIN: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_WHEN: Final = (1980, 1, 1, 0, 0, 0)
#: Characters XML 1.0 does not allow (control characters other than tab, CR, LF).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Column widths in characters: date, model, meter, type, quantity, unit, price, amount, …
_WIDTHS: Final = (10, 32, 22, 12, 16, 14, 14, 16, 10, 12, 12, 14)

# cellXfs indexes in styles.xml
_PLAIN, _BOLD, _MONEY, _BOLD_MONEY = range(4)

CONTENT_TYPES: Final = (
    f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
    '</Types>'
)
ROOT_RELS: Final = (
    f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>'
)
WORKBOOK_RELS: Final = (
    f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/>'
    '</Relationships>'
)


def _styles(money_format: str) -> str:
    xf = '<xf numFmtId="{}" fontId="{}" fillId="0" borderId="0" xfId="0"{}/>'
    return (
        f'{_HEAD}<styleSheet xmlns="{_MAIN}">'
        f'<numFmts count="1"><numFmt numFmtId="164" formatCode={quoteattr(money_format)}/>'
        '</numFmts>'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        '</cellStyleXfs>'
        '<cellXfs count="4">'
        + xf.format(0, 0, "")
        + xf.format(0, 1, ' applyFont="1"')
        + xf.format(164, 0, ' applyNumberFormat="1"')
        + xf.format(164, 1, ' applyNumberFormat="1" applyFont="1"')
        + '</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '</styleSheet>'
    )


def _workbook(sheet_name: str) -> str:
    return (
        f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
        f'<sheet name={quoteattr(sheet_name)} sheetId="1" r:id="rId1"/>'
        '</sheets></workbook>'
    )


def column_name(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA"."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _cell(ref: str, value: Cell, style: int) -> str:
    s = f' s="{style}"' if style else ""
    if isinstance(value, Decimal):
        return f'<c r="{ref}"{s}><v>{format_decimal(value)}</v></c>'
    if not value:
        return f'<c r="{ref}"{s}/>'
    text = escape(_NOT_XML.sub("", value))
    return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def _row(number: int, cells: tuple[Cell, ...], bold: bool) -> str:
    parts = []
    for i, value in enumerate(cells):
        money = i == AMOUNT and isinstance(value, Decimal)
        style = (_BOLD_MONEY if money else _BOLD) if bold else (_MONEY if money else _PLAIN)
        parts.append(_cell(f"{column_name(i)}{number}", value, style))
    return f'<row r="{number}">{"".join(parts)}</row>'


def _sheet(rows: list[tuple[tuple[Cell, ...], bool]]) -> str:
    width = max(len(cells) for cells, _ in rows)
    cols = "".join(f'<col min="{i + 1}" max="{i + 1}" width="{w}" customWidth="1"/>'
                   for i, w in enumerate(_WIDTHS[:width]))
    body = "".join(_row(n, cells, bold) for n, (cells, bold) in enumerate(rows, start=1))
    return (
        f'{_HEAD}<worksheet xmlns="{_MAIN}">'
        f'<dimension ref="A1:{column_name(width - 1)}{len(rows)}"/>'
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '</sheetView></sheetViews>'
        f'<cols>{cols}</cols><sheetData>{body}</sheetData></worksheet>'
    )


def _money_format(bill: Bill) -> str:
    places = MINOR_UNITS[bill.currency]
    rounded = all(v == quantize_minor(v, bill.currency)
                  for v in (bill.total, *(line.amount for line in bill.lines)))
    digits = "0" * places + ("" if rounded else "#" * 12)
    return f"#,##0.{digits}" if digits else "#,##0"


def bill_xlsx(bill: Bill, lang: str = "en", rates: Mapping[str, Decimal] | None = None) -> bytes:
    """``rates``: see ``labels.bill_table``."""
    lang = language(lang)
    table = bill_table(bill, lang, rates)
    rows: list[tuple[tuple[Cell, ...], bool]] = [(table.header, True)]
    rows += [(cells, False) for cells in table.rows]
    rows.append((table.total, True))
    parts = {
        "[Content_Types].xml": CONTENT_TYPES,
        "_rels/.rels": ROOT_RELS,
        "xl/workbook.xml": _workbook(f"{SHEET[lang]} {bill.cycle}"),
        "xl/_rels/workbook.xml.rels": WORKBOOK_RELS,
        "xl/styles.xml": _styles(_money_format(bill)),
        "xl/worksheets/sheet1.xml": _sheet(rows),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, xml in parts.items():
            info = zipfile.ZipInfo(name, date_time=_WHEN)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, xml.encode("utf-8"))
    return buffer.getvalue()
