"""The daily sync (``[sync] at = "06:00"``, read in ``[sync] timezone``, UTC by default): once
that time of a day has come, each source of ``[sync] sources`` (default: every
``[[bill_sources]]`` entry) is synced for the current and the previous cycle, in the provider's
days (the current one only once it has a billed day).

Every server process looks (the ``bill_sync`` background loop, each minute); a day's sync of a
source and cycle is *claimed* by inserting its run row (unique per provider, account, cycle,
day and trigger), so whichever process inserts it runs it and the others skip it. A server that
was down at ``at`` runs the day's sync when it starts, later that day. A run whose process
stopped midway is not retried that day (it is failed as interrupted later; see
``store/sync_runs.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from meterline.billing.connectors import CONNECTORS
from meterline.billing.runs import Planned, begin, execute_quietly
from meterline.billing.sync import period_for
from meterline.config import BillSourceConfig, Config, SyncConfig
from meterline.domain.bills import Cycle
from meterline.errors import InvalidInput
from meterline.store import sync_runs

#: Seconds between two looks of the server's loop: a day's sync starts within this of ``at``.
CHECK_SECONDS: Final = 60.0
TRIGGER: Final = "schedule"


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


def run_due(engine: Engine, config: Config, now: Callable[[], datetime],
            **options: Any) -> list[int]:
    """Claim and run what is due and not claimed yet; returns the ids of the runs made here
    (each failed one recorded as such). ``options`` go to ``fetch``."""
    at = now()
    day = due_day(config.sync, at)
    if day is None:
        return []
    made = []
    for source in config.sync.selected(config.bill_sources):
        for cycle in cycles(source, at):
            with engine.connect() as conn:
                if sync_runs.claimed(conn, source.provider, source.account, cycle, day,
                                     TRIGGER):
                    continue
            try:
                period = period_for(source, cycle, at)
            except InvalidInput:  # the provider's day turned between the two readings
                continue
            planned = Planned(source, period)
            run_id = begin(engine, planned, TRIGGER, actor=None, now=at, day=day)
            if run_id is None:
                continue  # another process claimed it meanwhile
            made.append(run_id)
            # An unset credential fails here, in the run (its error names the variable).
            execute_quietly(engine, config, run_id, planned, actor=None, now=now, **options)
    return made
