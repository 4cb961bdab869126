"""A bill as CSV: a header row, one row per line, and a last total row (see ``labels``).

UTF-8, CRLF line ends (RFC 4180). The Chinese file starts with a byte-order mark, because Excel
on Windows reads a CSV without one in the local code page and garbles Chinese; the English file
has none, so programs reading it as plain UTF-8 see no stray character in the first header.
Numbers are plain decimal text: rounded amounts with every minor digit ("12.50"), unrounded
ones (an open bill) in full. Text cells that a spreadsheet would run as a formula get a leading
apostrophe; numbers are never altered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from meterline.domain.bills import Bill
from meterline.domain.money import format_decimal
from meterline.exports.labels import AMOUNT, Cell, bill_table, language, money_text

BOM: Final = "\ufeff"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _text(cell: Cell, column: int, currency: str) -> str:
    if isinstance(cell, Decimal):
        return money_text(cell, currency) if column == AMOUNT else format_decimal(cell)
    return f"'{cell}" if cell.startswith(_FORMULA_START) else cell


def bill_csv(bill: Bill, lang: str = "en", rates: Mapping[str, Decimal] | None = None) -> bytes:
    """``rates``: see ``labels.bill_table``."""
    lang = language(lang)
    table = bill_table(bill, lang, rates)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.header)
    for row in (*table.rows, table.total):
        writer.writerow([_text(cell, i, bill.currency) for i, cell in enumerate(row)])
    text = out.getvalue()
    return (BOM + text if lang == "zh" else text).encode("utf-8")
