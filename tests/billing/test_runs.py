"""Sync runs (meterline.billing.runs) against the fakes, on SQLite and PostgreSQL: each run
recorded from start to end with its progress, lines stored with the provider's rows, balances
kept, a failure recorded without the credential, alerts raised once."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from meterline.billing import runs
from meterline.billing.errors import ProviderAuthFailed
from meterline.config import Config
from meterline.errors import Conflict, InvalidInput
from meterline.services import reconciliation
from meterline.store import sync_runs
from meterline.store.audit import Actor
from meterline.store.schema import alerts, audit_log, provider_bill_lines
from tests.billing.conftest import Clock, config_of, serving, source
from tests.billing.data import BY_PROVIDER, NOW

CLI = Actor("cli", "req-1")
D = Decimal


def _run(engine: Engine, config: Config, clock: Clock, provider: str = "aliyun",
         at: datetime = NOW, **extra: Any) -> dict[str, Any]:
    return runs.run_now(engine, config, provider, "2026-10", trigger="cli", actor=CLI,
                        now=lambda: at, clock=clock, sleep=clock.sleep, **extra)


def test_a_run_is_recorded_its_lines_keep_their_rows_and_twice_changes_nothing(
        engine: Engine, database_url: str, clock: Clock) -> None:
    with serving(BY_PROVIDER["aliyun"]) as (url, _):
        config = config_of(database_url, source("aliyun", url, low_balance=D(20000)))
        found = _run(engine, config, clock)
        with engine.connect() as conn:
            stored = sorted((r.model, r.period_start, r.amount, r.raw)
                            for r in conn.execute(select(provider_bill_lines)))
        first = reconciliation.report(engine, "2026-10", provider="qwen")
        again = _run(engine, config, clock)
    assert (found["rows"], found["lines"], found["run"]) == (4, 3, again["run"] - 1)
    with engine.connect() as conn:
        assert sorted((r.model, r.period_start, r.amount, r.raw)
                      for r in conn.execute(select(provider_bill_lines))) == stored
        run = sync_runs.get(conn, found["run"])
        actions = [r.action for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert reconciliation.report(engine, "2026-10", provider="qwen") == first
    assert (run.status, run.trigger, run.lines, run.cycle, run.error) == (
        "ok", "cli", 3, "2026-10", None)
    assert run.progress["phase"] == "done" and run.progress["requests"] == found["requests"]
    assert run.summary is not None and run.summary["totals"] == found["totals"]
    # the two rows of qwen-max on 1 October are one line that keeps both
    max_first = next(raw for model, day, _, raw in stored if model == "qwen/qwen-max"
                     and day.day == 1)
    assert [row["PretaxAmount"] for row in max_first] == ["1234567.890123456789",
                                                          "0.000000000000000001"]
    assert actions == ["bill_sync.start", "provider_bill.sync"] * 2
    # the balance is below low_balance: alerted once, the same day's second sync adds none;
    # every row billed with nothing metered differs: alerted once for the cycle
    assert len(found["alerts"]) == 2 and again["alerts"] == []
    with engine.connect() as conn:
        kinds = sorted(conn.execute(select(alerts.c.kind, alerts.c.source, alerts.c.currency,
                                           alerts.c.amount, alerts.c.limit_amount)).all())
    assert kinds == [("bill_difference", "aliyun:main", "CNY",
                      D("1234570.290123456789000001"), D(0)),
                     ("low_balance", "aliyun:main", "CNY", D("10000.25"), D(20000))]


def test_a_failed_run_says_why_without_the_credential(engine: Engine, database_url: str,
                                                      clock: Clock) -> None:
    wrong = "wrong-secret-0123456789"
    with serving(BY_PROVIDER["openai"]) as (url, _):
        config = config_of(database_url, source("openai", url, secret=wrong))
        with pytest.raises(ProviderAuthFailed):
            _run(engine, config, clock, "openai")
    with engine.connect() as conn:
        run = sync_runs.list_runs(conn)[0]
    assert (run.status, run.lines, run.trigger) == ("failed", 0, "cli")
    assert run.error is not None and "refused the credentials" in run.error
    assert wrong not in run.error and "TEST_API_KEY" in run.error
    assert run.finished_at == NOW


def test_bad_input_is_refused_before_any_run_and_a_running_sync_is_not_doubled(
        engine: Engine, database_url: str, clock: Clock) -> None:
    config = config_of(database_url, source("aliyun", "http://127.0.0.1:9"))
    for cycle, field in (("2026-13", "cycle"), ("2026-12", "cycle")):
        with pytest.raises(InvalidInput) as raised:
            runs.plan(config, "aliyun", None, cycle, NOW)
        assert raised.value.field == field
    with pytest.raises(InvalidInput, match="account"):
        runs.plan(config, "aliyun", "other", "2026-10", NOW)
    planned = runs.plan(config, "aliyun", None, "2026-10", NOW)
    first = runs.begin(engine, planned, "api", actor=CLI, now=NOW)
    with pytest.raises(Conflict, match=f"run {first}"):
        runs.begin(engine, planned, "api", actor=CLI, now=NOW + timedelta(minutes=1))
    # an hour later the first run is taken for dead (its process stopped) and a new one starts
    later = runs.begin(engine, planned, "api", actor=CLI,
                       now=NOW + sync_runs.STALE_AFTER + timedelta(minutes=1))
    assert later is not None and later > (first or 0)
    with engine.connect() as conn:
        assert [r.status for r in sync_runs.list_runs(conn)] == ["running", "failed"]


def test_balances_of_every_account_and_the_deepseek_balance_only_source(
        engine: Engine, database_url: str, clock: Clock) -> None:
    with serving(BY_PROVIDER["deepseek"]) as (ds, _), serving(BY_PROVIDER["volcano"]) as (vc, _):
        config = config_of(database_url, source("deepseek", ds, low_balance=D(200)),
                           source("volcano", vc))
        deepseek = _run(engine, config, clock, "deepseek")
        _run(engine, config, clock, "volcano", at=NOW + timedelta(hours=1))
    assert deepseek["lines"] == 0
    # DeepSeek has no bill: only its balance is alerted, never a difference
    assert len(deepseek["alerts"]) == 1
    assert [(b.provider, b.amount, b.currency, b.at) for b in runs.balances(engine)] == [
        ("deepseek", Decimal("110.123456789012345678"), "CNY", NOW),
        ("volcano", Decimal("888.88"), "CNY", NOW + timedelta(hours=1))]


def test_progress_is_written_as_the_run_goes(engine: Engine, database_url: str,
                                             clock: Clock) -> None:
    seen: list[dict[str, Any]] = []
    with serving(BY_PROVIDER["aliyun"]) as (url, _):
        config = config_of(database_url, source("aliyun", url))
        planned = runs.plan(config, "aliyun", None, "2026-10", NOW)
        run_id = runs.begin(engine, planned, "cli", actor=CLI, now=NOW)
        assert run_id is not None

        def watch(seconds: float) -> None:
            with engine.connect() as conn:
                seen.append(sync_runs.get(conn, run_id).progress)
            clock.sleep(seconds)

        runs.execute(engine, config, run_id, planned, actor=CLI, now=lambda: NOW,
                     clock=clock, sleep=watch)
    phases = [p["phase"] for p in seen]
    assert phases[0] == "lines" and "balances" in phases
    counts = [p["requests"] for p in seen if p["phase"] == "lines"]
    assert counts == sorted(counts) and counts[-1] >= 30  # a request a day of October
    assert runs.one(engine, run_id).phase == "done"
