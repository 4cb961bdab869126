"""Each provider's account as its fake serves it: October 2026's rows in the provider's own
shape, with amounts carrying more digits than a float holds, the balance, and the lines and
balances meterline must make of them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from starlette.applications import Starlette

from tests.billing import fakes, fakes_keyed
from tests.billing.fakes import Account

D = Decimal
#: Beijing 2026-11-03 10:00: October is billed everywhere.
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
KEY_ID, SECRET = "LTAI-test-key-id", "test-secret-of-the-account"


class Case(NamedTuple):
    provider: str
    app: Callable[[Account], Starlette]
    account: Callable[[], Account]
    #: (model, first day, until, amount, currency), sorted
    lines: list[tuple[str, date, date, Decimal, str]]
    balances: list[tuple[Decimal, str]]


def _unix(day: str) -> int:
    return int(datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp())


def aliyun() -> Account:
    def item(billing_date: str, spec: str, pretax: str, item: str = "input") -> dict[str, Any]:
        return {"BillingDate": billing_date, "ProductCode": "sfm", "ProductName": "百炼",
                "InstanceID": f"key;ws;{spec};{item};api", "InstanceSpec": spec,
                "BillingItem": item, "PretaxAmount": D(pretax), "Currency": "CNY"}
    return Account(KEY_ID, SECRET, rows=[
        item("2026-10-01", "qwen-max", "1234567.890123456789"),
        item("2026-10-01", "qwen-max", "0.000000000000000001", "output"),
        item("2026-10-01", "qwen-plus", "2.5"),
        item("2026-10-31", "qwen-max", "-0.10"),  # a refund
    ], balance={"AvailableAmount": "10,000.25", "AvailableCashAmount": "9000",
                "Currency": "CNY"})


def tencent() -> Account:
    def detail(begin: str, *components: tuple[str, str]) -> dict[str, Any]:
        return {"ProductCodeName": "腾讯混元大模型", "BusinessCodeName": "hunyuan",
                "FeeBeginTime": f"{begin} 00:00:00", "FeeEndTime": f"{begin} 23:59:59",
                "ComponentSet": [{"ItemCodeName": name, "ComponentCodeName": "tokens",
                                  "RealCost": cost, "Cost": cost} for name, cost in components]}
    return Account(KEY_ID, SECRET, rows=[
        detail("2026-10-02", ("hunyuan-turbo", "0.000123456789012345678"),
               ("hunyuan-lite", "0")),
        detail("2026-10-02", ("hunyuan-turbo", "1.5")),
        detail("2026-10-20", ("hunyuan-pro", "99999999.99")),
    ], balance={"Balance": 1234568, "RealBalance": D("1234567.5"), "Uin": 1})


def volcano() -> Account:
    def row(day: str, config: str, payable: str) -> dict[str, Any]:
        return {"BillPeriod": "2026-10", "ExpenseDate": day, "Product": "ark",
                "ProductZh": "火山方舟", "ConfigName": config, "Element": "推理输入",
                "PayableAmount": payable, "Currency": "CNY"}
    return Account(KEY_ID, SECRET, rows=[
        row("2026-10-03", "doubao-pro-32k", "12.3456789012345678901"),
        row("2026-10-03", "doubao-pro-32k", "0.0000000000000000099"),
        row("2026-10-04", "doubao-lite-4k", "7"),
    ], balance={"AccountID": 2100000001, "AvailableBalance": "888.88", "CashBalance": "900"})


def baidu() -> Account:
    def bill(product: str, day: str, start: str, item: str, price: str) -> dict[str, Any]:
        return {"productType": product, "day": day, "serviceType": "QIANFAN",
                "chargeItem": item, "startTime": start, "financePrice": D(price)}
    return Account(KEY_ID, SECRET, rows=[
        bill("postpay", "2026-10-05", "2026-10-04T16:00:00Z", "ernie-4.0-8k",
             "3.1415926535897932384"),
        bill("postpay", "2026-10-05", "2026-10-04T16:00:00Z", "ernie-4.0-8k", "1"),
        bill("postpay", "2026-10-06", "2026-10-05T16:00:00Z", "ernie-speed", "0.5"),
        bill("prepay", "2026-10-07", "2026-10-06T16:00:00Z", "", "100"),
    ], balance={"cashBalance": D("850.0000")})


def deepseek() -> Account:
    return Account("", SECRET, balance={"is_available": True, "balance_infos": [
        {"currency": "CNY", "total_balance": "110.123456789012345678",
         "granted_balance": "10.00", "topped_up_balance": "100.123456789012345678"}]})


def openai() -> Account:
    def bucket(day: str, *results: tuple[str | None, str]) -> dict[str, Any]:
        return {"object": "bucket", "start_time": _unix(day), "end_time": _unix(day) + 86400,
                "results": [{"object": "organization.costs.result",
                             "amount": {"value": D(value), "currency": "usd"},
                             "line_item": item, "project_id": None}
                            for item, value in results]}
    return Account("", SECRET, rows=[
        bucket("2026-10-01", ("gpt-4o-2024-08-06, input", "0.0600000000000000004"),
               ("gpt-4o-2024-08-06, output", "0.5")),
        bucket("2026-10-02", (None, "1.25")),
        bucket("2026-10-30", ("gpt-5, input", "3")),
    ])


def anthropic() -> Account:
    def bucket(day: str, following: str, *results: tuple[str | None, str, str]) -> dict[str, Any]:
        return {"starting_at": f"{day}T00:00:00Z", "ending_at": f"{following}T00:00:00Z",
                "results": [{"amount": cents, "currency": "USD", "model": model,
                             "cost_type": kind, "description": "x", "token_type": None}
                            for model, kind, cents in results]}
    return Account("", SECRET, rows=[
        bucket("2026-10-01", "2026-10-02", ("claude-sonnet-4-5", "tokens", "123.45"),
               (None, "web_search", "1000")),
        bucket("2026-10-09", "2026-10-10", ("claude-sonnet-4-5", "tokens", "0.001")),
        bucket("2026-10-31", "2026-11-01", ("claude-haiku-4-5", "tokens", "7")),
    ])


def _d(day: int) -> date:
    return date(2026, 10, day)


CASES = [
    Case("aliyun", fakes.aliyun_app, aliyun, [
        ("qwen/qwen-max", _d(1), _d(2), D("1234567.890123456789"), "CNY"),
        ("qwen/qwen-max", _d(1), _d(2), D("0.000000000000000001"), "CNY"),
        ("qwen/qwen-max", _d(31), date(2026, 11, 1), D("-0.10"), "CNY"),
        ("qwen/qwen-plus", _d(1), _d(2), D("2.5"), "CNY")], [(D("10000.25"), "CNY")]),
    Case("tencent", fakes.tencent_app, tencent, [
        ("tencent/hunyuan-lite", _d(2), _d(3), D("0"), "CNY"),
        ("tencent/hunyuan-pro", _d(20), _d(21), D("99999999.99"), "CNY"),
        ("tencent/hunyuan-turbo", _d(2), _d(3), D("0.000123456789012345678"), "CNY"),
        ("tencent/hunyuan-turbo", _d(2), _d(3), D("1.5"), "CNY")], [(D("12345.675"), "CNY")]),
    Case("volcano", fakes.volcano_app, volcano, [
        ("volcano/doubao-lite-4k", _d(4), _d(5), D("7"), "CNY"),
        ("volcano/doubao-pro-32k", _d(3), _d(4), D("0.0000000000000000099"), "CNY"),
        ("volcano/doubao-pro-32k", _d(3), _d(4), D("12.3456789012345678901"), "CNY")],
        [(D("888.88"), "CNY")]),
    Case("baidu", fakes.baidu_app, baidu, [
        ("baidu/QIANFAN", _d(7), _d(8), D("100"), "CNY"),
        ("baidu/ernie-4.0-8k", _d(5), _d(6), D("1"), "CNY"),
        ("baidu/ernie-4.0-8k", _d(5), _d(6), D("3.1415926535897932384"), "CNY"),
        ("baidu/ernie-speed", _d(6), _d(7), D("0.5"), "CNY")], [(D("850.0000"), "CNY")]),
    Case("deepseek", fakes_keyed.deepseek_app, deepseek, [],
         [(D("110.123456789012345678"), "CNY")]),
    Case("openai", fakes_keyed.openai_app, openai, [
        ("openai/gpt-4o-2024-08-06", _d(1), _d(2), D("0.0600000000000000004"), "USD"),
        ("openai/gpt-4o-2024-08-06", _d(1), _d(2), D("0.5"), "USD"),
        ("openai/gpt-5", _d(30), _d(31), D("3"), "USD"),
        ("openai/unattributed", _d(2), _d(3), D("1.25"), "USD")], []),
    Case("anthropic", fakes_keyed.anthropic_app, anthropic, [
        ("anthropic/claude-haiku-4-5", _d(31), date(2026, 11, 1), D("0.07"), "USD"),
        ("anthropic/claude-sonnet-4-5", _d(1), _d(2), D("1.2345"), "USD"),
        ("anthropic/claude-sonnet-4-5", _d(9), _d(10), D("0.00001"), "USD"),
        ("anthropic/web_search", _d(1), _d(2), D("10.00"), "USD")], []),
]
BY_PROVIDER = {case.provider: case for case in CASES}
