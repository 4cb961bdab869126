"""meterline.services.stats: tenants' days and months, rerated and converted records, latency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from meterline.domain.fx import FxRate
from meterline.domain.money import convert_at
from meterline.domain.prices import PriceVersion
from meterline.domain.usage import Meter
from meterline.errors import InvalidInput
from meterline.services import stats
from meterline.services.metering import Metering
from meterline.services.reporting import Group
from meterline.store import accounts, ledger, pricing, rollups
from meterline.store import stats as store_stats
from meterline.store.engine import make_engine
from meterline.store.ledger import NewRecord
from meterline.store.migrate import upgrade
from meterline.store.rollup_writes import SUM_CONTEXT
from meterline.store.schema import usage_daily, usage_records

D = Decimal
# 04:00 on 1 March in Shanghai, still 28 February in UTC
NOW = datetime(2026, 2, 28, 20, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        accounts.create_tenant(conn, "shop-cn", currency="CNY", timezone="Asia/Shanghai")
        pricing.add_versions(conn, [PriceVersion.parse({
            "model": "acme/chat-1", "currency": "USD", "effective_from": "2026-01-01",
            "unit": "1M", "prices": {"input_tokens": "1", "output_tokens": "2"}})], "test")
    try:
        yield engine
    finally:
        engine.dispose()


def event(event_id: str, timestamp: str, model: str = "acme/chat-1",
          **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "timestamp": timestamp, "model": model, "user": "alice",
            "usage": {"input_tokens": 1000, "output_tokens": 500}} | fields


def test_today_and_month_are_the_tenants(engine: Engine) -> None:
    metering = Metering(engine, refresh_seconds=0)
    metering.ingest("shop-cn", [event("march", "2026-02-28T17:00:00Z"),  # 1 March, 01:00
                                event("february", "2026-02-28T15:00:00Z")])  # 28 Feb, 23:00
    metering.ingest("acme", [event("feb", "2026-02-28T17:00:00Z")])
    add_rate(engine, "USD", "CNY", "7")
    metering.refresh(force=True)
    assert metering.convert_missing_fx() == (2, 0)
    shop = stats.summary(engine, "shop-cn", "USD", now=NOW)
    # 1000 × 1/1M + 500 × 2/1M = 0.002 USD, 0.014 CNY
    assert (shop.currency, shop.total, shop.month, shop.today) == (
        "CNY", D("0.028"), D("0.014"), D("0.014"))
    acme = stats.summary(engine, "acme", "USD", now=NOW)
    assert (acme.total, acme.month, acme.today) == (D("0.002"), D("0.002"), D("0.002"))
    # every tenant: each one's own today; the trend ends on the latest date any has reached
    everyone = stats.summary(engine, None, "USD", now=NOW)
    assert (everyone.total, everyone.today, everyone.calls) == (D("0.006"), D("0.004"), 3)
    trend = stats.trend(engine, None, "USD", 2, now=NOW)
    assert [(d["date"], d["cost"], d["calls"]) for d in trend.to_json()["days"]] == [
        ("2026-02-28", "0.004", 2), ("2026-03-01", "0.002", 1)]
    by_day = stats.stats(engine, "shop-cn", "USD", group_by="day", start="2026-02-01", now=NOW)
    assert [(g.key, g.cost) for g in by_day.groups] == [
        ("2026-02-28", D("0.014")), ("2026-03-01", D("0.014"))]


def add_rate(engine: Engine, base: str, quote: str, rate: str) -> None:
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse(base, quote, rate,
                                               datetime(2026, 1, 1, tzinfo=UTC)))


def test_rerated_and_converted_records_reach_the_statistics(engine: Engine) -> None:
    metering = Metering(engine, refresh_seconds=0)
    metering.ingest("shop-cn", [event("later", "2026-02-10T10:00:00Z", model="acme/chat-2"),
                                event("known", "2026-02-10T11:00:00Z")])
    before = stats.summary(engine, "shop-cn", "USD", now=NOW)
    assert (before.total, before.unpriced_calls, before.calls) == (D(0), 1, 2)
    assert before.to_json()["unconverted"] == [{"currency": "USD", "amount": "0.002",
                                                "calls": 1}]
    with engine.begin() as conn:
        pricing.add_versions(conn, [PriceVersion.parse({
            "model": "acme/chat-2", "currency": "CNY", "effective_from": "2026-01-01",
            "unit": "1M", "prices": {"input_tokens": "3", "output_tokens": "4"}})], "test")
    add_rate(engine, "USD", "CNY", "7.25")
    assert metering.rerate() == (1, 0)
    assert metering.convert_missing_fx() == (1, 0)
    after = stats.summary(engine, "shop-cn", "USD", now=NOW)
    # 0.002 USD × 7.25 + (1000 × 3 + 500 × 4) / 1M CNY
    assert (after.total, after.unpriced_calls, after.unconverted) == (D("0.0195"), 0, [])
    by_model = stats.stats(engine, "shop-cn", "USD", group_by="model", start="2026-02-01",
                           now=NOW)
    assert {g.key: g.cost for g in by_model.groups} == {
        "acme/chat-1": D("0.0145"), "acme/chat-2": D("0.005")}
    # in USD, for all tenants: the USD price as it is, the CNY price at the day's rate
    everyone = stats.summary(engine, None, "USD", now=NOW)
    reciprocal = Context(prec=28).divide(D(1), D("7.25"))  # what FxTable uses
    # the day's CNY converted once, to 10 places (money.convert_at)
    assert everyone.total == SUM_CONTEXT.add(D("0.002"), convert_at(D("0.005"), reciprocal))
    with engine.begin() as conn:
        incremental = rollups.all_rows(conn, usage_daily, "shop-cn")
        rollups.rebuild(conn, "shop-cn")
        assert rollups.all_rows(conn, usage_daily, "shop-cn") == incremental


def record(request_id: str, latency: int | None, tags: list[str] | None) -> NewRecord:
    row: dict[str, Any] = {c.name: None for c in usage_records.columns}
    row.update({meter.value: 0 for meter in Meter})
    row.update({
        "request_id": request_id, "tenant_id": "acme", "event_id": request_id,
        "provider": "acme", "model": "acme/chat-1", "source": "gateway", "status": "success",
        "pricing": ledger.PRICED, "occurred_at": NOW - timedelta(hours=1), "recorded_at": NOW,
        "input_tokens": 10, "cached_input_tokens": 0, "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 5, "reasoning_tokens": 0, "characters": 0, "images": 0,
        "seconds": D(0), "requests": 0, "cost": D("0.1"), "currency": "USD",
        "billed_cost": D("0.1"), "billed_currency": "USD", "fx_missing": False,
        "estimated": False, "cost_mismatch": False, "latency_ms": latency, "tags": tags})
    return NewRecord(row, ())


def test_latency_per_group(engine: Engine) -> None:
    latencies = [*range(10, 1000, 10), 90_000, None]  # 99 calls of 10..990 ms, one slow
    with engine.begin() as conn:
        ledger.write_records(conn, [record(f"r{i}", ms, ["x"] if i % 2 else None)
                                    for i, ms in enumerate(latencies)])
    [model] = stats.stats(engine, "acme", "USD", group_by="model", now=NOW).to_json()["groups"]
    assert model["calls"] == 101
    assert model["latency_avg_ms"] == round((sum(range(10, 1000, 10)) + 90_000) / 100)
    # from the histogram: the 50th of 100 is the last of (300, 500]; the 95th is the 20th of
    # the 24 in (750, 1000]
    assert model["latency_p50_ms"] == 500
    assert model["latency_p95_ms"] == 750 + 250 * 20 // 24
    # from the raw records (tags): exact, nearest rank
    tagged = {g["key"]: g for g in stats.stats(engine, "acme", "USD", group_by="tag",
                                               now=NOW).to_json()["groups"]}
    odd = [ms for i, ms in enumerate(latencies) if i % 2 and ms is not None]
    assert tagged["x"]["calls"] == 50 and tagged["x"]["latency_p50_ms"] == sorted(odd)[24]
    assert tagged[None]["calls"] == 51 and tagged[None]["latency_p95_ms"] == 950


def test_percentile_estimates_from_buckets() -> None:
    group = Group("g")
    assert group.to_json()["latency_p50_ms"] is None
    group.buckets[0] = 10  # ten calls of at most 50 ms
    group.latency_total = 300
    found = group.to_json()
    assert (found["latency_avg_ms"], found["latency_p50_ms"], found["latency_p95_ms"]) == (
        30, 25, 47)
    group.buckets[-1] = 90  # ninety beyond the last bound: reported as the last bound
    assert group.to_json()["latency_p95_ms"] == 120_000


def test_only_the_rows_converted_are_read_per_tenant_and_day(engine: Engine) -> None:
    """The overview on a big ledger: amounts already in the view's currency are summed across
    tenants and days in SQL (one row per group and currency pair), and only the rows that are
    converted keep their tenant and day, for the day's rate."""
    with engine.begin() as conn:
        pricing.add_versions(conn, [PriceVersion.parse({
            "model": "acme/chat-2", "currency": "CNY", "effective_from": "2026-01-01",
            "unit": "1M", "prices": {"input_tokens": "3", "output_tokens": "4"}})], "test")
    add_rate(engine, "USD", "CNY", "7")
    metering = Metering(engine, refresh_seconds=0)
    days = (10, 11, 12)
    metering.ingest("acme", [event(f"a{d}", f"2026-02-{d}T10:00:00Z") for d in days])
    metering.ingest("shop-cn", [event(f"c{d}", f"2026-02-{d}T10:00:00Z", model="acme/chat-2")
                                for d in days])
    with engine.connect() as conn:
        rows = store_stats.daily(conn, tenant=None, first=date(2026, 2, 1),
                                 last=date(2026, 2, 28), group="model", per_day=True,
                                 convert_to="USD")
    assert sorted((r.group, r.currency, r.tenant_id or "", str(r.day), r.calls)
                  for r in rows) == [
        ("acme/chat-1", "USD", "", "None", 3),
        *(("acme/chat-2", "CNY", "shop-cn", f"2026-02-{d}", 1) for d in days)]
    by_model = stats.stats(engine, None, "USD", group_by="model", start="2026-02-01",
                           end="2026-02-28", now=NOW)
    reciprocal = Context(prec=28).divide(D(1), D(7))
    each = convert_at(D("0.005"), reciprocal)  # each day's CNY converted once
    assert {g.key: g.cost for g in by_model.groups} == {
        "acme/chat-1": D("0.006"), "acme/chat-2": SUM_CONTEXT.add(SUM_CONTEXT.add(each, each),
                                                                  each)}
    everyone = stats.summary(engine, None, "USD", now=NOW)
    # shop-cn's month is already March (Asia/Shanghai): its February is not this month's
    assert (everyone.total, everyone.month, everyone.calls) == (by_model.total_cost,
                                                                D("0.006"), 6)


def test_the_overview_reads_once_what_trend_and_breakdowns_answer(engine: Engine) -> None:
    """The dashboard's overview takes its trend from the breakdown by day and its users and
    keys from one read: every figure equals the trend's and the breakdowns' own, converted
    rows (a CNY tenant in a USD view, each day at its rate) included."""
    with engine.begin() as conn:
        pricing.add_versions(conn, [PriceVersion.parse({
            "model": "acme/chat-2", "currency": "CNY", "effective_from": "2026-01-01",
            "unit": "1M", "prices": {"input_tokens": "3", "output_tokens": "4"}})], "test")
    add_rate(engine, "USD", "CNY", "7")
    metering = Metering(engine, refresh_seconds=0)
    metering.ingest("acme", [event(f"a{d}", f"2026-02-{d}T10:00:00Z") for d in (10, 11, 20)])
    metering.ingest("shop-cn", [event(f"c{d}", f"2026-02-{d}T10:00:00Z", model="acme/chat-2")
                                for d in (10, 12, 13)])
    groups = ("provider", "model", "user", "key")
    for view in (None, "shop-cn"):
        trend, found = stats.overview(engine, view, "USD", start="2026-02-09",
                                      end="2026-02-21", group_by=groups, now=NOW)
        assert trend == stats.trend(engine, view, "USD", start="2026-02-09", end="2026-02-21",
                                    now=NOW)
        expected = stats.breakdowns(engine, view, "USD", start="2026-02-09", end="2026-02-21",
                                    group_by=groups, now=NOW)
        assert [(b.total_cost, b.calls, b.unpriced_calls, b.unconverted) for b in found] == [
            (b.total_cost, b.calls, b.unpriced_calls, b.unconverted) for b in expected]
        assert [[(g.key, g.cost, g.calls) for g in b.groups] for b in found] == [
            [(g.key, g.cost, g.calls) for g in b.groups] for b in expected]
        assert trend.total == found[0].total_cost > 0
    with pytest.raises(InvalidInput):
        stats.overview(engine, None, "USD", group_by=("colour",))
