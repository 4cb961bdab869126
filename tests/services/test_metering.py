"""meterline.services.metering: pricing by the version in force, FX, unpriced records, rerate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from meterline.domain.fx import FxRate
from meterline.domain.prices import PriceVersion
from meterline.domain.usage import Usage
from meterline.errors import UnknownModel, UnknownTenant
from meterline.services.metering import AcceptedEvent, IngestResult, Metering, RefusedEvent
from meterline.store import accounts, ledger, pricing
from meterline.store.engine import make_engine
from meterline.store.migrate import upgrade
from meterline.store.schema import charge_lines, usage_records
from meterline.store.types import money_sum

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        accounts.create_tenant(conn, "shop-cn", currency="CNY", timezone="Asia/Shanghai")
    try:
        yield engine
    finally:
        engine.dispose()


def price(effective_from: str, input_per_1m: str, output_per_1m: str,
          model: str = "acme/chat-1", currency: str = "USD") -> PriceVersion:
    return PriceVersion.parse({
        "model": model, "currency": currency, "effective_from": effective_from, "unit": "1M",
        "prices": {"input_tokens": input_per_1m, "output_tokens": output_per_1m},
    })


def add_prices(engine: Engine, *versions: PriceVersion) -> None:
    with engine.begin() as conn:
        pricing.add_versions(conn, versions, "test")


def add_rate(engine: Engine, base: str, quote: str, rate: str, at: datetime = JAN) -> None:
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse(base, quote, rate, at))


def event(event_id: str, timestamp: str = "2026-02-01T10:00:00Z", model: str = "acme/chat-1",
          **usage: int) -> dict[str, Any]:
    return {"id": event_id, "timestamp": timestamp, "model": model, "user": "alice",
            "usage": usage or {"input_tokens": 1000, "output_tokens": 500}}


def accepted(results: list[IngestResult]) -> list[AcceptedEvent]:
    assert all(isinstance(result, AcceptedEvent) for result in results), results
    return [result for result in results if isinstance(result, AcceptedEvent)]


def records(engine: Engine, tenant: str | None = None) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.event_id: r for r in ledger.list_records(conn, tenant_id=tenant, limit=1000)}


def lines_total(engine: Engine, request_id: str | None = None) -> Decimal | None:
    query = select(money_sum(charge_lines.c.amount))
    if request_id is not None:
        query = query.where(charge_lines.c.request_id == request_id)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


# --- the price version in force --------------------------------------------------------------

def test_each_event_is_priced_by_the_version_in_force_at_its_time(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "1", "2"), price("2026-03-01", "3", "4"))
    metering = Metering(engine, refresh_seconds=0)
    results = accepted(metering.ingest("acme", [
        event("before", "2026-02-28T23:59:59.999999Z"),
        event("at-change", "2026-03-01T00:00:00Z"),
        event("at-change-shanghai", "2026-03-01T08:00:00+08:00"),
        event("just-before-shanghai", "2026-03-01T07:59:59+08:00"),
        event("after", "2026-06-01T12:00:00Z"),
    ]))
    # 1000 in + 500 out: old 1000×1/1M + 500×2/1M = 0.002; new 1000×3/1M + 500×4/1M = 0.005
    assert [(r.id, r.cost, r.currency, r.pricing, r.duplicate) for r in results] == [
        ("before", D("0.002"), "USD", "priced", False),
        ("at-change", D("0.005"), "USD", "priced", False),
        ("at-change-shanghai", D("0.005"), "USD", "priced", False),
        ("just-before-shanghai", D("0.002"), "USD", "priced", False),
        ("after", D("0.005"), "USD", "priced", False),
    ]
    stored = records(engine, "acme")
    assert stored["before"].price_version_id == "acme/chat-1@2026-01-01T00:00:00+00:00"
    assert stored["after"].price_version_id == "acme/chat-1@2026-03-01T00:00:00+00:00"
    assert stored["before"].cost == D("0.002") and stored["after"].cost == D("0.005")
    assert stored["after"].billed_cost == D("0.005") and stored["after"].billed_currency == "USD"
    assert stored["after"].fx_rate is None and stored["after"].fx_missing is False
    assert lines_total(engine) == D("0.002") * 2 + D("0.005") * 3


def test_a_new_price_version_never_rewrites_history(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "1", "2"))
    metering = Metering(engine, refresh_seconds=0)
    metering.ingest("acme", [event("feb", "2026-02-01T00:00:00Z"),
                             event("jun", "2026-06-01T00:00:00Z")])
    add_prices(engine, price("2026-05-01", "10", "20"))
    # a version at an existing start is ignored: the January price stays
    add_prices(engine, price("2026-01-01", "100", "200"))
    results = accepted(metering.ingest("acme", [event("jul", "2026-07-01T00:00:00Z"),
                                                event("feb-2", "2026-02-02T00:00:00Z"),
                                                event("feb", "2026-02-01T00:00:00Z")]))
    assert [(r.id, r.cost, r.duplicate) for r in results] == [
        ("jul", D("0.02"), False), ("feb-2", D("0.002"), False), ("feb", D("0.002"), True)]
    stored = records(engine, "acme")
    assert {k: v.cost for k, v in stored.items()} == {
        "feb": D("0.002"), "jun": D("0.002"),  # recorded before the change: untouched
        "jul": D("0.02"), "feb-2": D("0.002")}
    assert lines_total(engine, stored["jun"].request_id) == D("0.002")


def test_another_process_adding_a_price_is_noticed(engine: Engine) -> None:
    metering = Metering(engine, refresh_seconds=0)
    [first] = accepted(metering.ingest("acme", [event("e1")]))
    assert first.pricing == "unpriced"
    add_prices(engine, price("2026-01-01", "1", "2"))  # e.g. by the CLI, in another process
    [second] = accepted(metering.ingest("acme", [event("e2")]))
    assert (second.pricing, second.cost) == ("priced", D("0.002"))


def test_quote_records_nothing(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    metering = Metering(engine)
    rating = metering.quote("acme/chat-1", Usage.of(input_tokens=1000, output_tokens=500),
                            at=datetime(2026, 2, 1, tzinfo=UTC))
    assert rating.total.number == D("0.00045") and rating.currency == "USD"
    assert [(ln.meter, ln.amount) for ln in rating.lines] == [
        ("input_tokens", D("0.00015")), ("output_tokens", D("0.0003"))]
    with pytest.raises(UnknownModel):
        metering.quote("acme/nope", Usage.of(input_tokens=1))
    assert records(engine) == {}


# --- FX --------------------------------------------------------------------------------------

def test_cny_tenant_is_billed_at_the_fx_rate_in_force(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    add_rate(engine, "USD", "CNY", "7.1", JAN)
    add_rate(engine, "USD", "CNY", "7.3", MAR)
    results = accepted(Metering(engine).ingest("shop-cn", [
        event("feb", "2026-02-15T00:00:00Z"), event("apr", "2026-04-15T00:00:00Z")]))
    assert all(r.pricing == "priced" and r.warning is None for r in results)
    stored = records(engine, "shop-cn")
    feb, apr = stored["feb"], stored["apr"]
    assert (feb.cost, feb.currency) == (D("0.00045"), "USD")
    assert (feb.billed_cost, feb.billed_currency, feb.fx_rate) == (D("0.003195"), "CNY", D("7.1"))
    assert feb.billed_cost == feb.cost * D("7.1")
    assert (apr.billed_cost, apr.fx_rate) == (D("0.003285"), D("7.3"))
    assert feb.fx_missing is False and feb.warning is None
    assert lines_total(engine, feb.request_id) == D("0.00045")  # lines stay in the price currency


def test_only_the_opposite_rate_stored_uses_its_reciprocal(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    add_rate(engine, "CNY", "USD", "0.125", JAN)
    Metering(engine).ingest("shop-cn", [event("e1")])
    stored = records(engine, "shop-cn")["e1"]
    assert (stored.fx_rate, stored.billed_cost, stored.billed_currency) == (
        D("8"), D("0.0036"), "CNY")


def test_cny_priced_model_for_cny_tenant_needs_no_rate(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "2", "8", model="qwen-test/chat", currency="CNY"))
    [result] = accepted(Metering(engine).ingest("shop-cn", [event("e1", model="qwen-test/chat")]))
    assert (result.cost, result.currency) == (D("0.006"), "CNY")
    stored = records(engine, "shop-cn")["e1"]
    assert (stored.billed_cost, stored.billed_currency, stored.fx_rate, stored.fx_missing) == (
        D("0.006"), "CNY", None, False)


def test_without_a_rate_the_cost_is_recorded_unconverted_and_flagged(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    add_rate(engine, "USD", "CNY", "7.1", MAR)  # starts after the event: not in force
    [result] = accepted(Metering(engine).ingest("shop-cn", [event("e1", "2026-02-01T00:00:00Z")]))
    assert (result.cost, result.currency, result.pricing) == (D("0.00045"), "USD", "priced")
    assert result.fx_missing and "no FX rate from USD to CNY" in (result.warning or "")
    assert result.to_json()["fx_missing"] is True and result.to_json()["cost"] == "0.00045"
    stored = records(engine, "shop-cn")["e1"]
    assert (stored.cost, stored.currency) == (D("0.00045"), "USD")
    assert stored.billed_cost is None and stored.billed_currency is None
    assert stored.fx_rate is None
    assert stored.fx_missing is True
    assert "no FX rate from USD to CNY" in stored.warning
    assert lines_total(engine, stored.request_id) == D("0.00045")


# --- unpriced and rerate ---------------------------------------------------------------------

def test_unknown_model_is_recorded_unpriced_then_rerated_once(engine: Engine) -> None:
    metering = Metering(engine)
    [result] = accepted(metering.ingest("acme", [event("e1", model="acme/brand-new")]))
    assert result.pricing == "unpriced"
    assert result.cost is None and result.currency is None
    assert "unknown model 'acme/brand-new'" in (result.warning or "")
    assert result.to_json()["cost"] is None and result.to_json()["status"] == "unpriced"
    stored = records(engine, "acme")["e1"]
    assert (stored.pricing, stored.cost, stored.price_version_id) == ("unpriced", None, None)
    assert stored.status == "success"
    assert lines_total(engine) is None

    assert metering.rerate() == (0, 1)  # still no price
    add_prices(engine, price("2026-01-01", "0.15", "0.6", model="acme/brand-new"))
    assert metering.rerate() == (1, 0)
    assert metering.rerate() == (0, 0)  # never twice

    stored = records(engine, "acme")["e1"]
    assert (stored.pricing, stored.cost, stored.currency) == ("priced", D("0.00045"), "USD")
    assert stored.price_version_id == "acme/brand-new@2026-01-01T00:00:00+00:00"
    assert stored.billed_cost == D("0.00045")
    assert stored.warning is None
    with engine.connect() as conn:
        lines = ledger.lines_of(conn, [stored.request_id])[stored.request_id]
        assert conn.execute(select(func.count()).select_from(charge_lines)).scalar_one() == 2
    assert [(ln["meter"], ln["amount"]) for ln in lines] == [
        ("input_tokens", "0.00015"), ("output_tokens", "0.0003")]
    # a retry of the event after rerating is a duplicate that reports the real cost now
    [again] = accepted(metering.ingest("acme", [event("e1", model="acme/brand-new")]))
    assert (again.duplicate, again.cost, again.pricing) == (True, D("0.00045"), "priced")


def test_rerate_converts_for_a_cny_tenant_and_leaves_what_it_cannot_price(engine: Engine) -> None:
    add_rate(engine, "USD", "CNY", "7.1", JAN)
    metering = Metering(engine)
    metering.ingest("shop-cn", [event("new-model", model="acme/brand-new"),
                                event("still-unknown", model="acme/never-priced")])
    add_prices(engine, price("2026-01-01", "0.15", "0.6", model="acme/brand-new"))
    assert metering.rerate() == (1, 1)
    stored = records(engine, "shop-cn")
    priced = stored["new-model"]
    assert (priced.cost, priced.billed_cost, priced.billed_currency, priced.fx_rate) == (
        D("0.00045"), D("0.003195"), "CNY", D("7.1"))
    assert stored["still-unknown"].pricing == "unpriced"


def test_a_model_whose_price_starts_later_is_unpriced_until_rerated(engine: Engine) -> None:
    add_prices(engine, price("2026-03-01", "1", "2"))
    metering = Metering(engine)
    [result] = accepted(metering.ingest("acme", [event("early", "2026-02-01T00:00:00Z")]))
    assert result.pricing == "unpriced"
    assert "no price for acme/chat-1 in force" in (result.warning or "")
    add_prices(engine, price("2026-01-01", "0.5", "0.5"))  # history filled in backwards
    assert metering.rerate() == (1, 0)
    assert records(engine, "acme")["early"].cost == D("0.00075")


# --- per-event errors, duplicates, tenants ---------------------------------------------------

def test_bad_events_are_reported_and_the_rest_recorded(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    results = Metering(engine).ingest("acme", [
        event("good-1"),
        event("negative", input_tokens=-5),
        {"timestamp": "2026-02-01T00:00:00Z", "model": "acme/chat-1", "usage": {}},
        event("bad-time") | {"timestamp": "yesterday"},
        "not an object",
        event("good-2"),
    ])
    assert [type(r) for r in results] == [AcceptedEvent, *[RefusedEvent] * 4, AcceptedEvent]
    # As POST /v1/usage answers them.
    shown = [result.to_json() for result in results]
    assert (shown[0]["id"], shown[0]["cost"]) == ("good-1", "0.00045")
    assert shown[1]["id"] == "negative"
    assert "usage.input_tokens: must not be negative" in shown[1]["error"]
    assert "cost" not in shown[1]
    assert shown[2]["id"] is None and "id: missing" in shown[2]["error"]
    assert shown[3]["id"] == "bad-time" and "timestamp" in shown[3]["error"]
    assert shown[4] == {"id": None, "error": "events[4]: must be an object", "field": "event"}
    assert (shown[5]["id"], shown[5]["cost"]) == ("good-2", "0.00045")
    assert sorted(records(engine, "acme")) == ["good-1", "good-2"]
    assert lines_total(engine) == D("0.0009")


def test_sending_events_again_never_charges_twice(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    metering = Metering(engine)
    first = accepted(metering.ingest("acme", [event("e1"), event("e2")]))
    second = accepted(Metering(engine).ingest("acme", [event("e2"), event("e1"), event("e3")]))
    assert [r.duplicate for r in first] == [False, False]
    assert [(r.id, r.duplicate) for r in second] == [("e2", True), ("e1", True), ("e3", False)]
    by_id = {r.id: r for r in first}
    for result in second[:2]:
        assert result.request_id == by_id[result.id].request_id
        assert result.cost == by_id[result.id].cost == D("0.00045")
    assert len(records(engine, "acme")) == 3
    assert lines_total(engine) == D("0.00135")


def test_unknown_tenant_records_nothing(engine: Engine) -> None:
    with pytest.raises(UnknownTenant):
        Metering(engine).ingest("nobody", [event("e1")])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(usage_records)).scalar_one() == 0


def test_failed_calls_and_users_are_recorded(engine: Engine) -> None:
    add_prices(engine, price("2026-01-01", "0.15", "0.6"))
    Metering(engine).ingest("acme", [
        event("e1") | {"status": "error", "user": "10023", "metadata": {"purpose": "chat"},
                       "tags": ["beta"]},
    ], key_id="key_abc")
    stored = records(engine, "acme")["e1"]
    assert (stored.status, stored.pricing, stored.user_id, stored.key_id) == (
        "error", "priced", "10023", "key_abc")
    assert stored.metadata == {"purpose": "chat"} and stored.tags == ["beta"]
    assert (stored.input_tokens, stored.output_tokens) == (1000, 500)
    with engine.connect() as conn:
        assert accounts.list_users(conn, "acme") == ["10023"]
