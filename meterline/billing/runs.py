"""Sync runs: a sync of one provider account's cycle, recorded from start to end (``sync_runs``)
whoever starts it: ``meterline sync --provider`` (trigger ``cli``), ``POST /api/sync``
(``api``, run in the background) or the daily schedule (``schedule``).

A run is planned first (the source, its credentials present, the cycle's billed days: bad
input is refused before anything starts), then begun (its row, and the audit entry
``bill_sync.start`` of the admin who asked), then executed: fetched with its progress written
to the row, stored, checked for alerts, then finished. A failure finishes the run ``failed``
(with the lines it stored, if checking for alerts is what failed) and its error, scrubbed of
the source's credentials (the billing client scrubs the provider's messages already; this is
for anything else), and is logged the same way, never with a traceback that could carry more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Engine

from meterline.billing.alerting import raise_alerts
from meterline.billing.connectors import Period
from meterline.billing.sync import check_credentials, fetch, find_source, period_for, store
from meterline.config import BillSourceConfig, Config
from meterline.errors import Conflict, MeterlineError
from meterline.store import audit, provider_bills, sync_runs
from meterline.store.audit import Actor
from meterline.store.provider_bills import StoredBalance
from meterline.store.sync_runs import Run

log = logging.getLogger("meterline.billing")
#: Progress is written at each phase and every this many requests.
PROGRESS_EVERY: Final = 10
MASK: Final = "***"


@dataclass(frozen=True)
class Planned:
    source: BillSourceConfig
    period: Period

    @property
    def label(self) -> str:
        return f"{self.source.provider} account {self.source.account!r} {self.period.cycle}"


def plan(config: Config, provider: str, account: str | None, cycle: object,
         now: datetime) -> Planned:
    """The source and days a sync would fetch; InvalidInput for an unknown provider or account,
    an unset credential variable, a bad cycle or one with no billed day yet."""
    source = find_source(config, provider, account)
    check_credentials(source)
    return Planned(source, period_for(source, cycle, now))


def credentials(source: BillSourceConfig) -> list[str]:
    """The source's credential texts that are set, longest first (to scrub them)."""
    found = [value.reveal() for value in (source.access_key_id, source.access_key_secret,
                                          source.api_key) if value is not None]
    return sorted({text for text in found if len(text) >= 4}, key=len, reverse=True)


def scrub(text: str, source: BillSourceConfig) -> str:
    for secret in credentials(source):
        text = text.replace(secret, MASK)
    return text


def describe(exc: BaseException, source: BillSourceConfig) -> str:
    """One line for the run's error and the log: meterline's message, else the class and its
    text; never a credential."""
    text = exc.message if isinstance(exc, MeterlineError) else (
        f"{type(exc).__name__}: {exc}".rstrip(": "))
    return scrub(" ".join(text.split()), source)


def begin(engine: Engine, planned: Planned, trigger: str, *, actor: Actor | None,
          now: datetime, day: date | None = None) -> int | None:
    """The run's row (None when ``day``'s scheduled run is claimed already); Conflict when a
    manual sync of the account is running."""
    source = planned.source
    cycle = str(planned.period.cycle)
    with engine.begin() as conn:
        sync_runs.expire_stale(conn, now)
        if day is None and (busy := sync_runs.running(conn, source.provider, source.account)):
            raise Conflict(f"{source.provider} account {source.account!r} is being synced "
                           f"(run {busy.id}, {busy.cycle}); wait until it finishes",
                           run=busy.id)
        run_id = sync_runs.start(conn, provider=source.provider, account=source.account,
                                 cycle=cycle, trigger=trigger, now=now, day=day)
        if run_id is not None:
            audit.record(conn, actor, "bill_sync.start",
                         target=f"{source.provider}:{source.account}",
                         details={"run": run_id, "cycle": cycle, "trigger": trigger})
    return run_id


def execute(engine: Engine, config: Config, run_id: int, planned: Planned, *,
            actor: Actor | None, now: Callable[[], datetime],
            **options: Any) -> dict[str, Any]:
    """Fetch, store and check the run; returns its summary, or raises what failed once the run
    says so. ``options`` go to ``fetch`` (transport, clock, sleep, backoff)."""
    source = planned.source
    written = {"phase": ""}

    def progress(phase: str, requests: int) -> None:
        if phase != written["phase"] or requests % PROGRESS_EVERY == 0:
            written["phase"] = phase
            with engine.begin() as conn:
                sync_runs.set_progress(conn, run_id, {"phase": phase, "requests": requests})

    summary: dict[str, Any] | None = None
    try:
        fetched = fetch(source, str(planned.period.cycle), now=now, progress=progress,
                        **options)
        with engine.begin() as conn:
            summary = store(conn, fetched, actor=actor, run_id=run_id)
            sync_runs.set_progress(conn, run_id, {"phase": "alerts",
                                                  "requests": fetched.requests})
        summary["alerts"] = raise_alerts(engine, config, fetched, now())
    except Exception as exc:
        error = describe(exc, source)
        with engine.begin() as conn:
            sync_runs.finish(conn, run_id, ok=False, now=now(), error=error, summary=summary,
                             lines=summary["lines"] if summary else 0)
        log.warning("bill sync run %d of %s failed: %s", run_id, planned.label, error)
        raise
    with engine.begin() as conn:
        sync_runs.finish(conn, run_id, ok=True, now=now(), lines=summary["lines"],
                         summary=summary, progress={"phase": "done",
                                                    "requests": fetched.requests})
    log.info("bill sync run %d of %s: %d lines stored, %d balances, %d new alerts", run_id,
             planned.label, summary["lines"], len(fetched.balances), len(summary["alerts"]))
    return {**summary, "run": run_id}


def execute_quietly(engine: Engine, config: Config, run_id: int, planned: Planned, *,
                    actor: Actor | None, now: Callable[[], datetime], **options: Any) -> bool:
    """``execute`` where nobody waits for it (the API's background, the schedule): a failure is
    in the run and the log already; returns whether the run succeeded."""
    try:
        execute(engine, config, run_id, planned, actor=actor, now=now, **options)
    except Exception:  # recorded and logged by execute
        return False
    return True


def run_now(engine: Engine, config: Config, provider: str, cycle: object = None,
            account: str | None = None, *, trigger: str, actor: Actor | None,
            now: Callable[[], datetime], **options: Any) -> dict[str, Any]:
    """Plan, begin and execute one run, waiting for it (the CLI)."""
    planned = plan(config, provider, account, cycle, now())
    run_id = begin(engine, planned, trigger, actor=actor, now=now())
    assert run_id is not None  # only a scheduled run (with a day) can find its claim taken
    return execute(engine, config, run_id, planned, actor=actor, now=now, **options)


def history(engine: Engine, *, provider: str | None = None, account: str | None = None,
            limit: int = 50, before: int | None = None) -> list[Run]:
    """Runs newest first; ``before`` pages on (runs with a lower id)."""
    with engine.connect() as conn:
        return sync_runs.list_runs(conn, provider=provider, account=account, limit=limit,
                                   before=before)


def one(engine: Engine, run_id: int) -> Run:
    with engine.connect() as conn:
        return sync_runs.get(conn, run_id)


def balances(engine: Engine) -> list[StoredBalance]:
    """Each provider account's latest balances."""
    with engine.connect() as conn:
        return provider_bills.latest_balances(conn)
