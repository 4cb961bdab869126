"""meterline.exports.focus: a FOCUS 1.x CSV of a bill; BilledCost sums to the bill's total."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.bills import Bill, BillLine, issue, open_bill
from meterline.domain.money import MINOR_UNITS
from meterline.exports.focus import COLUMNS, bill_focus
from tests.bill_lines import LATE, NOVEMBER

D = Decimal


#: Columns FOCUS 1.0-1.2 require of every cost-and-usage dataset (those that apply to meterline).
REQUIRED = {
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
    "ServiceProviderName", "SkuId", "SubAccountId", "Tags",
}


def issued(user: str | None = None) -> Bill:
    return issue(open_bill("acme", "2026-11", "USD", [*NOVEMBER, *LATE], user=user))


def read(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert not text.startswith("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def test_columns() -> None:
    assert set(COLUMNS) >= REQUIRED
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert all(c[0].isupper() or c.startswith("x_") for c in COLUMNS)
    assert "x_Model" in COLUMNS


def test_billed_cost_sums_to_the_total_to_the_cent() -> None:
    bill = issued()
    rows = read(bill_focus(bill))
    assert len(rows) == len(bill.lines)
    assert sum(D(row["BilledCost"]) for row in rows) == bill.total == D("1.95")
    assert sum(D(row["EffectiveCost"]) for row in rows) == bill.total
    assert {row["BillingCurrency"] for row in rows} == {"USD"}


def test_a_usage_row() -> None:
    rows = read(bill_focus(issued(user="alice"), tz="Asia/Shanghai"))
    row = next(r for r in rows if r["SkuId"] == "openai/gpt-4o-mini:input_tokens")
    assert row["BilledCost"] == "0.19"
    assert row["ListCost"] == row["ContractedCost"] == "0.18518505"
    assert row["ListUnitPrice"] == row["ContractedUnitPrice"] == "0.15"
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == ("1234567", "Tokens")
    assert (row["PricingQuantity"], row["PricingUnit"]) == ("1.234567", "1000000 Tokens")
    assert D(row["PricingQuantity"]) * D(row["ListUnitPrice"]) == D(row["ListCost"])
    assert row["ServiceProviderName"] == row["ProviderName"] == row["PublisherName"] == "openai"
    assert row["x_Model"] == row["ServiceName"] == "openai/gpt-4o-mini"
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert (row["ChargeCategory"], row["ChargeClass"]) == ("Usage", "")
    assert row["ChargeFrequency"] == "Usage-Based" and row["PricingCategory"] == "Standard"
    assert row["BillingPeriodStart"] == row["ChargePeriodStart"] == "2026-10-31T16:00:00Z"
    assert row["BillingPeriodEnd"] == row["ChargePeriodEnd"] == "2026-11-30T16:00:00Z"
    assert row["BillingAccountId"] == "acme" and row["SubAccountId"] == "alice"
    assert row["InvoiceId"] == "acme/alice/2026-11" and row["InvoiceIssuerName"] == "meterline"
    assert json.loads(row["Tags"]) == {
        "meterline/meter": "input_tokens", "meterline/billing_type": "token",
        "meterline/cycle": "2026-11", "meterline/user": "alice"}
    assert "1234567" in row["ChargeDescription"] and "0.15 USD per 1M tokens" in row[
        "ChargeDescription"]


def test_units_of_each_meter() -> None:
    rows = {r["x_Meter"]: r for r in read(bill_focus(issued())) if r["x_LineStatus"] == "charged"}
    assert (rows["images"]["ConsumedUnit"], rows["images"]["PricingUnit"]) == ("Images", "Images")
    assert rows["seconds"]["PricingQuantity"] == "12.5"
    assert rows["characters"]["PricingUnit"] == "1000 Characters"
    assert rows["characters"]["PricingQuantity"] == "12.345"
    assert {r["x_BillingType"] for r in rows.values()} == {"token", "count", "second",
                                                           "character"}


def test_late_usage_is_a_correction_in_its_own_charge_period() -> None:
    rows = read(bill_focus(issued(), tz="Asia/Shanghai"))
    late = next(r for r in rows if r["x_Model"] == "deepseek/deepseek-chat")
    assert (late["ChargeCategory"], late["ChargeClass"]) == ("Usage", "Correction")
    assert (late["ChargePeriodStart"], late["ChargePeriodEnd"]) == (
        "2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    assert (late["BillingPeriodStart"], late["BillingPeriodEnd"]) == (
        "2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z")
    assert late["x_AdjustmentOf"] == "2026-10"
    assert json.loads(late["Tags"])["meterline/adjustment_of"] == "2026-10"


def test_a_refund_is_a_negative_usage_row() -> None:
    rows = read(bill_focus(issued()))
    refund = next(r for r in rows if r["x_LineStatus"] == "refunded")
    assert refund["ChargeCategory"] == "Usage" and refund["ChargeClass"] == ""
    assert D(refund["BilledCost"]) == D("-0.40") and D(refund["ConsumedQuantity"]) == -2
    assert json.loads(refund["Tags"])["meterline/refund"] is True


def test_provider_names_and_issuer_can_be_given() -> None:
    names = {"openai": "OpenAI", "qwen": "Alibaba Cloud"}
    rows = read(bill_focus(issued(), provider_of_model=lambda m: names.get(m.split("/")[0], "x"),
                           invoice_issuer="Acme Platform"))
    providers = {r["x_Model"]: r["ServiceProviderName"] for r in rows}
    assert providers["openai/gpt-4o-mini"] == "OpenAI"
    assert providers["qwen/wanx-v1"] == "Alibaba Cloud"
    assert {r["InvoiceIssuerName"] for r in rows} == {"Acme Platform"}


def test_an_open_bill_has_no_invoice_and_exact_costs() -> None:
    bill = open_bill("acme", "2026-11", "USD", NOVEMBER)
    rows = read(bill_focus(bill))
    assert {r["InvoiceId"] for r in rows} == {""}
    assert sum(D(r["BilledCost"]) for r in rows) == bill.total == D("1.94535985")
    assert {r["x_BillStatus"] for r in rows} == {"open"}


def test_an_empty_bill_is_a_header() -> None:
    data = bill_focus(issue(open_bill("acme", "2026-11", "USD")))
    assert data == (",".join(COLUMNS) + "\r\n").encode()


amounts = st.builds(lambda n, places: D(n).scaleb(-places), st.integers(0, 10**9),
                    st.integers(0, 10))


@settings(deadline=None, max_examples=100)
@given(st.lists(st.tuples(amounts, st.booleans()), max_size=20),
       st.sampled_from(sorted(MINOR_UNITS)))
def test_any_issued_bill_adds_up(drawn: list[tuple[Decimal, bool]], currency: str) -> None:
    bill_lines = [BillLine(f"p/m{i}", "requests", D(-i if refund else i), "request", D(1),
                           -value if refund else value, refund=refund)
                  for i, (value, refund) in enumerate(drawn)]
    bill = issue(open_bill("acme", "2026-11", currency, bill_lines))
    rows = read(bill_focus(bill))
    assert sum((D(r["BilledCost"]) for r in rows), D(0)) == bill.total
    assert sum((D(r["ListCost"]) for r in rows), D(0)) == open_bill(
        "acme", "2026-11", currency, bill_lines).total
