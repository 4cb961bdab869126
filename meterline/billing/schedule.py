"""The daily sync (``[sync] at = "06:00"``, read in ``[sync] timezone``, UTC by default): once
that time of a day has come, each source of ``[sync] sources`` (default: every
``[[bill_sources]]`` entry) is synced for the current and the previous cycle, in the provider's
days (the current one only once it has a billed day).

Every server process looks (the ``bill_sync`` background loop, each minute); a day's sync of a
source and cycle is *claimed* by inserting its run row (unique per provider, account, cycle,
day and trigger), so whichever process inserts it runs it and the others skip it. A server that
was down at ``at`` runs the day's sync when it starts, later that day.

A failed attempt is tried again the same day after ``RETRY_AFTER`` (15 minutes, then an hour,
then three): up to ``MAX_ATTEMPTS`` attempts, each claimed like the first. A run whose process
stopped midway is failed as interrupted once it is stale (``store/sync_runs.py``), then
retried the same way. When the day's last attempt has failed, a ``sync_failed`` alert of the
account goes out through the alert channels (once per account and day).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from meterline.billing.connectors import CONNECTORS
from meterline.billing.runs import Planned, begin, execute_quietly
from meterline.billing.sync import filed_as, period_for
from meterline.config import BillSourceConfig, Config, SyncConfig
from meterline.domain.bills import Cycle
from meterline.errors import InvalidInput
from meterline.store import alerts as alert_store
from meterline.store import sync_runs
from meterline.store.sync_runs import Run

#: Seconds between two looks of the server's loop: a day's sync starts within this of ``at``.
CHECK_SECONDS: Final = 60.0
#: How long after a failed attempt the next one is made (the n-th entry after attempt n).
RETRY_AFTER: Final = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3))
MAX_ATTEMPTS: Final = len(RETRY_AFTER) + 1
SYNC_FAILED: Final = "sync_failed"


def due_day(sync: SyncConfig, now: datetime) -> date | None:
    """The day (in ``[sync] timezone``) whose sync is due at ``now``; None before ``at``, or
    when no daily sync is configured."""
    if sync.at is None:
        return None
    local = now.astimezone(ZoneInfo(sync.timezone))
    return local.date() if local.time() >= sync.at else None


def cycles(source: BillSourceConfig, now: datetime) -> list[str]:
    """The previous and the current cycle in the provider's days; the current one only once
    it has a billed day (not on its first)."""
    today = now.astimezone(CONNECTORS[source.provider].timezone).date()
    current = Cycle(today.year, today.month)
    previous_day = today.replace(day=1) - timedelta(days=1)
    found = [str(Cycle(previous_day.year, previous_day.month))]
    if today.day > 1:
        found.append(str(current))
    return found


def next_attempt(last: Run | None, now: datetime) -> int | None:
    """The attempt of the day's scheduled sync to make at ``now``, given the day's latest
    (None: nothing to do — one is running, one succeeded, none is left, or it is too soon)."""
    if last is None:
        return 1
    if last.status != "failed" or last.attempt >= MAX_ATTEMPTS:
        return None
    ended = last.finished_at or last.started_at
    return last.attempt + 1 if now - ended >= RETRY_AFTER[last.attempt - 1] else None


def run_due(engine: Engine, config: Config, now: Callable[[], datetime],
            **options: Any) -> list[int]:
    """Claim and run what is due and not claimed yet, retrying failed attempts; returns the
    ids of the runs made here (each failed one recorded as such). ``options`` go to
    ``fetch``."""
    at = now()
    day = due_day(config.sync, at)
    if day is None:
        return []
    made = []
    for source in config.sync.selected(config.bill_sources):
        for cycle in cycles(source, at):
            with engine.begin() as conn:
                sync_runs.expire_stale(conn, at)
                last = sync_runs.last_scheduled(conn, source.provider, source.account, cycle,
                                                day)
            attempt = next_attempt(last, at)
            if attempt is None:
                _alert_if_exhausted(engine, source, last, at)
                continue
            try:
                period = period_for(source, cycle, at)
            except InvalidInput:  # the provider's day turned between the two readings
                continue
            planned = Planned(source, period)
            run_id = begin(engine, planned, sync_runs.attempt_trigger(attempt), actor=None,
                           now=at, day=day)
            if run_id is None:
                continue  # another process claimed it meanwhile
            made.append(run_id)
            # An unset credential fails here, in the run (its error names the variable).
            execute_quietly(engine, config, run_id, planned, actor=None, now=now, **options)
            with engine.connect() as conn:
                _alert_if_exhausted(engine, source, sync_runs.get(conn, run_id), now())
    return made


def _alert_if_exhausted(engine: Engine, source: BillSourceConfig, last: Run | None,
                        now: datetime) -> None:
    """The account's ``sync_failed`` alert once the day's last attempt has failed (raised by
    whichever process sees it first; the alerts table keeps it once per account and day)."""
    if last is None or last.status != "failed" or last.attempt < MAX_ATTEMPTS:
        return
    assert last.day is not None  # a scheduled run's
    scope = f"{source.provider} account {source.account!r} ({filed_as(source)})"
    message = (f"The scheduled bill sync of {scope} for {last.cycle} failed {MAX_ATTEMPTS} "
               f"times on {last.day}; the last error: {last.error}. It runs again tomorrow; "
               f"`meterline sync --provider {source.provider}` tries now")
    row = alert_store.account_alert(
        f"{source.provider}:{source.account}", scope, SYNC_FAILED, level="critical",
        threshold=Decimal(0), percentage=Decimal(0), amount=Decimal(last.attempt),
        limit=Decimal(MAX_ATTEMPTS), currency="", period=last.day.isoformat(),
        period_start=datetime.combine(last.day, time(), UTC), message=message, now=now)
    with engine.begin() as conn:
        alert_store.add(conn, row)
