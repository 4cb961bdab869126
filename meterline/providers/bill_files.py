"""Provider bill files, read into billed periods for reconciliation (``meterline sync --file``).

FOCUS (FinOps Open Cost and Usage Specification) CSV: the provider is the ``provider`` given
(meterline's name for it: a console may write "Alibaba Cloud" for what meterline calls ``qwen``),
else ``ServiceProviderName`` (FOCUS 1.2) or ``ProviderName`` (before); the model the custom column
``x_Model``, else ``ResourceName``, else ``SkuId`` (SPEC §6), named ``provider/model`` like
meterline's own models; the amount ``BilledCost`` in ``BillingCurrency``; the period
``ChargePeriodStart`` (inclusive) to ``ChargePeriodEnd`` (exclusive), as calendar days in the
timezone the custom column ``x_Timezone`` names, else in the offset the file writes them with (a
provider bills in its own timezone). FOCUS writes times in UTC, so a month of Shanghai days is
``2026-10-31T16:00:00Z`` to ``2026-11-30T16:00:00Z``: only with its timezone is that the month
of November again. meterline's own FOCUS export writes ``x_Timezone`` (the tenant's), so it
reads back as the cycle it was, in every timezone. Money is read from the text as decimals,
never as floats.

The providers' own console exports (``aliyun``, ``tencent``, ``volcano``, ``baidu``,
``deepseek``, ``openai``, ``anthropic``) are read by their column layouts in
``meterline.billing.formats``; every line keeps the row it came from (``BilledLine.raw``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.billing.formats import READERS
from meterline.billing.lines import MAX_AMOUNT, BilledLine
from meterline.domain.money import MAX_PRICE_PLACES, currency_code, decimal, decimal_places
from meterline.domain.reconcile import BilledPeriod
from meterline.errors import InvalidInput

#: Every bill file format read (SPEC §6).
FORMATS: Final = ("focus", *READERS)
_PROVIDER_COLUMNS: Final = ("ServiceProviderName", "ProviderName")
_MODEL_COLUMNS: Final = ("x_Model", "ResourceName", "SkuId")
_REQUIRED: Final = ("BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd")
_TIMEZONE: Final = "x_Timezone"

__all__ = ["FORMATS", "MAX_AMOUNT", "BilledLine", "read_bill", "read_focus"]


def read_bill(text: str, file_format: str, provider: str | None = None) -> list[BilledLine]:
    """Every charge of the file; a bad row is refused, naming its line and column."""
    if file_format not in FORMATS:
        raise InvalidInput(f"format: one of {', '.join(FORMATS)}, not {file_format!r}",
                           field="format")
    if file_format != "focus":
        return READERS[file_format](text, provider=provider)
    return read_focus(text, provider)


def read_focus(text: str, provider: str | None = None) -> list[BilledLine]:
    # newline="": the csv module then takes \r, \n and \r\n line ends, and quoted newlines.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = reader.fieldnames or []
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise InvalidInput(f"FOCUS file: missing column(s) {', '.join(missing)}",
                               field="file")
        if provider is None and not any(c in header for c in _PROVIDER_COLUMNS):
            raise InvalidInput("FOCUS file: no ServiceProviderName or ProviderName column; "
                               "name the provider with --provider", field="provider")
        out = []
        for row in reader:
            where = f"FOCUS file line {reader.line_num}"
            out.append(_line(row, where, provider))
    except csv.Error as exc:
        raise InvalidInput(f"FOCUS file line {reader.line_num}: not CSV ({exc})",
                           field="file") from None
    return out


def _line(row: Mapping[str, str | None], where: str, provider: str | None) -> BilledLine:
    name = provider or _first(row, _PROVIDER_COLUMNS)
    if not name:
        raise InvalidInput(f"{where}: no provider (ServiceProviderName, ProviderName or "
                           "--provider)", field="ServiceProviderName")
    name = name.strip().lower()
    model = _first(row, _MODEL_COLUMNS)
    if not model:
        raise InvalidInput(f"{where}: no model (x_Model, ResourceName or SkuId)",
                           field="x_Model")
    model = model.strip()
    if "/" not in model:
        model = f"{name}/{model}"
    amount_text = (row.get("BilledCost") or "").strip()
    try:
        amount = decimal(amount_text, field="BilledCost")
    except InvalidInput:
        raise InvalidInput(f"{where}: BilledCost {amount_text!r} is not a number",
                           field="BilledCost") from None
    if abs(amount) >= MAX_AMOUNT or decimal_places(amount) > MAX_PRICE_PLACES:
        # Beyond any real bill; the bound keeps every sum exact (see money.py).
        raise InvalidInput(f"{where}: BilledCost {amount_text!r} is out of range (below "
                           f"{MAX_AMOUNT:,} with at most {MAX_PRICE_PLACES} decimal places)",
                           field="BilledCost")
    try:
        currency = currency_code((row.get("BillingCurrency") or "").strip(),
                                 field="BillingCurrency")
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", field="BillingCurrency") from None
    zone = _zone(row, where)
    start = _day(row, "ChargePeriodStart", where, zone)
    end = _day(row, "ChargePeriodEnd", where, zone, end=True)
    if end <= start:
        raise InvalidInput(f"{where}: ChargePeriodEnd is not after ChargePeriodStart",
                           field="ChargePeriodEnd")
    return BilledLine(BilledPeriod(name, model, start, end, amount), currency, dict(row))


def _first(row: Mapping[str, str | None], columns: tuple[str, ...]) -> str | None:
    for column in columns:
        value = (row.get(column) or "").strip()
        if value:
            return value
    return None


def _zone(row: Mapping[str, str | None], where: str) -> ZoneInfo | None:
    name = (row.get(_TIMEZONE) or "").strip()
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{where}: {_TIMEZONE} {name!r} is not an IANA timezone (such as "
                           "Asia/Shanghai)", field=_TIMEZONE) from None


def _day(row: Mapping[str, str | None], column: str, where: str, zone: ZoneInfo | None, *,
         end: bool = False) -> date:
    """A period bound as a calendar day, in ``zone`` where the row names one (a time without
    an offset is already in it); an end later than midnight closes the day it falls in (the
    period covers that day too)."""
    text = (row.get(column) or "").strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: {column} {text!r} is not an ISO 8601 date or time",
                           field=column) from None
    if zone is not None and when.tzinfo is not None:
        when = when.astimezone(zone)
    day = when.date()
    if end and (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        day += timedelta(days=1)
    return day
