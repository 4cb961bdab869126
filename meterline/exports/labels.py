"""Header and value labels in English and Chinese, and the one table CSV and XLSX both write.

The table has a header row, one row per bill line and a last total row (label ``total`` /
``合计``, the bill's total in the amount column, the bill's status in the status column), so a
spreadsheet shows lines and total together and the amount column of the line rows sums to it.
A line's unit price is in its price's currency, which may not be the bill's: the last two
columns name that currency and the FX rate its amount was converted at, so quantity ÷ unit size
× unit price × FX rate is the amount. They come last so that programs reading the columns by
position, as the file had them before, still read the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from meterline.domain.bills import Bill, line_fx_rate
from meterline.domain.money import format_decimal, quantize_minor
from meterline.errors import InvalidInput

LANGUAGES: Final = ("en", "zh")

HEADERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "en": ("date", "model", "meter", "type", "quantity", "unit", "unit price", "amount",
           "currency", "status", "unit price currency", "fx rate"),
    "zh": ("日期", "模型", "计量项", "类型", "数量", "单位", "单价", "金额", "币种", "状态",
           "单价币种", "汇率"),
})
#: Column positions in every row of the table.
(DATE, MODEL, METER, TYPE, QUANTITY, UNIT, UNIT_PRICE, AMOUNT, CURRENCY, STATUS,
 UNIT_PRICE_CURRENCY, FX_RATE) = range(12)

TOTAL: Final[Mapping[str, str]] = MappingProxyType({"en": "total", "zh": "合计"})
SHEET: Final[Mapping[str, str]] = MappingProxyType({"en": "Bill", "zh": "账单"})

METERS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    "en": MappingProxyType({
        "input_tokens": "input tokens", "cached_input_tokens": "cached input tokens",
        "cache_write_tokens": "cache write tokens",
        "cache_write_1h_tokens": "1-hour cache write tokens", "output_tokens": "output tokens",
        "reasoning_tokens": "reasoning tokens", "characters": "characters", "images": "images",
        "seconds": "seconds", "requests": "requests", "minimum_charge": "minimum charge",
        "web_search_calls": "web searches", "file_search_calls": "file searches",
        "code_interpreter_sessions": "code interpreter sessions",
    }),
    "zh": MappingProxyType({
        "input_tokens": "输入 Token", "cached_input_tokens": "缓存命中输入 Token",
        "cache_write_tokens": "缓存写入 Token", "cache_write_1h_tokens": "1 小时缓存写入 Token",
        "output_tokens": "输出 Token",
        "reasoning_tokens": "推理 Token", "characters": "字符", "images": "图片",
        "seconds": "秒", "requests": "请求", "minimum_charge": "最低消费",
        "web_search_calls": "联网搜索", "file_search_calls": "文件检索",
        "code_interpreter_sessions": "代码解释器会话",
    }),
})
TYPES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    "en": MappingProxyType({"token": "token", "character": "character", "count": "count",
                            "second": "second"}),
    "zh": MappingProxyType({"token": "按 Token", "character": "按字符", "count": "按次",
                            "second": "按秒"}),
})
STATUSES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    "en": MappingProxyType({"charged": "charged", "refunded": "refunded", "open": "open",
                            "issued": "issued", "paid": "paid", "void": "void"}),
    "zh": MappingProxyType({"charged": "已计费", "refunded": "已退款", "open": "未出账",
                            "issued": "已出账", "paid": "已支付", "void": "已作废"}),
})
_UNIT_NAMES_ZH: Final[Mapping[str, str]] = MappingProxyType({
    "token": "Token", "tokens": "Token", "character": "字符", "characters": "字符",
    "image": "张", "images": "张", "second": "秒", "seconds": "秒", "request": "次",
    "requests": "次", "call": "次", "calls": "次", "session": "次", "sessions": "次",
})
_UNIT_SIZES_ZH: Final[Mapping[str, str]] = MappingProxyType({"1K": "千", "10K": "万", "1M": "百万"})

#: A table cell: text, or an exact number (a numeric cell in XLSX).
Cell = str | Decimal


def language(value: object) -> str:
    if value not in LANGUAGES:
        raise InvalidInput(f"lang: {value!r} is not one of {', '.join(LANGUAGES)}", field="lang")
    return str(value)


def unit_label(unit: str, lang: str) -> str:
    """"1M tokens" -> "百万 Token", "1K characters" -> "千字符", "image" -> "张" (zh)."""
    if lang == "en":
        return unit
    size, _, name = unit.partition(" ") if " " in unit else ("", "", unit)
    zh_name = _UNIT_NAMES_ZH.get(name, name)
    prefix = _UNIT_SIZES_ZH.get(size, size)
    if not prefix:
        return zh_name
    joined = size in _UNIT_SIZES_ZH and not zh_name.isascii()  # 千字符, but 百万 Token
    return f"{prefix}{zh_name}" if joined else f"{prefix} {zh_name}"


def money_text(value: Decimal, currency: str) -> str:
    """Rounded amounts with all minor digits ("12.50"); unrounded ones in full ("0.00125")."""
    if value == quantize_minor(value, currency):
        return f"{quantize_minor(value, currency):f}"
    return format_decimal(value)


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    total: tuple[Cell, ...]


def _rate_cell(rate: Decimal | None) -> Cell:
    return "" if rate is None else rate


def bill_table(bill: Bill, lang: str, rates: Mapping[str, Decimal] | None = None) -> Table:
    """Header, one row per line (date = the cycle the usage belongs to), and the total row.
    ``rates``: per price currency, the one FX rate to the bill's currency in force over the
    whole cycle, where there was one (``line_fx_rate``)."""
    lang = language(lang)
    rates = rates or {}
    rows = tuple(
        (
            line.adjustment_of or str(bill.cycle),
            line.model,
            METERS[lang].get(line.meter, line.meter),
            TYPES[lang][line.billing_type],
            line.quantity,
            unit_label(line.unit, lang),
            line.unit_price,
            line.amount,
            bill.currency,
            STATUSES[lang][line.status],
            line.price_currency or bill.currency,
            _rate_cell(line_fx_rate(line, bill.currency,
                                    rates.get(line.price_currency or bill.currency))),
        )
        for line in bill.lines
    )
    total: tuple[Cell, ...] = (TOTAL[lang], "", "", "", "", "", "", bill.total, bill.currency,
                               STATUSES[lang][bill.status.value], "", "")
    return Table(HEADERS[lang], rows, total)
