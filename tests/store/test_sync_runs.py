"""Sync runs, balances, bill lines' raw rows and account alerts in the database (migration
0013), on SQLite and PostgreSQL: a day's scheduled run is claimed once, a run left running by a
dead process is failed, balances read back per account, an account's alert is stored once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from meterline.domain.reconcile import BilledPeriod
from meterline.errors import NotFound
from meterline.store import alerts as alert_store
from meterline.store import provider_bills, sync_runs
from meterline.store.schema import alerts, provider_bill_lines

NOW = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
D = Decimal


def _start(engine: Engine, day: date | None = None, trigger: str = "schedule",
           now: datetime = NOW) -> int | None:
    with engine.begin() as conn:
        return sync_runs.start(conn, provider="aliyun", account="main", cycle="2026-10",
                               trigger=trigger, now=now, day=day)


def test_a_days_scheduled_run_is_claimed_once_and_manual_runs_never_clash(
        engine: Engine) -> None:
    day = date(2026, 11, 3)
    first = _start(engine, day)
    assert first is not None
    assert _start(engine, day) is None  # a second process finds the day's run taken
    assert _start(engine, day, trigger="cli") is not None  # another trigger is another claim
    assert _start(engine, day + timedelta(days=1)) is not None  # the next day is free
    manual = [_start(engine, trigger="api"), _start(engine, trigger="api")]
    assert None not in manual and len(set(manual)) == 2
    with engine.connect() as conn:
        assert sync_runs.claimed(conn, "aliyun", "main", "2026-10", day, "schedule")
        assert not sync_runs.claimed(conn, "aliyun", "main", "2026-09", day, "schedule")
        listed = sync_runs.list_runs(conn)
        assert [run.id for run in listed] == sorted((run.id for run in listed), reverse=True)
        assert len(listed) == 5 and listed[-1].id == first
        assert [r.id for r in sync_runs.list_runs(conn, limit=2, before=listed[1].id)] == [
            r.id for r in listed[2:4]]


def test_a_run_is_advanced_and_finished_and_read_back(engine: Engine) -> None:
    run_id = _start(engine, trigger="cli")
    assert run_id is not None
    with engine.begin() as conn:
        assert sync_runs.running(conn, "aliyun", "main") is not None
        sync_runs.set_progress(conn, run_id, {"phase": "lines", "requests": 7})
        assert sync_runs.get(conn, run_id).progress == {"phase": "lines", "requests": 7}
        sync_runs.finish(conn, run_id, ok=True, now=NOW + timedelta(seconds=5), lines=3,
                         summary={"totals": {"CNY": "1.5"}}, progress={"phase": "done",
                                                                        "requests": 9})
        run = sync_runs.get(conn, run_id)
        assert sync_runs.running(conn, "aliyun", "main") is None
    assert (run.status, run.lines, run.error, run.trigger) == ("ok", 3, None, "cli")
    assert run.finished_at == NOW + timedelta(seconds=5) and run.started_at == NOW
    assert run.to_json()["summary"] == {"totals": {"CNY": "1.5"}}
    with engine.connect() as conn, pytest.raises(NotFound, match="no sync run 999"):
        sync_runs.get(conn, 999)


def test_a_run_left_running_by_a_dead_process_is_failed_once_stale(engine: Engine) -> None:
    old = _start(engine, trigger="api", now=NOW - sync_runs.STALE_AFTER - timedelta(seconds=1))
    recent = _start(engine, trigger="api", now=NOW - timedelta(minutes=5))
    assert old is not None and recent is not None
    with engine.begin() as conn:
        assert sync_runs.expire_stale(conn, NOW) == 1
        assert sync_runs.get(conn, old).status == "failed"
        assert "interrupted" in (sync_runs.get(conn, old).error or "")
        assert sync_runs.get(conn, recent).status == "running"


def test_lines_keep_their_rows_and_balances_read_back_per_account(engine: Engine) -> None:
    day = date(2026, 10, 1)
    period = BilledPeriod("qwen", "qwen/qwen-max", day, day + timedelta(days=1), D("1.5"))
    rows = [{"BillingDate": "2026-10-01", "PretaxAmount": D("1.000000000000000000001")},
            {"BillingDate": "2026-10-01", "PretaxAmount": D("0.5"), "When": day}]
    with engine.begin() as conn:
        assert provider_bills.replace(conn, [(period, "CNY", rows[0]), (period, "CNY", rows[1]),
                                             (period._replace(model="qwen/x"), "CNY")],
                                      "api-aliyun") == 2
        stored = {r.model: r.raw for r in conn.execute(select(provider_bill_lines))}
        for at, amount in ((NOW - timedelta(days=1), "5"), (NOW, "4.25")):
            provider_bills.add_balances(conn, "deepseek", "main",
                                        [(D(amount), "CNY"), (D("1"), "USD")], at, run_id=3)
        provider_bills.add_balances(conn, "aliyun", "main", [(D("-2"), "CNY")], NOW)
        latest = provider_bills.latest_balances(conn)
    assert stored == {"qwen/qwen-max": [
        {"BillingDate": "2026-10-01", "PretaxAmount": "1.000000000000000000001"},
        {"BillingDate": "2026-10-01", "PretaxAmount": "0.5", "When": "2026-10-01"}],
        "qwen/x": None}
    assert [b.to_json() for b in latest] == [
        {"provider": "aliyun", "account": "main", "at": NOW.isoformat(), "amount": "-2",
         "currency": "CNY", "run": None},
        {"provider": "deepseek", "account": "main", "at": NOW.isoformat(), "amount": "4.25",
         "currency": "CNY", "run": 3},
        {"provider": "deepseek", "account": "main", "at": NOW.isoformat(), "amount": "1",
         "currency": "USD", "run": 3}]


def test_an_accounts_alert_is_stored_once_beside_budget_alerts(engine: Engine) -> None:
    def row() -> dict[str, object]:
        return alert_store.account_alert(
            "aliyun:main", "aliyun account 'main' (qwen)", alert_store.LOW_BALANCE,
            level="warning", threshold=D("100"), percentage=D("50"), amount=D("50"),
            limit=D("100"), currency="CNY", period="2026-11-03",
            period_start=datetime(2026, 11, 3, tzinfo=UTC), message="low", now=NOW)
    with engine.begin() as conn:
        assert alert_store.add(conn, row()) is True
        assert alert_store.add(conn, row()) is False  # the same day: once
        other = row() | {"source": "aliyun:second"}
        assert alert_store.add(conn, other) is True
        found = conn.execute(select(alerts.c.source, alerts.c.budget_id, alerts.c.kind)).all()
    assert sorted(found) == [("aliyun:main", None, "low_balance"),
                             ("aliyun:second", None, "low_balance")]
