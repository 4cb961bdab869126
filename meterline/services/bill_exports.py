"""A bill as a file: CSV or XLSX (``lang`` en or zh) for people, FOCUS CSV for FinOps tools.

The file holds exactly the bill that ``GET /api/bills/{tenant}/{cycle}`` shows: an open bill's
exact amounts (a preview), an issued one's rounded amounts (docs/bills.md, Exports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import Engine

from meterline.domain.bills import Bill, parse_cycle
from meterline.domain.fx import FxTable
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput
from meterline.exports.csv import bill_csv
from meterline.exports.focus import bill_focus
from meterline.exports.labels import language
from meterline.exports.xlsx import bill_xlsx
from meterline.services.bills import load
from meterline.store.pricing import load_fx

FORMATS: Final = ("csv", "xlsx", "focus")
MEDIA_TYPES: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "focus": "text/csv; charset=utf-8",
}
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class BillFile:
    content: bytes
    media_type: str
    filename: str
    total: str
    status: str


def file_format(value: object) -> str:
    if value not in FORMATS:
        raise InvalidInput(f"format: {value!r} is not one of {', '.join(FORMATS)}",
                           field="format")
    return str(value)


def filename(tenant: str, user: str | None, cycle: str, fmt: str) -> str:
    """``bill-acme-2026-11.csv``, ``bill-acme-alice-2026-11.xlsx``, ``…-focus.csv``: ASCII
    letters, digits, dot, dash and underscore only (anything else becomes ``_``)."""
    parts = [tenant, *([user] if user else []), cycle, *(["focus"] if fmt == "focus" else [])]
    stem = "-".join(_UNSAFE.sub("_", part).strip("._") or "_" for part in parts)
    return f"bill-{stem}.{'xlsx' if fmt == 'xlsx' else 'csv'}"


def rates_in_force(bill: Bill, fx: FxTable, timezone: str) -> dict[str, Decimal]:
    """Per price currency of the bill's lines, the one FX rate to the bill's currency in force
    over each cycle its lines belong to (the bill's own, and those its late usage adjusts),
    where one rate covered them all; the exports show a line's rate from it."""
    spans = [parse_cycle(c).bounds(timezone)
             for c in {str(bill.cycle), *(line.adjustment_of for line in bill.lines
                                          if line.adjustment_of)}]
    found = {}
    for code in {line.price_currency for line in bill.lines} - {None, bill.currency}:
        assert code is not None
        rates = set().union(*(fx.rates_between(code, bill.currency, start, end)
                              for start, end in spans))
        if len(rates) == 1:
            found[code] = rates.pop()
    return found


def export(engine: Engine, tenant: object, cycle: object, fmt: object, lang: object = "en",
           user: object = None) -> BillFile:
    """The bill of ``tenant`` (or one ``user``) for ``cycle`` as a file."""
    kind = file_format(fmt)
    words = language(lang if lang not in (None, "") else "en")
    with engine.connect() as conn:
        view = load(conn, tenant, cycle, user)
        fx = load_fx(conn)
    bill = view.bill
    rates = rates_in_force(bill, fx, view.tenant.timezone)
    if kind == "csv":
        content = bill_csv(bill, words, rates)
    elif kind == "xlsx":
        content = bill_xlsx(bill, words, rates)
    else:
        content = bill_focus(bill, tz=view.tenant.timezone, rates=rates)
    return BillFile(content, MEDIA_TYPES[kind],
                    filename(bill.tenant, bill.user, str(bill.cycle), kind),
                    format_decimal(bill.total), bill.status.value)
