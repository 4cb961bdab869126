"""A bill as a FOCUS 1.x cost-and-usage CSV (FinOps Open Cost and Usage Specification).

One row per bill line; the BilledCost column sums to the bill's total exactly. Columns and how
meterline fills them are listed in docs/bills.md. In short: BilledCost and EffectiveCost are the
line's amount on the bill (rounded once the bill is issued); ListCost and ContractedCost are the
exact amount before rounding, at ListUnitPrice = ContractedUnitPrice = the line's unit price
(meterline has no negotiated or commitment discounts). The provider is named in ProviderName
(FOCUS 1.0/1.1) and ServiceProviderName (1.2), the model in the custom column ``x_Model``.

Periods are written in UTC, as FOCUS requires, and the tenant's timezone in ``x_Timezone``:
a cycle is a month of the tenant's days (``2026-11`` in Asia/Shanghai starts at
``2026-10-31T16:00:00Z``), and a reader that takes the bounds as days in that timezone gets the
cycle's days back (``providers/bill_files.py``), whatever the offset, so the file reconciles
with the metered days, which are the tenant's days too.

A line priced in another currency than the bill's (a USD price on a CNY bill) has its amounts in
the billing currency, as FOCUS asks, and its price as priced in ``PricingCurrency`` and
``PricingCurrencyListUnitPrice`` (FOCUS 1.2); ``ListUnitPrice`` is that price times the rate its
amount was converted at (``x_FxRate``, ``domain.bills.line_fx_rate``).

Refunds and late usage follow the spec's refund and correction handling: both stay
ChargeCategory ``Usage`` (a refund is a negative Usage row, not a Credit). A line that
adjusts an already issued cycle has ChargeClass ``Correction`` and the charge period of that
cycle, inside the billing period of the bill that carries it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Final

from meterline.domain.bills import Bill, BillLine, BillStatus, line_fx_rate, parse_cycle
from meterline.domain.money import MONEY_CONTEXT, format_decimal

COLUMNS: Final = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "HostProviderName", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice",
    "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName",
    "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory", "SkuId",
    "SubAccountId", "SubAccountName", "Tags",
    "x_Model", "x_Meter", "x_BillingType", "x_LineStatus", "x_AdjustmentOf", "x_BillStatus",
    "x_Cycle", "x_FxRate", "x_Timezone",
)
SERVICE_CATEGORY: Final = "AI and Machine Learning"
SERVICE_SUBCATEGORY: Final = "Generative AI"
TAG_PREFIX: Final = "meterline/"

#: FOCUS UnitFormat names (capitalised plural nouns) of each meter's unit.
_UNITS: Final = {
    "input_tokens": "Tokens", "cached_input_tokens": "Tokens", "cache_write_tokens": "Tokens",
    "cache_write_1h_tokens": "Tokens",
    "output_tokens": "Tokens", "reasoning_tokens": "Tokens", "characters": "Characters",
    "images": "Images", "seconds": "Seconds", "requests": "Requests",
    "minimum_charge": "Requests", "web_search_calls": "Calls", "file_search_calls": "Calls",
    "code_interpreter_sessions": "Sessions",
}


def provider_prefix(model: str) -> str:
    """The default provider of a model: its ``provider/`` prefix ("openai/gpt-4o" -> "openai")."""
    head, slash, _ = model.partition("/")
    return head if slash and head else "unknown"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def pricing_unit(line: BillLine) -> str:
    """"1M tokens" -> "1000000 Tokens"; a unit of one -> "Tokens" (FOCUS UnitFormat)."""
    name = _UNITS[line.meter]
    return name if line.per == 1 else f"{line.per} {name}"


def _description(bill: Bill, line: BillLine) -> str:
    text = (f"{line.model} {line.meter.replace('_', ' ')}: {format_decimal(line.quantity)} at "
            f"{format_decimal(line.unit_price)} {line.price_currency or bill.currency} per "
            f"{line.unit}")
    if line.refund:
        text += ", refund"
    if line.adjustment_of:
        text += f", usage of {line.adjustment_of} billed late"
    return text


def _tags(bill: Bill, line: BillLine) -> str:
    tags: dict[str, object] = {"meter": line.meter, "billing_type": line.billing_type,
                               "cycle": str(bill.cycle)}
    if bill.user is not None:
        tags["user"] = bill.user
    if line.adjustment_of:
        tags["adjustment_of"] = line.adjustment_of
    if line.refund:
        tags["refund"] = True
    return json.dumps({TAG_PREFIX + k: v for k, v in tags.items()}, ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"))


def _invoice_id(bill: Bill) -> str:
    if bill.status not in (BillStatus.ISSUED, BillStatus.PAID):
        return ""  # no invoice yet (open) or none any more (void)
    who = bill.tenant if bill.user is None else f"{bill.tenant}/{bill.user}"
    return f"{who}/{bill.cycle}"


def zone_name(tz: str | tzinfo) -> str:
    """The IANA name of a timezone given by name or as a ZoneInfo ("UTC" for a fixed one)."""
    if isinstance(tz, str):
        return tz
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else "UTC"


def _unit_price_in(line: BillLine, rate: Decimal | None) -> Decimal:
    """The unit price in the billing currency: as priced, times the rate its amount was
    converted at (exact product; the rate has FX_RATE_DIGITS digits)."""
    if rate is None:
        return line.unit_price
    return MONEY_CONTEXT.multiply(line.unit_price, rate)


def focus_rows(
    bill: Bill,
    *,
    tz: str | tzinfo = "UTC",
    provider_of_model: Callable[[str], str] = provider_prefix,
    invoice_issuer: str = "meterline",
    rates: Mapping[str, Decimal] | None = None,
) -> list[dict[str, str]]:
    """One FOCUS row per line; periods are the cycles' bounds in the tenant's timezone ``tz``;
    ``rates`` as in ``labels.bill_table``."""
    rates = rates or {}
    billing_start, billing_end = bill.cycle.bounds(tz)
    zone = zone_name(tz)
    invoice_id = _invoice_id(bill)
    rows = []
    for line in bill.lines:
        charge_start, charge_end = (parse_cycle(line.adjustment_of).bounds(tz)
                                    if line.adjustment_of else (billing_start, billing_end))
        provider = provider_of_model(line.model)
        billed = format_decimal(line.amount)
        exact = format_decimal(line.exact_amount)
        rate = line_fx_rate(line, bill.currency, rates.get(line.price_currency or ""))
        price = format_decimal(_unit_price_in(line, rate))
        priced = format_decimal(line.unit_price)
        rows.append({
            "BilledCost": billed,
            "BillingAccountId": bill.tenant,
            "BillingAccountName": bill.tenant,
            "BillingCurrency": bill.currency,
            "BillingPeriodEnd": _when(billing_end),
            "BillingPeriodStart": _when(billing_start),
            "ChargeCategory": "Usage",
            "ChargeClass": "Correction" if line.adjustment_of else "",
            "ChargeDescription": _description(bill, line),
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": _when(charge_end),
            "ChargePeriodStart": _when(charge_start),
            "ConsumedQuantity": format_decimal(line.quantity),
            "ConsumedUnit": _UNITS[line.meter],
            "ContractedCost": exact,
            "ContractedUnitPrice": price,
            "EffectiveCost": billed,
            "HostProviderName": provider,
            "InvoiceId": invoice_id,
            "InvoiceIssuerName": invoice_issuer,
            "ListCost": exact,
            "ListUnitPrice": price,
            "PricingCategory": "Standard",
            "PricingCurrency": line.price_currency or bill.currency,
            "PricingCurrencyContractedUnitPrice": priced,
            "PricingCurrencyListUnitPrice": priced,
            "PricingQuantity": format_decimal(MONEY_CONTEXT.divide(line.quantity, line.per)),
            "PricingUnit": pricing_unit(line),
            "ProviderName": provider,
            "PublisherName": provider,
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceName": line.model,
            "ServiceProviderName": provider,
            "ServiceSubcategory": SERVICE_SUBCATEGORY,
            "SkuId": f"{line.model}:{line.meter}",
            "SubAccountId": bill.user or "",
            "SubAccountName": bill.user or "",
            "Tags": _tags(bill, line),
            "x_Model": line.model,
            "x_Meter": line.meter,
            "x_BillingType": line.billing_type,
            "x_LineStatus": line.status,
            "x_AdjustmentOf": line.adjustment_of or "",
            "x_BillStatus": bill.status.value,
            "x_Cycle": str(bill.cycle),
            "x_FxRate": format_decimal(rate) if rate is not None else "",
            "x_Timezone": zone,
        })
    return rows


def bill_focus(
    bill: Bill,
    *,
    tz: str | tzinfo = "UTC",
    provider_of_model: Callable[[str], str] = provider_prefix,
    invoice_issuer: str = "meterline",
    rates: Mapping[str, Decimal] | None = None,
) -> bytes:
    """The FOCUS CSV: UTF-8 without byte-order mark, CRLF, a header row of COLUMNS."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(focus_rows(bill, tz=tz, provider_of_model=provider_of_model,
                                invoice_issuer=invoice_issuer, rates=rates))
    return out.getvalue().encode("utf-8")
