"""meterline.domain.reconcile.explain: the likely cause named beside each row that differs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from meterline.domain.reconcile import (
    BilledPeriod,
    DayKey,
    Evidence,
    MeteredDay,
    Row,
    explain,
    reconcile,
)

D = Decimal
NOV = date(2026, 11, 1)


def day(n: int) -> date:
    return NOV + timedelta(days=n - 1)


def rows_of(text: str) -> list[Row]:
    """Rows from lines ``provider model day metered billed`` (``-``: that side has nothing)."""
    metered, billed = [], []
    for line in text.strip().splitlines():
        provider, model, n, m, b = line.split()
        if m != "-":
            metered.append(MeteredDay(provider, model, day(int(n)), D(m)))
        if b != "-":
            billed.append(BilledPeriod(provider, model, day(int(n)), day(int(n) + 1), D(b)))
    return reconcile(metered, billed)


def causes(rows: list[Row]) -> dict[tuple[str, date], list[str]]:
    return {(row.model, row.start): [cause.code for cause in row.causes] for row in rows}


def test_rows_that_match_name_no_cause() -> None:
    rows = rows_of("""
        qwen qwen-plus 1 10 10
        qwen qwen-plus 2 10 10.05
    """)
    evidence = Evidence(unpriced={DayKey("qwen", "qwen-plus", day(1)): 3})
    assert causes(explain(rows, evidence)) == {("qwen-plus", day(1)): [],
                                               ("qwen-plus", day(2)): []}


def test_unpriced_estimated_and_reported_calls_are_counted_over_the_row_s_days() -> None:
    rows = rows_of("qwen qwen-plus 3 8 10")
    evidence = Evidence(unpriced={DayKey("qwen", "qwen-plus", day(3)): 2},
                        estimated={DayKey("qwen", "qwen-plus", day(3)): 1},
                        reported={DayKey("qwen", "qwen-plus", day(3)): 5,
                                  DayKey("qwen", "qwen-plus", day(4)): 7})
    [row] = explain(rows, evidence)
    assert [c.code for c in row.causes] == ["unpriced", "estimated", "reported"]
    assert row.causes[0].message.startswith("2 calls of these days had no price")
    assert row.causes[1].message.startswith("1 call of these days was priced on estimated")
    assert row.causes[2].message.startswith("5 calls")  # day 4 is another row's


def test_a_price_change_inside_the_period_is_named_with_its_version() -> None:
    monthly = reconcile([MeteredDay("deepseek", "deepseek-chat", day(n), D("1")) for n in (1, 20)],
                        [BilledPeriod("deepseek", "deepseek-chat", NOV, date(2026, 12, 1), D("3"))])
    evidence = Evidence(price_changes={("deepseek", "deepseek-chat"): [
        (day(10), "deepseek/deepseek-chat@2026-11-10"), (date(2026, 12, 5), "later")]})
    [row] = explain(monthly, evidence)
    assert [(c.code, c.message) for c in row.causes] == [(
        "price_change", "the price of deepseek-chat changed on 2026-11-10 (version "
        "deepseek/deepseek-chat@2026-11-10): calls on either side of it are priced differently")]


def test_neighbouring_days_that_differ_the_other_way_are_a_day_boundary() -> None:
    rows = rows_of("""
        aliyun qwen-max 5 10 12
        aliyun qwen-max 6 10 8
        aliyun qwen-max 9 10 13
    """)
    found = {row.start: row for row in explain(rows, Evidence(tenant_zones=frozenset({"UTC"})))}
    assert [c.code for c in found[day(5)].causes] == ["day_boundary"]
    assert found[day(5)].causes[0].message == (
        "aliyun cuts its bill in days of Asia/Shanghai, the ledger's in the tenants' (UTC); "
        "2026-11-06 differs the other way (together 0): calls near midnight fall on different "
        "days")
    assert [c.code for c in found[day(6)].causes] == ["day_boundary"]
    # Day 9 has no neighbour: with nothing else seen, calls that bypassed meterline.
    assert [c.code for c in found[day(9)].causes] == ["not_metered"]


def test_a_model_named_differently_on_the_bill() -> None:
    rows = rows_of("""
        volcano doubao-seed-1-6-250615 2 4 -
        volcano doubao-seed-1.6 2 - 4
        volcano doubao-pro 9 - 1
        volcano deepseek-v3 9 1 -
    """)
    found = {(row.model, row.start): row for row in explain(rows, Evidence())}
    billed = found[("doubao-seed-1.6", day(2))]
    assert [(c.code, c.message) for c in billed.causes] == [(
        "model_name", "the bill names doubao-seed-1.6 where meterline metered "
        "doubao-seed-1-6-250615 on these days: the same calls under another name? (a model "
        "alias maps one to the other)")]
    metered = found[("doubao-seed-1-6-250615", day(2))]
    assert [c.code for c in metered.causes] == ["model_name"]
    # Billed alone beside a model named nothing like it: calls meterline never saw.
    assert [c.code for c in found[("doubao-pro", day(9))].causes] == ["not_metered"]
    assert [c.code for c in found[("deepseek-v3", day(9))].causes] == []


def test_under_with_nothing_seen_names_nothing() -> None:
    [row] = explain(rows_of("openai gpt-5 1 10 5"), Evidence())
    assert row.status == "under" and row.causes == ()


def test_causes_are_in_the_json_of_a_row() -> None:
    [row] = explain(rows_of("openai gpt-5 1 5 10"), Evidence())
    assert row.to_json()["causes"] == [{"code": "not_metered", "message": row.causes[0].message}]
