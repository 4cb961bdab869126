"""meterline.providers.bill_files: provider bill files read into billed periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.reconcile import BilledPeriod
from meterline.errors import InvalidInput
from meterline.providers.bill_files import FORMATS, BilledLine, read_bill

HEADER = ("BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ServiceProviderName,"
          "ProviderName,x_Model,ResourceName,SkuId\n")


def focus(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def test_focus_rows_become_billed_periods_in_the_files_own_days() -> None:
    lines = read_bill(focus(
        "0.000000123456789012,USD,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,OpenAI,,gpt-5,,",
        "12.5,CNY,2026-11-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,,Qwen,,qwen-max,",
    ), "focus")
    assert lines == [
        BilledLine(BilledPeriod("openai", "openai/gpt-5", date(2026, 11, 1), date(2026, 11, 2),
                                Decimal("0.000000123456789012")), "USD"),
        BilledLine(BilledPeriod("qwen", "qwen/qwen-max", date(2026, 11, 1), date(2026, 12, 1),
                                Decimal("12.5")), "CNY"),
    ]
    # --provider names the provider as meterline does, whatever the file calls it; a period
    # ending at noon covers that day
    [line] = read_bill(focus("3,usd,2026-11-03,2026-11-03T12:00:00Z,Alibaba Cloud,,,,"
                             "qwen-max:input_tokens"), "focus", provider="qwen")
    assert line == BilledLine(BilledPeriod("qwen", "qwen/qwen-max:input_tokens",
                                           date(2026, 11, 3), date(2026, 11, 4), Decimal("3")),
                              "USD")


@pytest.mark.parametrize(("row", "field", "needle"), [
    ("x,USD,2026-11-01,2026-11-02,openai,,m,,", "BilledCost", "not a number"),
    ("1e400000,USD,2026-11-01,2026-11-02,openai,,m,,", "BilledCost", "out of range"),
    ("1,XYZ,2026-11-01,2026-11-02,openai,,m,,", "BillingCurrency", "unknown currency"),
    ("1,USD,November,2026-11-02,openai,,m,,", "ChargePeriodStart", "November"),
    ("1,USD,2026-11-02,2026-11-01,openai,,m,,", "ChargePeriodEnd", "not after"),
    ("1,USD,2026-11-01,2026-11-02,openai,,,,", "x_Model", "no model"),
    ("1,USD,2026-11-01,2026-11-02,,,m,,", "ServiceProviderName", "no provider"),
])
def test_a_bad_row_is_named_with_its_line_and_column(row: str, field: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_bill(focus("1,USD,2026-10-01,2026-10-02,openai,,ok,,", row), "focus")
    assert refused.value.field == field
    assert needle in refused.value.message
    assert "line 3" in refused.value.message


def test_unknown_formats_and_files_without_the_columns_are_refused() -> None:
    with pytest.raises(InvalidInput, match="one of focus, aliyun, tencent") as unknown:
        read_bill("", "pdf")
    assert unknown.value.field == "format"
    with pytest.raises(InvalidInput, match="aliyun file: no column") as empty:
        read_bill("", "aliyun")
    assert empty.value.field == "file"
    with pytest.raises(InvalidInput, match="missing column"):
        read_bill("BilledCost,BillingCurrency\n1,USD\n", "focus")
    with pytest.raises(InvalidInput, match="--provider"):
        read_bill("BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,x_Model\n",
                  "focus")


@pytest.mark.parametrize(("zone", "start", "end"), [
    ("Asia/Shanghai", "2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z"),
    ("America/Los_Angeles", "2026-11-01T07:00:00Z", "2026-12-01T08:00:00Z"),  # PDT, then PST
    ("UTC", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
])
def test_periods_are_days_of_the_timezone_a_row_names(zone: str, start: str, end: str) -> None:
    # FOCUS times are UTC; x_Timezone (meterline's export writes the tenant's) says whose days
    text = ("BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ProviderName,x_Model,"
            f"x_Timezone\n1.5,USD,{start},{end},openai,openai/gpt-5,{zone}\n")
    [line] = read_bill(text, "focus")
    assert (line.period.start, line.period.end) == (date(2026, 11, 1), date(2026, 12, 1))
    with pytest.raises(InvalidInput) as refused:
        read_bill(text.replace(zone, "Mars/Olympus"), "focus")
    assert refused.value.field == "x_Timezone" and "line 2" in refused.value.message


# -- any file: read, or refused naming why ---------------------------------------------------

_CELLS = st.one_of(st.text(max_size=12), st.decimals(allow_nan=False, places=6).map(str),
                   st.sampled_from(["2026-10-01", "2026-10-01T00:00:00Z", "USD", "CNY", "-1",
                                    "1e400", ""]))


@settings(max_examples=60, deadline=None)
@given(file_format=st.sampled_from(FORMATS), text=st.text(max_size=300))
def test_any_text_is_read_or_refused_as_bad_input(file_format: str, text: str) -> None:
    try:
        lines = read_bill(text, file_format)
    except InvalidInput as exc:
        assert exc.message
    else:
        assert all(isinstance(line, BilledLine) for line in lines)


@settings(max_examples=60, deadline=None)
@given(file_format=st.sampled_from(FORMATS), rows=st.lists(st.lists(_CELLS, max_size=8),
                                                             max_size=4))
def test_any_rows_under_the_formats_header_are_read_or_refused(file_format: str,
                                                               rows: list[list[str]]) -> None:
    # FOCUS's required columns (other formats refuse the header), then rows of odd cells.
    header = "BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,x_Model"
    lines = [header, *(",".join(c.replace(",", " ").replace("\n", " ") for c in row)
                       for row in rows)]
    try:
        read = read_bill("\n".join(lines), file_format)
    except InvalidInput as exc:
        assert exc.message
    else:
        assert all(isinstance(line, BilledLine) for line in read)
