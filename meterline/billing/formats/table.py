"""Reading a console's CSV bill export by a column layout (``Layout``): which columns hold the
day, the amount, the currency and the model, under the names the provider's export uses (in
English and in Chinese, as the consoles write either).

Each row becomes a line with the row kept as it was. A bad row refuses the whole file, naming
its line and column; nothing is stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from meterline.billing.lines import BilledLine, amount, billed, currency, day, first
from meterline.errors import InvalidInput

Names = tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    format: str
    #: meterline's name of the provider (``--provider`` wins).
    provider: str
    #: The day a row's charge starts (a date, a date-time, Unix seconds, or ``a ~ b``).
    start: Names
    amount: Names
    model: Names
    #: The last day or time a row covers (inclusive); none: the row is one day.
    end: Names = ()
    currency: Names = ("Currency", "currency", "币种")
    default_currency: str = "CNY"
    #: The model is the text up to its first comma (``gpt-4o-2024-08-06, input``).
    model_until_comma: bool = False


def _names(names: Names) -> str:
    return " or ".join(names)


def _day(text: str, where: str, column: str) -> date:
    if text.isdigit() and len(text) >= 9:  # Unix seconds
        return datetime.fromtimestamp(int(text), UTC).date()
    return day(text, where, column)


def _span(row: Mapping[str, str | None], layout: Layout, where: str) -> tuple[date, date]:
    text = first(row, *layout.start)
    if not text:
        raise InvalidInput(f"{where}: no {_names(layout.start)}", field=layout.start[0])
    begin, _, finish = text.replace("至", "~").partition("~")
    start = _day(begin.strip(), where, layout.start[0])
    last_text = finish.strip() or first(row, *layout.end)
    last = _day(last_text, where, layout.end[0] if layout.end else layout.start[0]) \
        if last_text else start
    return start, max(last, start) + timedelta(days=1)


def read(text: str, layout: Layout, provider: str | None = None) -> list[BilledLine]:
    # newline="": the csv module then takes \r, \n and \r\n line ends, and quoted newlines.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    label = f"{layout.format} file"
    try:
        header = {name.strip() for name in reader.fieldnames or []}
        for names in (layout.start, layout.amount):
            if not header & set(names):
                raise InvalidInput(f"{label}: no column {_names(names)} (the layout of "
                                   f"the provider's export; docs/reconcile.md)", field="file")
        name = (provider or layout.provider).strip().lower()
        out = []
        for raw in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()
                   if isinstance(v, str)}
            if not any(row.values()):
                continue
            where = f"{label} line {reader.line_num}"
            start, until = _span(row, layout, where)
            model = first(row, *layout.model) or "unattributed"
            if layout.model_until_comma:
                model = model.split(",")[0].strip()
            value = amount(first(row, *layout.amount), where, layout.amount[0])
            code = currency(first(row, *layout.currency) or layout.default_currency, where,
                            layout.currency[0])
            out.append(billed(name, model, start, value, code, row, until))
    except csv.Error as exc:
        raise InvalidInput(f"{label} line {reader.line_num}: not CSV ({exc})",
                           field="file") from None
    return out
