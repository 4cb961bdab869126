"""Bill sync runs (table ``sync_runs``): started, advanced, finished, listed.

A run is a row from the moment it starts, so its progress can be read while it runs (``GET
/api/sync/{id}``) and a run whose process died is still seen. A scheduled run is *claimed*: its
row is unique per provider, account, cycle, day and trigger, and inserting it is how one
process among several takes that day's sync; manual runs have no day, so never clash. A
failed scheduled run is retried the same day as a new run whose trigger names its attempt
(``schedule``, ``schedule-2``, ...; shown as trigger ``schedule`` and ``attempt`` 2), so each
attempt is claimed once too. A run left ``running`` by a process that stopped is failed once it
is older than ``STALE_AFTER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from meterline.errors import NotFound
from meterline.store.schema import sync_runs
from meterline.store.upsert import insert_ignore

STATUSES: Final = ("running", "ok", "failed")
TRIGGERS: Final = ("cli", "api", "schedule")
SCHEDULE: Final = "schedule"
#: Longer than any sync takes (a month of daily pages at a few requests a second).
STALE_AFTER: Final = timedelta(hours=1)
INTERRUPTED: Final = "interrupted: the process running the sync stopped before it finished"


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    provider: str
    account: str
    cycle: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    lines: int = 0
    error: str | None = None
    day: date | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    @property
    def attempt(self) -> int:
        """Which attempt of its day's scheduled sync the run is (1 for any other run)."""
        _, dash, number = self.trigger.partition("-")
        return int(number) if dash and number.isdigit() else 1

    @property
    def phase(self) -> str:
        """What the run is doing (``progress``'s phase: ``starting``, ``lines``, … ``done``)."""
        return str(self.progress.get("phase") or "")

    @property
    def requests(self) -> int:
        """Requests sent to the provider so far."""
        return int(self.progress.get("requests") or 0)

    @property
    def kind(self) -> str:
        """The trigger without the attempt: ``cli``, ``api`` or ``schedule``."""
        return self.trigger.partition("-")[0]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "provider": self.provider, "account": self.account,
                "cycle": self.cycle, "trigger": self.kind, "attempt": self.attempt,
                "status": self.status,
                "day": self.day.isoformat() if self.day else None,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "lines": self.lines, "error": self.error, "progress": self.progress,
                "summary": self.summary}


def _run(row: Any) -> Run:
    return Run(id=row.id, provider=row.provider, account=row.account, cycle=row.cycle,
               trigger=row.trigger, status=row.status, started_at=row.started_at,
               finished_at=row.finished_at, lines=row.lines, error=row.error, day=row.day,
               progress=row.progress or {}, summary=row.summary)


def start(conn: Connection, *, provider: str, account: str, cycle: str, trigger: str,
          now: datetime, day: date | None = None) -> int | None:
    """A new ``running`` run's id; None when ``day``'s run of this trigger is already claimed."""
    row = {"provider": provider, "account": account, "cycle": cycle, "day": day,
           "trigger": trigger, "status": "running", "started_at": now, "lines": 0,
           "progress": {"phase": "starting", "requests": 0}}
    if day is None:
        return int(conn.execute(insert(sync_runs).returning(sync_runs.c.id), row).scalar_one())
    done = conn.execute(insert_ignore(conn, sync_runs, ["provider", "account", "cycle", "day",
                                                        "trigger"]).returning(sync_runs.c.id),
                        row).first()
    return None if done is None else int(done[0])


def claimed(conn: Connection, provider: str, account: str, cycle: str, day: date,
            trigger: str) -> bool:
    c = sync_runs.c
    return conn.execute(select(c.id).where(
        c.provider == provider, c.account == account, c.cycle == cycle, c.day == day,
        c.trigger == trigger)).first() is not None


def attempt_trigger(attempt: int) -> str:
    """The trigger of a day's ``attempt``-th scheduled run (its claim)."""
    return SCHEDULE if attempt == 1 else f"{SCHEDULE}-{attempt}"


def last_scheduled(conn: Connection, provider: str, account: str, cycle: str,
                   day: date) -> Run | None:
    """The latest attempt of ``day``'s scheduled sync of the account's cycle, if one was
    made."""
    c = sync_runs.c
    rows = conn.execute(select(sync_runs).where(
        c.provider == provider, c.account == account, c.cycle == cycle, c.day == day,
        c.trigger.like(f"{SCHEDULE}%")))
    runs = [_run(row) for row in rows]
    return max(runs, key=lambda run: run.attempt) if runs else None


def expire_stale(conn: Connection, now: datetime) -> int:
    """Fail the runs left ``running`` longer than any sync takes (their process stopped)."""
    c = sync_runs.c
    done = conn.execute(update(sync_runs).where(c.status == "running",
                                                c.started_at < now - STALE_AFTER)
                        .values(status="failed", finished_at=now, error=INTERRUPTED))
    return done.rowcount


def running(conn: Connection, provider: str, account: str) -> Run | None:
    """The account's run in progress, if one is."""
    c = sync_runs.c
    row = conn.execute(select(sync_runs).where(c.provider == provider, c.account == account,
                                               c.status == "running")
                       .order_by(c.id.desc()).limit(1)).first()
    return None if row is None else _run(row)


def set_progress(conn: Connection, run_id: int, progress: Mapping[str, Any]) -> None:
    c = sync_runs.c
    conn.execute(update(sync_runs).where(c.id == run_id, c.status == "running")
                 .values(progress=dict(progress)))


def finish(conn: Connection, run_id: int, *, ok: bool, now: datetime, lines: int = 0,
           error: str | None = None, summary: Mapping[str, Any] | None = None,
           progress: Mapping[str, Any] | None = None) -> None:
    c = sync_runs.c
    values: dict[str, Any] = {"status": "ok" if ok else "failed", "finished_at": now,
                              "lines": lines, "error": error,
                              "summary": dict(summary) if summary is not None else None}
    if progress is not None:
        values["progress"] = dict(progress)
    conn.execute(update(sync_runs).where(c.id == run_id).values(**values))


def get(conn: Connection, run_id: int) -> Run:
    row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no sync run {run_id}", run=run_id)
    return _run(row)


def list_runs(conn: Connection, *, provider: str | None = None, account: str | None = None,
              limit: int = 50, before: int | None = None) -> list[Run]:
    """Runs newest first; ``before`` pages on (runs with a lower id)."""
    c = sync_runs.c
    query = select(sync_runs).order_by(c.id.desc()).limit(limit)
    if provider is not None:
        query = query.where(c.provider == provider)
    if account is not None:
        query = query.where(c.account == account)
    if before is not None:
        query = query.where(c.id < before)
    return [_run(row) for row in conn.execute(query)]
