"""The daily sync (meterline.billing.schedule) with an injected clock, on SQLite and PostgreSQL:
due at ``[sync] at`` in its timezone, each selected source's previous and current cycle once a
day, whichever process claims the day first; a failed source recorded without stopping the
others; failed and interrupted attempts retried the same day, then an alert."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine

from meterline.billing import schedule
from meterline.config import BillSourceConfig, Config, Secret, SyncConfig
from meterline.services import alerts
from meterline.store import sync_runs
from meterline.store.engine import make_engine
from tests.billing.conftest import Clock, config_of, serving, source
from tests.billing.data import BY_PROVIDER

SIX = time(6, 0)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_due_from_the_configured_time_of_day_in_its_timezone() -> None:
    utc = SyncConfig(at=SIX)
    assert schedule.due_day(utc, _at("2026-11-03T05:59:59+00:00")) is None
    assert schedule.due_day(utc, _at("2026-11-03T06:00:00+00:00")) == date(2026, 11, 3)
    assert schedule.due_day(utc, _at("2026-11-03T23:59:00+00:00")) == date(2026, 11, 3)
    beijing = SyncConfig(at=SIX, timezone="Asia/Shanghai")
    # 22:30 UTC is 06:30 the next day in Beijing
    assert schedule.due_day(beijing, _at("2026-11-02T21:59:00+00:00")) is None
    assert schedule.due_day(beijing, _at("2026-11-02T22:30:00+00:00")) == date(2026, 11, 3)
    assert schedule.due_day(SyncConfig(), _at("2026-11-03T12:00:00+00:00")) is None


def test_the_previous_and_current_cycle_in_the_providers_days() -> None:
    aliyun = source("aliyun", "http://127.0.0.1:9")  # Beijing days
    openai = source("openai", "http://127.0.0.1:9")  # UTC days
    assert schedule.cycles(aliyun, _at("2026-11-03T02:00:00+00:00")) == ["2026-10", "2026-11"]
    # 1 November in Beijing: November has no billed day yet; still 31 October in UTC
    first = _at("2026-10-31T20:00:00+00:00")
    assert schedule.cycles(aliyun, first) == ["2026-10"]
    assert schedule.cycles(openai, first) == ["2026-09", "2026-10"]
    assert schedule.cycles(openai, _at("2027-01-05T00:00:00+00:00")) == ["2026-12", "2027-01"]


def _unset_credentials() -> BillSourceConfig:
    """A Tencent source whose secret's variable is not set: every sync of it fails."""
    return BillSourceConfig(provider="tencent", account="main", endpoint="http://127.0.0.1:9",
                            access_key_id=Secret("id"),
                            credential_env={"access_key_id": "TC_ID",
                                            "access_key_secret": "TC_SECRET"})


def _runs(engine: Engine) -> list[tuple[str, str, str, date | None, str]]:
    with engine.connect() as conn:
        return sorted((r.provider, r.cycle, r.status, r.day, r.trigger)
                      for r in sync_runs.list_runs(conn))


def test_each_day_once_whichever_process_looks_first(engine: Engine, database_url: str,
                                                     clock: Clock) -> None:
    aliyun, openai = BY_PROVIDER["aliyun"].account(), BY_PROVIDER["openai"].account()
    with serving(BY_PROVIDER["aliyun"], aliyun) as (ali_url, _), \
            serving(BY_PROVIDER["openai"], openai) as (oai_url, _):
        config = config_of(database_url, source("aliyun", ali_url), source("openai", oai_url),
                           at=SIX)
        options: dict[str, Any] = {"clock": clock, "sleep": clock.sleep}
        now = _at("2026-11-03T05:59:00+00:00")
        assert schedule.run_due(engine, config, lambda: now, **options) == []
        now = _at("2026-11-03T06:00:30+00:00")
        made = schedule.run_due(engine, config, lambda: now, **options)
        assert len(made) == 4
        day = date(2026, 11, 3)
        assert _runs(engine) == [("aliyun", "2026-10", "ok", day, "schedule"),
                                 ("aliyun", "2026-11", "ok", day, "schedule"),
                                 ("openai", "2026-10", "ok", day, "schedule"),
                                 ("openai", "2026-11", "ok", day, "schedule")]
        requests = len(aliyun.seen) + len(openai.seen)
        # the same process a minute later, and another process on the same database
        now += timedelta(minutes=1)
        assert schedule.run_due(engine, config, lambda: now, **options) == []
        other = make_engine(database_url)
        try:
            assert schedule.run_due(other, config, lambda: now, **options) == []
        finally:
            other.dispose()
        assert len(aliyun.seen) + len(openai.seen) == requests  # nothing fetched again
        # the next day's sync
        now += timedelta(days=1)
        assert len(schedule.run_due(engine, config, lambda: now, **options)) == 4
    assert len(_runs(engine)) == 8


def test_only_the_selected_sources_and_a_failing_one_does_not_stop_the_others(
        engine: Engine, database_url: str, clock: Clock) -> None:
    case = BY_PROVIDER["volcano"]
    account = case.account()
    account.throttle_first = False
    unset = _unset_credentials()
    skipped = source("openai", "http://127.0.0.1:9")
    with serving(case, account) as (url, _):
        config: Config = config_of(database_url, unset, source("volcano", url), skipped,
                                   at=SIX, sources=("tencent", "volcano:main"))
        made = schedule.run_due(engine, config, lambda: _at("2026-11-03T07:00:00+00:00"),
                                clock=clock, sleep=clock.sleep)
    assert len(made) == 4
    with engine.connect() as conn:
        found = {(r.provider, r.cycle): (r.status, r.error) for r in sync_runs.list_runs(conn)}
    assert set(found) == {("tencent", "2026-10"), ("tencent", "2026-11"),
                          ("volcano", "2026-10"), ("volcano", "2026-11")}
    status, error = found[("tencent", "2026-10")]
    assert status == "failed" and error is not None and "TC_SECRET" in error
    assert found[("volcano", "2026-10")] == ("ok", None)


def _attempts(engine: Engine) -> list[tuple[str, str, int, str]]:
    with engine.connect() as conn:
        return sorted((r.cycle, r.kind, r.attempt, r.status) for r in sync_runs.list_runs(conn))


def test_a_failed_attempt_is_retried_later_that_day_then_alerted(
        engine: Engine, database_url: str, clock: Clock) -> None:
    unset = _unset_credentials()
    config = config_of(database_url, unset, at=SIX)

    def run_at(text: str) -> list[int]:
        return schedule.run_due(engine, config, lambda: _at(text), clock=clock,
                                sleep=clock.sleep)

    assert len(run_at("2026-11-03T07:00:00+00:00")) == 2  # both cycles, attempt 1
    assert run_at("2026-11-03T07:14:00+00:00") == []  # too soon
    assert len(run_at("2026-11-03T07:15:00+00:00")) == 2  # 15 minutes later: attempt 2
    assert run_at("2026-11-03T08:00:00+00:00") == []
    assert len(run_at("2026-11-03T08:15:00+00:00")) == 2  # an hour later: attempt 3
    assert not _alerts(engine)  # attempts remain
    assert len(run_at("2026-11-03T11:15:00+00:00")) == 2  # three hours later: the last
    assert run_at("2026-11-03T23:00:00+00:00") == []
    assert _attempts(engine) == [(cycle, "schedule", n, "failed")
                                 for cycle in ("2026-10", "2026-11") for n in (1, 2, 3, 4)]
    # one alert for the account and day, however many cycles and looks
    [alert] = _alerts(engine)
    assert (alert["kind"], alert["source"], alert["level"], alert["period"]) == (
        "sync_failed", "tencent:main", "critical", "2026-11-03")
    assert "failed 4 times on 2026-11-03" in alert["message"] and "TC_SECRET" in alert["message"]
    # the next day starts again from the first attempt
    assert len(run_at("2026-11-04T06:30:00+00:00")) == 2
    assert len(_alerts(engine)) == 1


def test_a_run_whose_process_died_is_retried_the_same_day(
        engine: Engine, database_url: str, clock: Clock) -> None:
    case = BY_PROVIDER["volcano"]
    account = case.account()
    account.throttle_first = False
    day = date(2026, 11, 3)
    with serving(case, account) as (url, _):
        config = config_of(database_url, source("volcano", url), at=SIX)
        # a process claimed October's run at 06:00, then died: its row stays ``running``
        with engine.begin() as conn:
            sync_runs.start(conn, provider="volcano", account="main", cycle="2026-10",
                            trigger="schedule", now=_at("2026-11-03T06:00:00+00:00"), day=day)

        def run_at(text: str) -> list[int]:
            return schedule.run_due(engine, config, lambda: _at(text), clock=clock,
                                    sleep=clock.sleep)

        assert len(run_at("2026-11-03T06:30:00+00:00")) == 1  # November only: October runs
        assert run_at("2026-11-03T07:01:00+00:00") == []  # failed as stale, retried later
        assert ("2026-10", "schedule", 1, "failed") in _attempts(engine)
        assert len(run_at("2026-11-03T07:16:00+00:00")) == 1
    assert _attempts(engine) == [("2026-10", "schedule", 1, "failed"),
                                 ("2026-10", "schedule", 2, "ok"),
                                 ("2026-11", "schedule", 1, "ok")]
    assert "sync_failed" not in {alert["kind"] for alert in _alerts(engine)}


def _alerts(engine: Engine) -> list[dict[str, Any]]:
    return [stored.to_json() for stored in alerts.list_alerts(engine)]
