"""meterline.services.insights and .hints: forecasts from the ledger, optimisation hints, and
both over HTTP. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, select, update

from meterline.domain.budgets import Scope
from meterline.domain.forecast import backtest
from meterline.domain.fx import FxRate
from meterline.domain.prices import PriceVersion
from meterline.errors import InvalidInput, UnknownTenant
from meterline.services import demo
from meterline.services.bootstrap import prepare_database
from meterline.services.hints import Hint, hints
from meterline.services.insights import daily_costs, forecast, series_by_day
from meterline.services.metering import AcceptedEvent, Metering
from meterline.store import accounts, pricing
from meterline.store import budgets as budget_store
from meterline.store.engine import make_engine
from meterline.store.migrate import upgrade
from meterline.store.schema import api_keys, usage_records
from tests.conftest import ADMIN

D = Decimal
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
#: Per 1M tokens: a big model and its smaller tier, a cheaper model with a short context, one
#: with cheaper input but dearer output, an embedding model, and one without a cached price.
LAB = {
    "lab/big": ("2", "0.2", "8", 100_000), "lab/big-mini": ("0.4", "0.04", "1.6", 100_000),
    "lab/small-ctx": ("0.1", None, "0.4", 1_000), "lab/pricey-out": ("1", None, "20", 100_000),
    "lab/embed": ("0.01", None, None, None), "lab/nocache": ("3", None, "9", 100_000),
    # A family whose context windows the catalog does not know.
    "lab/wide": ("5", None, "20", None), "lab/wide-flash": ("1", None, "4", None),
}


def lab_version(model: str, currency: str = "USD") -> PriceVersion:
    inp, cached, out, window = LAB.get(model, ("1", None, "2", 100_000))
    prices = {"input_tokens": inp} | ({"cached_input_tokens": cached} if cached else {}) | (
        {"output_tokens": out} if out else {})
    return PriceVersion.parse({"model": model, "currency": currency, "unit": "1M",
                               "effective_from": "2025-01-01", "prices": prices,
                               "context_window": window})


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        pricing.add_versions(conn, [lab_version(m) for m in LAB]
                             + [lab_version("labcn/chat", "CNY")], "test")
        for name, currency, zone in (("acme", "USD", "UTC"), ("quiet", "USD", "UTC"),
                                     ("shop-cn", "CNY", "Asia/Shanghai")):
            accounts.create_tenant(conn, name, currency, zone)
    try:
        yield engine
    finally:
        engine.dispose()


def calls(prefix: str, count: int, model: str, *, prompt: int, cached: int = 0,
          output: int = 100, user: str | None = None, at: datetime = NOW - timedelta(days=1)
          ) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "timestamp": (at - timedelta(minutes=i)).isoformat(),
             "model": model, "user": user,
             "usage": {"input_tokens": prompt, "cached_input_tokens": cached,
                       "output_tokens": output}} for i in range(count)]


def ingest(engine: Engine, tenant: str, events: list[dict[str, Any]],
           key_id: str | None = None) -> list[AcceptedEvent]:
    results = Metering(engine).ingest(tenant, events, key_id=key_id)
    assert all(isinstance(r, AcceptedEvent) for r in results), results
    return [r for r in results if isinstance(r, AcceptedEvent)]


def by_kind(found: list[Hint], kind: str) -> list[Hint]:
    return [h for h in found if h.kind == kind]


# -- caching -----------------------------------------------------------------------------------

def test_caching_fires_on_long_prompts_rarely_cached(engine):
    ingest(engine, "acme", calls("a", 20, "lab/big", prompt=3000))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "caching")
    # Half of 60,000 full-price input tokens at 2 - 0.2 per 1M: 0.054 USD.
    assert (hint.saving_estimate, hint.currency) == (D("0.054"), "USD")
    assert hint.evidence["model"] == "lab/big" and hint.severity in ("info", "warning")
    assert (hint.evidence["average_input_tokens"], hint.evidence["cache_share"]) == (
        3000, "0")
    for needle in ("lab/big", "20 calls", "3,000 input tokens", "0.0%", "0.054 USD"):
        assert needle in hint.message, (needle, hint.message)


@pytest.mark.parametrize("events", [
    calls("short", 20, "lab/big", prompt=500),                  # prompts are short
    calls("cached", 20, "lab/big", prompt=3000, cached=1500),   # half read from the cache
    calls("nocache", 20, "lab/nocache", prompt=3000),           # no cheaper cached price
    calls("few", 5, "lab/big", prompt=3000),                    # too few calls to tell
], ids=["short", "cached", "no-cache-price", "few-calls"])
def test_caching_stays_silent_where_it_would_not_help(engine, events):
    ingest(engine, "quiet", events)
    assert by_kind(hints(engine, "quiet", now=NOW), "caching") == []


# -- cheaper model -------------------------------------------------------------------------------

def test_cheaper_model_suggests_the_family_tier(engine):
    ingest(engine, "acme", calls("a", 20, "lab/big", prompt=3000))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "cheaper_model")
    evidence = hint.evidence
    # 60,000 input + 2,000 output tokens: 0.136 USD on lab/big, 0.0272 on lab/big-mini.
    assert (evidence["suggested"], evidence["current_cost"], evidence["suggested_cost"]) == (
        "lab/big-mini", "0.136", "0.0272")
    assert (hint.saving_estimate, hint.currency) == (D("0.1088"), "USD")
    assert hint.to_json()["saving_estimate"] == "0.1088"
    # lab/small-ctx is cheaper still, but 1,000 tokens of context cannot hold these prompts.
    assert evidence["alternatives"] == [] and evidence["max_input_tokens"] == 3000
    assert "lab/big-mini" in hint.message and "3,000 tokens" in hint.message


def test_cheaper_model_needs_a_context_window_that_fits(engine):
    ingest(engine, "quiet", calls("long", 20, "lab/big-mini", prompt=3000))
    assert by_kind(hints(engine, "quiet", now=NOW), "cheaper_model") == []
    ingest(engine, "acme", calls("short", 20, "lab/big-mini", prompt=500))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "cheaper_model")
    assert hint.evidence["suggested"] == "lab/small-ctx"


def test_cheaper_model_trusts_a_family_tier_of_unknown_context_window(engine):
    # lab/big (2/8) is cheaper too, but lab/wide's own smaller tier comes first.
    ingest(engine, "acme", calls("w", 20, "lab/wide", prompt=3000))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "cheaper_model")
    assert hint.evidence["suggested"] == "lab/wide-flash"
    assert hint.evidence["suggested_context_window"] is None
    assert "lab/big" in hint.evidence["alternatives"]
    assert "smaller tier of the same family" in hint.message


def test_cheaper_model_needs_both_prices_lower(engine):
    # lab/nocache (3/9) -> lab/big (2/8) qualifies; lab/pricey-out (1/20) does not.
    ingest(engine, "acme", calls("n", 20, "lab/nocache", prompt=3000))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "cheaper_model")
    assert hint.evidence["suggested"] == "lab/big"
    assert "lab/pricey-out" not in hint.evidence["alternatives"]
    # An embedding model is never offered a chat model (nor the other way round).
    ingest(engine, "quiet", [{"id": f"e-{i}", "timestamp": NOW.isoformat(),
                              "model": "lab/embed", "usage": {"input_tokens": 5000}}
                             for i in range(20)])
    assert by_kind(hints(engine, "quiet", now=NOW), "cheaper_model") == []


# -- unused keys -----------------------------------------------------------------------------------

def test_unused_keys(engine):
    made = {}
    with engine.begin() as conn:
        for name, age in (("idle", 60), ("busy", 60), ("stale", 90), ("new", 10),
                          ("revoked", 60)):
            _, key = accounts.create_key(conn, "acme", name=name)
            made[name] = key.id
            conn.execute(update(api_keys).where(api_keys.c.id == key.id)
                         .values(created_at=NOW - timedelta(days=age)))
        accounts.revoke_key(conn, made["revoked"])
    ingest(engine, "acme", calls("busy", 1, "lab/big", prompt=10, at=NOW - timedelta(days=5)),
           key_id=made["busy"])
    ingest(engine, "acme", calls("stale", 1, "lab/big", prompt=10, at=NOW - timedelta(days=45)),
           key_id=made["stale"])
    found = by_kind(hints(engine, "acme", now=NOW), "unused_key")
    assert [h.evidence["key_id"] for h in found] == [made["stale"], made["idle"]]
    stale, idle = found
    assert stale.evidence["last_used"].startswith("2026-02-03")
    assert idle.evidence["last_used"] is None and "never used" in idle.message
    assert made["idle"] in idle.message and "(idle)" in idle.message


# -- concentration ---------------------------------------------------------------------------------

def test_concentration_fires_above_half_of_spend(engine):
    ingest(engine, "acme", calls("al", 7, "lab/big", prompt=1000, user="alice")
           + calls("bo", 3, "lab/big", prompt=1000, user="bob"))
    [hint] = by_kind(hints(engine, "acme", now=NOW), "concentration")
    assert hint.evidence["user"] == "alice" and hint.evidence["share"] == "0.7"
    assert "alice" in hint.message and "70.0%" in hint.message


@pytest.mark.parametrize("users", [("alice", "bob"), ("alice",)], ids=["even", "single-user"])
def test_concentration_stays_silent(engine, users):
    events = [e for u in users for e in calls(u, 5, "lab/big", prompt=1000, user=u)]
    ingest(engine, "quiet", events)
    assert by_kind(hints(engine, "quiet", now=NOW), "concentration") == []


def test_hints_refuse_bad_windows_and_unknown_tenants(engine):
    for days in (0, 367, "x", True):
        with pytest.raises(InvalidInput, match="days must be a whole number from 1 to 366"):
            hints(engine, "acme", now=NOW, days=days)
    with pytest.raises(UnknownTenant, match="nope"):
        hints(engine, "nope", now=NOW)
    assert hints(engine, "quiet", now=NOW) == []


# -- daily costs and forecasts --------------------------------------------------------------------

@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Asia/Shanghai"])
def test_daily_costs_follow_the_local_day_across_dst(engine, zone):
    # Calls every 97 minutes around the US switch to summer time (8 March 2026).
    start = datetime(2026, 3, 6, tzinfo=UTC)
    events = calls("t", 80, "lab/big", prompt=1000, at=start)
    events = [e | {"timestamp": (start + timedelta(minutes=97 * i)).isoformat()}
              for i, e in enumerate(events)]
    ingest(engine, "acme", events)
    window = (start - timedelta(days=1), start + timedelta(days=7))
    with engine.connect() as conn:
        found = daily_costs(conn, Scope(tenant="acme"), "USD", ZoneInfo(zone), *window,
                            pricing.load_fx(conn))
        expected: dict[date, Decimal] = defaultdict(Decimal)
        for row in conn.execute(select(usage_records.c.occurred_at, usage_records.c.cost)):
            expected[row.occurred_at.astimezone(ZoneInfo(zone)).date()] += row.cost
    assert found.days == expected and len(expected) >= 5


def test_forecast_counts_what_it_can_convert_and_lists_the_rest(engine):
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse("CNY", "USD", "0.14", NOW - timedelta(days=10)))
    ingest(engine, "acme", calls("u", 2, "lab/big", prompt=1_000_000, output=0))  # 4 USD
    ingest(engine, "shop-cn", calls("old", 3, "labcn/chat", prompt=1_000_000, output=0,
                                    at=NOW - timedelta(days=15))  # 3 CNY, before any rate
           + calls("new", 2, "labcn/chat", prompt=1_000_000, output=0))  # 2 CNY = 0.28 USD
    ingest(engine, "acme", [{"id": "x", "timestamp": NOW.isoformat(), "model": "lab/unknown",
                             "usage": {"input_tokens": 5}}])
    everyone = forecast(engine, now=NOW, reporting_currency="USD").to_json()
    assert (everyone["currency"], everyone["spent"]) == ("USD", "4.28")
    [skipped] = everyone["unconverted"]
    assert (skipped["currency"], skipped["cost"], skipped["records"]) == ("CNY", "3", 3)
    assert len(skipped["request_ids"]) == 3 and everyone["unpriced_records"] == 1
    cn = forecast(engine, "shop-cn", now=NOW).to_json()
    assert (cn["currency"], cn["timezone"], cn["spent"], cn["unconverted"]) == (
        "CNY", "Asia/Shanghai", "5", [])
    with pytest.raises(UnknownTenant):
        forecast(engine, "nope", now=NOW)


def test_forecast_and_monthly_budgets_on_a_steady_spend(engine):
    # 0.2 USD every day at 10:00 from 1 February: 20 days of March so far, today included.
    start = datetime(2026, 2, 1, 10, tzinfo=UTC)
    ingest(engine, "acme", [{"id": f"d{i}", "timestamp": (start + timedelta(days=i)).isoformat(),
                             "model": "lab/big", "usage": {"input_tokens": 100_000}}
                            for i in range(48)])
    with engine.begin() as conn:
        for amount, period in (("6", "month"), ("7", "month"), ("1", "day")):
            budget_store.save_budget(conn, Scope(tenant="acme", model=None if amount != "7"
                                                 else "lab/big"), period=period, mode="alert",
                                     amount=D(amount), currency="USD", thresholds=[D(1)],
                                     timezone="UTC", now=NOW)
    made = forecast(engine, "acme", now=NOW).to_json()
    # Half of today is left and 11 days follow: 4 + 0.2 × 11.5.
    assert (made["spent"], made["projected"], made["daily_level"]) == ("4", "6.3", "0.2")
    assert (made["month"], made["days_elapsed"], made["days_in_month"]) == ("2026-03", 20, 31)
    assert made["method"] == "recent-pace+weekday" and made["weekday_factors"] == ["1"] * 7
    assert made["naive_projected"] == "6.358974358974"  # 4 × 31 / 19.5, to 12 places
    assert made["history_days"] == 28 and made["unconverted"] == []
    budgets = {(b["amount"], b["period"]): b for b in made["budgets"]}
    tenant_month, model_month, day = budgets["6", "month"], budgets["7", "month"], budgets[
        "1", "day"]
    assert (tenant_month["spent"], tenant_month["projected"]) == ("4", "6.3")
    assert tenant_month["projected_overrun"] is True
    assert (model_month["projected"], model_month["projected_overrun"]) == ("6.3", False)
    assert model_month["scope"] == "tenant acme · model lab/big · month"
    # A day budget keeps the linear projection: 0.2 by noon makes 0.4.
    assert (day["spent"], day["projected"], day["method"]) == ("0.2", "0.4", "linear")
    assert day["projected_overrun"] is False
    # As of an earlier moment the forecast sees nothing that came after it.
    earlier = forecast(engine, "acme", now=datetime(2026, 3, 5, 9, tzinfo=UTC)).to_json()
    assert earlier["spent"] == "0.8" and earlier["month"] == "2026-03"


#: The demo's clock is pinned so that the backtests below are reproducible: the demo draws the
#: same calls for every run, but dates them back from "now".
DEMO_NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
DEMO_DAYS = 190


def _pin_demo_clock(monkeypatch: pytest.MonkeyPatch, pinned: datetime) -> None:
    class PinnedClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return pinned.astimezone(tz) if tz is not None else pinned.replace(tzinfo=None)

    monkeypatch.setattr(demo, "datetime", PinnedClock)


def _demo_backtest(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                   pinned: datetime) -> tuple[Any, dict[date, Decimal]]:
    """Seed the demo's history as of ``pinned`` and backtest its complete days."""
    prepare_database(engine)
    _pin_demo_clock(monkeypatch, pinned)
    demo.seed(engine, Metering(engine), days=DEMO_DAYS)
    first = (pinned - timedelta(days=DEMO_DAYS - 1)).date()  # the first whole day
    series = series_by_day(engine, "demo",
                           datetime(first.year, first.month, first.day, tzinfo=UTC),
                           datetime(pinned.year, pinned.month, pinned.day, tzinfo=UTC))
    return backtest(series), series


def test_backtest_on_the_demo_history(database_url, monkeypatch):
    """190 days of the demo's generator (five complete months). The numbers are in
    docs/forecast.md: on this history the method is far better in the first week of a month
    and a little worse than the naive projection overall (3.20% against 3.10%)."""
    engine = make_engine(database_url)
    try:
        result, series = _demo_backtest(engine, monkeypatch, DEMO_NOW)
        made = forecast(engine, "demo", now=DEMO_NOW).to_json()
        with engine.connect() as conn:
            by_hand: dict[date, Decimal] = defaultdict(Decimal)
            for row in conn.execute(select(usage_records.c.occurred_at,
                                           usage_records.c.billed_cost)):
                if row.occurred_at < datetime(2026, 11, 30, tzinfo=UTC):
                    by_hand[row.occurred_at.date()] += row.billed_cost
    finally:
        engine.dispose()
    assert {d: v for d, v in series.items() if d >= min(series)} == {
        d: v for d, v in by_hand.items() if d >= min(series)}
    assert result.months == ("2026-06", "2026-07", "2026-08", "2026-09", "2026-10")
    assert result.forecasts == 153
    assert result.method["overall"] < D("3.5")
    assert result.method["days 1-7"] < result.naive["days 1-7"] - D(1)
    assert result.method["overall"] < result.naive["overall"] + D("0.25")
    assert D(made["projected"]) >= D(made["spent"]) > 0
    assert made["method"] == "recent-pace+weekday"


def test_backtest_on_demo_histories_of_four_run_dates(tmp_path, monkeypatch):
    """The same generator dated back from four run dates, 11 days apart (SQLite only: this is
    about the method; the test above runs the ledger side on both databases). Averaged over
    them the method beats the naive projection overall, and it wins on three of the four."""
    ours, naive = [], []
    for step in range(4):
        engine = make_engine(f"sqlite:///{tmp_path / f'demo{step}.db'}")
        try:
            result, _ = _demo_backtest(engine, monkeypatch,
                                       DEMO_NOW - timedelta(days=11 * step))
        finally:
            engine.dispose()
        ours.append(result.method["overall"])
        naive.append(result.naive["overall"])
    assert all(value < D("4.5") for value in ours), ours
    assert sum(ours) < sum(naive) - D(2), (ours, naive)
    assert sum(o < n for o, n in zip(ours, naive, strict=True)) >= 3, (ours, naive)


# -- over HTTP -------------------------------------------------------------------------------------

def test_forecast_over_http_after_usage_ingestion(client: httpx.Client, tenant_key: str):
    added = client.post("/api/prices", headers=ADMIN, json={
        "model": "lab/flat", "currency": "USD", "effective_from": "2020-01-01", "unit": "1M",
        "prices": {"input_tokens": "1", "output_tokens": "2"}})
    assert added.status_code == 201, added.text
    now = datetime.now(UTC)
    today = now.date()
    # 0.5 USD at noon of each of the 40 days before today.
    days = [today - timedelta(days=k) for k in range(1, 41)]
    events = [{"id": f"past-{d}", "timestamp": f"{d}T12:00:00Z", "model": "lab/flat",
               "usage": {"input_tokens": 300_000, "output_tokens": 100_000}} for d in days]
    sent = client.post("/v1/usage", json={"events": events},
                       headers={"Authorization": f"Bearer {tenant_key}"})
    assert sent.status_code == 200, sent.text
    assert {r["cost"] for r in sent.json()["results"]} == {"0.5"}
    # A tenant budget in USD covers CNY-priced models too, so it needs their FX rate.
    fx = client.post("/api/fx", headers=ADMIN, json={"base": "CNY", "quote": "USD",
                                                     "rate": "0.14"})
    assert fx.status_code == 201, fx.text
    for amount in ("1", "1000"):
        made = client.post("/api/budgets", headers=ADMIN, json={
            "tenant": "acme", "amount": amount, "period": "month", "mode": "alert",
            **({"model": "lab/flat"} if amount == "1000" else {})})
        assert made.status_code == 201, made.text
    answer = client.get("/api/forecast", params={"tenant": "acme"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    this_month = [d for d in days if (d.year, d.month) == (today.year, today.month)]
    spent = D("0.5") * len(this_month)
    assert (found["currency"], found["month"]) == ("USD", f"{today:%Y-%m}")
    assert D(found["spent"]) == spent and found["days_elapsed"] == today.day
    # The level is 0.5 a day: the rest of today (part of a day) and the days after it.
    left = found["days_in_month"] - today.day
    assert spent + D("0.5") * left <= D(found["projected"]) <= spent + D("0.5") * (left + 1)
    assert found["method"] == "recent-pace+weekday"
    flags = {b["amount"]: b["projected_overrun"] for b in found["budgets"]}
    assert flags == {"1": True, "1000": False}
    everyone = client.get("/api/forecast", headers=ADMIN).json()
    assert everyone["tenant"] is None and everyone["spent"] == found["spent"]


def test_insights_over_http_refuse_bad_input(client: httpx.Client, tenant_key: str):
    assert client.get("/api/hints", params={"tenant": "acme"}).status_code == 401
    assert client.get("/api/forecast").status_code == 401
    found = client.get("/api/hints", params={"tenant": "acme"}, headers=ADMIN)
    assert found.status_code == 200 and found.json() == {"tenant": "acme", "days": 30,
                                                         "hints": []}
    for params, status, needle in (
            ({"tenant": "nope"}, 404, "unknown tenant 'nope'"),
            ({"tenant": "acme", "days": "0"}, 400, "days must be a whole number from 1 to 366"),
            ({"tenant": "acme", "days": "400"}, 400, "days must be"),
            ({"tenant": "acme", "days": "many"}, 400, "days"),
            ({}, 400, "tenant")):
        answer = client.get("/api/hints", params=params, headers=ADMIN)
        assert answer.status_code == status, (params, answer.text)
        assert needle in answer.json()["error"]["message"], answer.text
    unknown = client.get("/api/forecast", params={"tenant": "nope"}, headers=ADMIN)
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
