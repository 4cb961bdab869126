"""meterline.store.budgets on both databases: counters kept in step with the ledger, holds taken
all-or-nothing, released by their record or by expiry, and alerts written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from meterline.domain.budgets import DEFAULT_THRESHOLDS, Scope
from meterline.domain.fx import FxRate
from meterline.store import accounts, budgets, ledger, pricing
from meterline.store.budgets import Hold
from meterline.store.ledger import NewRecord
from meterline.store.schema import alerts, budget_holds
from tests.store.test_ledger import row

D = Decimal
NOW = datetime.now(UTC)


def setup(engine: Engine, **scope: Any) -> Any:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
        return budgets.save_budget(conn, Scope(**scope), period="total", mode="block",
                                   amount=D("1"), currency="USD",
                                   thresholds=DEFAULT_THRESHOLDS, timezone="UTC")


def write(engine: Engine, *records: dict[str, Any]) -> set[str]:
    with engine.begin() as conn:
        return ledger.write_records(conn, [NewRecord(r) for r in records])


def counter(engine: Engine, budget: Any) -> budgets.Counter:
    with engine.connect() as conn:
        return budgets.counters(conn, [(budget.id, budget.bounds(NOW)[0])])[
            (budget.id, budget.bounds(NOW)[0])]


def hold(budget: Any, amount: str) -> Hold:
    start, end = budget.bounds(NOW)
    return Hold(budget, start, end, D(amount))


def reserve(engine: Engine, request_id: str, *holds: Hold,
            expires: datetime | None = None) -> budgets.Refusal | None:
    with engine.begin() as conn:
        return budgets.reserve(conn, request_id, holds, expires or NOW + timedelta(minutes=5))


def test_a_new_budget_starts_from_what_the_ledger_holds(engine: Engine) -> None:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
    write(engine, row("e1", occurred_at=NOW, cost=D("0.25")),
          row("e2", occurred_at=NOW, cost=D("0.5"), model="acme/other"))
    with engine.begin() as conn:
        budget = budgets.save_budget(conn, Scope(tenant="acme", model="acme/chat-1"),
                                     period="month", mode="block", amount=D(1), currency="USD",
                                     thresholds=DEFAULT_THRESHOLDS, timezone="UTC")
    assert counter(engine, budget) == budgets.Counter(D("0.25"), D(0))


def test_records_count_once_and_release_their_holds(engine: Engine) -> None:
    budget = setup(engine, tenant="acme")
    assert reserve(engine, "req_1", hold(budget, "0.4")) is None
    assert counter(engine, budget) == budgets.Counter(D(0), D("0.4"))
    record = row("e1", request_id="req_1", source="gateway", occurred_at=NOW, cost=D("0.125"))
    assert write(engine, record) == {"e1"}
    assert write(engine, record) == set()  # delivered again: a duplicate, counted once
    assert counter(engine, budget) == budgets.Counter(D("0.125"), D(0))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(budget_holds)).scalar_one() == 0


def test_a_call_that_does_not_fit_changes_nothing(engine: Engine) -> None:
    budget = setup(engine, tenant="acme")
    with engine.begin() as conn:
        other = budgets.save_budget(conn, Scope(provider="acme"), period="day", mode="block",
                                    amount=D("0.5"), currency="USD",
                                    thresholds=DEFAULT_THRESHOLDS, timezone="UTC")
    assert reserve(engine, "req_1", hold(budget, "0.3"), hold(other, "0.3")) is None
    refusal = reserve(engine, "req_2", hold(budget, "0.3"), hold(other, "0.3"))
    assert refusal is not None and refusal.hold.budget.id == other.id
    assert (refusal.spent, refusal.reserved) == (D(0), D("0.3"))
    # The tenant budget had room, but all-or-nothing: it was not held for req_2 either.
    assert counter(engine, budget) == budgets.Counter(D(0), D("0.3"))


def test_alert_budgets_never_refuse(engine: Engine) -> None:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
        budget = budgets.save_budget(conn, Scope(), period="total", mode="alert",
                                     amount=D("0.1"), currency="USD",
                                     thresholds=DEFAULT_THRESHOLDS, timezone="UTC")
    assert reserve(engine, "req_1", hold(budget, "5")) is None


def test_expired_holds_are_released(engine: Engine) -> None:
    budget = setup(engine, tenant="acme")
    reserve(engine, "req_old", hold(budget, "0.4"), expires=NOW - timedelta(seconds=1))
    reserve(engine, "req_new", hold(budget, "0.2"))
    with engine.begin() as conn:
        # At NOW, not the wall clock: req_new's hold lasts until NOW + 5 minutes, and the suite
        # may well run longer than that after this module was imported.
        assert budgets.release_expired(conn, NOW) == 1
    assert counter(engine, budget) == budgets.Counter(D(0), D("0.2"))
    # The late record of the expired call still counts (nothing it held is released twice).
    write(engine, row("e1", request_id="req_old", source="gateway", occurred_at=NOW,
                      cost=D("0.1")))
    assert counter(engine, budget) == budgets.Counter(D("0.1"), D("0.2"))


def test_other_currencies_are_converted_at_the_stored_rate(engine: Engine) -> None:
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse("CNY", "USD", "0.14",
                                               datetime(2026, 1, 1, tzinfo=UTC)))
    budget = setup(engine)
    write(engine, row("e1", occurred_at=NOW, cost=D("10"), currency="CNY", billed_cost=None,
                      billed_currency=None))
    assert counter(engine, budget).spent == D("1.40")


def test_each_threshold_alerts_once(engine: Engine) -> None:
    budget = setup(engine, tenant="acme")
    write(engine, row("e1", occurred_at=NOW, cost=D("0.6")))
    write(engine, row("e2", occurred_at=NOW, cost=D("0.1")))
    write(engine, row("e3", occurred_at=NOW, cost=D("0.5")))
    with engine.connect() as conn:
        found = conn.execute(select(alerts.c.threshold, alerts.c.level, alerts.c.amount)
                             .order_by(alerts.c.threshold)).all()
    assert [(r.threshold, r.level, r.amount) for r in found] == [
        (D("0.5"), "info", D("0.6")), (D("0.8"), "warning", D("1.2")),
        (D("1"), "critical", D("1.2"))]
    assert counter(engine, budget).spent == D("1.2")


def test_a_projected_overrun_alerts_once_per_period(engine: Engine) -> None:
    from meterline.services.alerts import check_projections

    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
        budget = budgets.save_budget(conn, Scope(tenant="acme"), period="month", mode="alert",
                                     amount=D("1"), currency="USD",
                                     thresholds=DEFAULT_THRESHOLDS, timezone="UTC")
    start, _ = budget.bounds(NOW)
    tenth = start + timedelta(days=10)
    for day in range(10):
        write(engine, row(f"e{day}", occurred_at=start + timedelta(days=day, hours=12),
                          cost=D("0.06")))
    # 0.6 in 10 days, 0.06 a day: about 1.8 by the month's end (the forecast's projection)
    assert check_projections(engine, tenth) == 1
    assert check_projections(engine, tenth + timedelta(hours=1)) == 0
    with engine.connect() as conn:
        found = conn.execute(select(alerts.c.kind, alerts.c.level, alerts.c.amount).where(
            alerts.c.kind == "projected_overrun")).all()
    assert [(r.kind, r.level, r.amount) for r in found] == [
        ("projected_overrun", "warning", D("0.6"))]


def test_a_rerated_record_counts_when_it_gets_its_cost(engine: Engine) -> None:
    budget = setup(engine, tenant="acme")
    write(engine, row("e1", occurred_at=NOW, pricing=ledger.UNPRICED, cost=None, currency=None,
                      billed_cost=None, billed_currency=None))
    assert counter(engine, budget).spent == 0
    with engine.begin() as conn:
        assert ledger.price_unpriced(conn, "req_acme_e1", {
            "cost": D("0.3"), "currency": "USD", "billed_cost": D("0.3"),
            "billed_currency": "USD", "price_version_id": "acme/chat-1@x"}, [])
    assert counter(engine, budget).spent == D("0.3")
