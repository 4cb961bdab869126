"""meterline.billing.formats: each provider's console bill export read into billed lines, the
row kept with each, through ``read_bill`` as ``meterline sync --file`` reads it.

The fixtures follow the column layouts the providers document:
- aliyun.csv, aliyun_zh.csv: https://help.aliyun.com/document_detail/89133.html (详单文件格式),
  in the English and the Chinese header the export is written with.
- tencent.csv: https://www.tencentcloud.com/document/product/555/37506 (Fields in Bills).
- volcano.csv: https://www.volcengine.com/docs/6269/1127842 (ListBillDetail's fields, the
  columns of the console's bill details export).
- baidu.csv: https://cloud.baidu.com/doc/Finance/s/vmu0sxmzr (账单字段及其说明).
- deepseek.csv, openai.csv, anthropic.csv: no layout of these consoles' exports is published;
  the columns are those of their APIs' own fields (OpenAI's costs object:
  https://platform.openai.com/docs/api-reference/usage/costs_object, flattened) and the usage
  export's English headers.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.errors import InvalidInput
from meterline.providers.bill_files import FORMATS, read_bill

FIXTURES = Path(__file__).parent / "fixtures"
D = Decimal


def _d(month: int, day: int) -> date:
    return date(2026, month, day)


EXPECTED = {
    "aliyun": [("qwen/qwen-max", _d(10, 1), _d(10, 2), D("1.000000000000000001"), "CNY"),
               ("qwen/qwen-max", _d(10, 2), _d(10, 3), D("2500.5"), "CNY"),
               ("qwen/ecs", _d(10, 1), _d(11, 1), D("88"), "CNY")],
    "aliyun_zh": [("qwen/qwen-plus", _d(10, 3), _d(10, 4), D("0.25"), "CNY")],
    "tencent": [("tencent/hunyuan-turbo input", _d(10, 2), _d(10, 3),
                 D("0.018000000000000001"), "CNY"),
                ("tencent/hunyuan-pro", _d(10, 3), _d(10, 4), D("4.5"), "CNY")],
    "volcano": [("volcano/doubao-pro-32k", _d(10, 3), _d(10, 4), D("0.80000000000000000001"),
                 "CNY"),
                ("volcano/推理输出", _d(10, 4), _d(10, 5), D("2"), "CNY")],
    "baidu": [("baidu/ernie-4.0-8k", _d(10, 5), _d(10, 6), D("3.14159265358979323846"), "CNY"),
              ("baidu/bcc.g5.c2m8", _d(10, 6), _d(10, 7), D("90"), "CNY")],
    "deepseek": [("deepseek/deepseek-chat", _d(10, 1), _d(10, 2), D("0.0035000000000000001"),
                  "CNY"),
                 ("deepseek/deepseek-reasoner", _d(10, 2), _d(10, 3), D("0.01"), "CNY")],
    "openai": [("openai/gpt-4o-2024-08-06", _d(10, 1), _d(10, 2), D("0.0600000000000000004"),
                "USD"),
               ("openai/gpt-4o-2024-08-06", _d(10, 2), _d(10, 3), D("1.5"), "USD")],
    "anthropic": [("anthropic/claude-sonnet-4-5", _d(10, 1), _d(10, 2),
                   D("1.234500000000000001"), "USD"),
                  ("anthropic/web_search", _d(10, 1), _d(10, 2), D("0.01"), "USD")],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_each_export_is_read_exactly_with_its_rows_kept(fixture: str) -> None:
    file_format = fixture.removesuffix("_zh")
    text = (FIXTURES / f"{fixture}.csv").read_text(encoding="utf-8")
    lines = read_bill(text, file_format)
    assert [(line.period.model, line.period.start, line.period.end, line.period.amount,
             line.currency) for line in lines] == EXPECTED[fixture]
    header = text.splitlines()[0].split(",")
    assert all(line.raw and set(line.raw) == set(header) for line in lines)


def test_provider_names_the_provider_and_every_format_is_offered() -> None:
    text = (FIXTURES / "aliyun_zh.csv").read_text(encoding="utf-8")
    [line] = read_bill(text, "aliyun", provider="Alibaba")
    assert line.period.model == "alibaba/qwen-plus"
    assert set(FORMATS) == {"focus", *(name.removesuffix("_zh") for name in EXPECTED)}


@pytest.mark.parametrize(("file_format", "replace", "needle"), [
    ("aliyun", ("1.000000000000000001", "lots"), "PretaxAmount"),
    ("tencent", ("2026-10-02 00:00:00", "yesterday"), "Usage Start Time"),
    ("volcano", ("CNY", "XYZ"), "Currency"),
    ("openai", ("1.5", "1.5e400x"), "amount_value"),
])
def test_a_bad_row_is_named_with_its_line_and_column(file_format: str,
                                                     replace: tuple[str, str],
                                                     needle: str) -> None:
    text = (FIXTURES / f"{file_format}.csv").read_text(encoding="utf-8")
    with pytest.raises(InvalidInput) as refused:
        read_bill(text.replace(*replace, 1), file_format)
    assert needle in refused.value.message and "file line" in refused.value.message


def test_a_file_without_the_layouts_columns_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no column Usage Start Time"):
        read_bill("a,b\n1,2\n", "tencent")
    with pytest.raises(InvalidInput, match="one of focus, aliyun"):
        read_bill("", "pdf")
