"""The ASGI app factory: everything the app needs is built here from an explicit Config."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from meterline import __version__, web
from meterline.alerts.webhooks import Notifier, WebhookConfig
from meterline.api import admin, admin_tokens, health, insights, limits, usage
from meterline.api import audit as audit_api
from meterline.api import bills as bills_api
from meterline.api import reconcile as reconcile_api
from meterline.api import stats as stats_api
from meterline.api import sync as sync_api
from meterline.api.bodies import BodyLimit
from meterline.api.state import AppState
from meterline.asgi import errors
from meterline.asgi.fastpath import ProxiedCalls
from meterline.billing import schedule
from meterline.config import Config
from meterline.gateway import inflight
from meterline.gateway import routes as gateway_routes
from meterline.gateway.admission import LEASE_SWEEP_SECONDS, Admission
from meterline.gateway.drainer import Drainer
from meterline.gateway.idempotency import IdempotencyGuard
from meterline.gateway.inflight import INTERRUPTED_SWEEP_SECONDS
from meterline.gateway.journal import Journal
from meterline.gateway.keys import KeyCache
from meterline.gateway.ratelimit import DatabaseLimiter, RateLimits, RedisLimiter
from meterline.gateway.recorder import Recorder, ledger_sink
from meterline.gateway.routing import Router
from meterline.gateway.state import GatewayState
from meterline.gateway.upstream import Upstreams
from meterline.health import Registry, Tracker, backoff
from meterline.logs import RequestContext
from meterline.services import alerts as alert_service
from meterline.services.admins import AdminAccess, Clock, utc_now
from meterline.services.bootstrap import ensure_admin_token, prepare_database, sync_providers
from meterline.services.metering import Metering
from meterline.simulator.app import create_simulator
from meterline.store import budgets as budget_store
from meterline.store import claims, sessions
from meterline.store import quotas as quota_store
from meterline.store.engine import make_engine

log = logging.getLogger("meterline")
DEMO_SIMULATOR_PATH = "/_simulator"
HOLD_SWEEP_SECONDS = 30.0
ALERT_POLL_SECONDS = 2.0
#: Projections move slowly: checked every 150 polls (five minutes).
PROJECTION_EVERY = 150
#: The longest a failing background loop waits before its next try.
LOOP_MAX_BACKOFF = 30.0


def _release_expired(engine: Engine) -> None:
    with engine.begin() as conn:
        released = budget_store.release_expired(conn) + quota_store.release_expired(conn)
        claims.delete_expired(conn, datetime.now(UTC))
        sessions.delete_ended(conn, datetime.now(UTC))
    if released:
        log.warning("released %d holds of calls never recorded in time", released)


async def guarded(tracker: Tracker, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``tracker.interval`` seconds for as long as the app runs.

    No failure of one pass may end the loop: a loop that died would leave the process serving
    with stale prices, holds never released and alerts never sent, silently. Each failure is
    logged and counted (``/readyz``), and retried after a capped back-off."""
    delay = tracker.interval
    while True:
        await anyio.sleep(delay)
        try:
            await work()
        except Exception as exc:
            failures = tracker.failed(exc)
            delay = backoff(tracker.interval, failures, max(tracker.interval, LOOP_MAX_BACKOFF))
            log.warning("background loop %s failed (%d in a row; next try in %.1f s): %s",
                        tracker.name, failures, delay, exc, exc_info=failures == 1)
        else:
            if ended := tracker.succeeded():
                log.info("background loop %s recovered after %d failures", tracker.name,
                         ended)
            delay = tracker.interval


def create_app(config: Config, *, prepare: bool = True, workers: int = 1,
               intervals: Mapping[str, float] | None = None,
               clock: Clock = utc_now) -> FastAPI:
    """Build the app. With ``prepare`` the database is migrated and the catalog synced first;
    ``workers``: how many server processes share this machine's cores; ``intervals``: seconds
    between passes of background loops, by name, where the defaults do not fit (tests);
    ``clock``: the time admin sessions are started and checked at (tests move it)."""
    engine = make_engine(config.database_url)
    generated = None
    if prepare:
        prepare_database(engine)
        sync_providers(engine, config)
        generated = ensure_admin_token(engine, config)
    metering = Metering(engine)
    ingest_slots = config.ingest_concurrency or max(1, (os.cpu_count() or 1) // workers)
    journal = Journal(Path(config.journal_dir))
    app_state = AppState(config=config, engine=engine, metering=metering,
                         ingest_limiter=anyio.CapacityLimiter(ingest_slots),
                         generated_admin_token=generated, health=Registry(), journal=journal,
                         admins=AdminAccess(engine, clock))
    router = Router(config.providers, config.routes)
    gateway = GatewayState(metering=metering, router=router,
                           keys=KeyCache(engine, ttl=config.key_cache_seconds),
                           upstreams=Upstreams(router.providers),
                           recorder=Recorder(metering, journal),
                           admission=Admission(engine, config.limits),
                           rate_limits=RateLimits(
                               RedisLimiter(config.limits.redis_url) if config.limits.redis_url
                               else DatabaseLimiter(engine)),
                           idempotency=IdempotencyGuard(
                               engine, config.limits.hold_seconds))
    write_batch = ledger_sink(engine, Path(config.journal_dir) / "rejected.jsonl")

    def drain(batch: Sequence[Mapping[str, Any]]) -> None:
        write_batch(batch)
        # Written (or set aside): the leases these calls were admitted from may close.
        gateway.admission.settled([item["row"]["request_id"] for item in batch
                                   if "row" in item])

    registry = app_state.health
    gateway.health = registry
    drainer = Drainer(journal, drain)
    registry.add(drainer.health)
    gateway.recorder.on_held = drainer.notify

    async def refresh_prices() -> None:
        # Keeps the in-memory price book current off the response path (see Metering).
        await run_in_threadpool(metering.refresh)

    async def release_expired_holds() -> None:
        # Holds of calls whose process died are released by whichever process looks first.
        await run_in_threadpool(_release_expired, engine)

    async def record_interrupted() -> None:
        # Calls in flight in a process that died: recorded once its journal is drained.
        await run_in_threadpool(inflight.sweep, engine, Path(config.journal_dir))

    async def sweep_leases() -> None:
        if gateway.admission.leases.open_leases():
            await run_in_threadpool(gateway.admission.sweep)

    hooks = [WebhookConfig(h.url.reveal(), h.format, h.secret)
             for h in config.limits.webhooks]
    notifier = Notifier()
    ticks = 0

    async def notify_alerts() -> None:
        # Alerts are rows first (created with the spend that crossed a threshold, in whichever
        # process wrote it); sending them is this loop's job, off every call's path.
        nonlocal ticks
        ticks += 1
        if ticks % PROJECTION_EVERY == 0:
            await run_in_threadpool(alert_service.check_projections, engine)
        if hooks:
            for alert in await run_in_threadpool(alert_service.claim_for_notification, engine):
                notifier.start(alert, hooks)

    async def sync_bills() -> None:
        # The daily bill sync ([sync] at): a day's run of a source is claimed in the database,
        # so among several processes one makes it.
        await run_in_threadpool(schedule.run_due, engine, config, clock)

    loops: dict[str, tuple[float, Callable[[], Awaitable[None]]]] = {
        "price_refresh": (metering.refresh_seconds, refresh_prices),
        "hold_sweep": (HOLD_SWEEP_SECONDS, release_expired_holds),
        "lease_sweep": (LEASE_SWEEP_SECONDS, sweep_leases),
        "interrupted_calls": (INTERRUPTED_SWEEP_SECONDS, record_interrupted),
        "alerts": (ALERT_POLL_SECONDS, notify_alerts),
        "bill_sync": (schedule.CHECK_SECONDS, sync_bills),
    }
    unknown = set(intervals or {}) - set(loops)
    if unknown:
        raise ValueError(f"no background loop named {', '.join(sorted(unknown))}")
    trackers = {name: registry.tracker(name, (intervals or {}).get(name, interval))
                for name, (interval, _) in loops.items()}

    def start_loops(tasks: TaskGroup) -> None:
        for name, (_, work) in loops.items():
            tasks.start_soon(guarded, trackers[name], work, name=f"meterline-{name}")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(metering.refresh, force=True)
        drainer.start()
        async with anyio.create_task_group() as tasks:
            start_loops(tasks)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        await gateway.upstreams.aclose()
        await notifier.aclose()
        await gateway.rate_limits.limiter.aclose()
        await run_in_threadpool(drainer.stop)
        await run_in_threadpool(gateway.admission.close)
        await run_in_threadpool(gateway.idempotency.close)
        journal.close()
        engine.dispose()

    app = FastAPI(title="meterline", version=__version__, lifespan=lifespan,
                  description="LLM API gateway and billing service.")
    app.state.meterline = app_state
    app.state.gateway = gateway
    errors.install(app)
    # Innermost: proxied calls skip the framework's routing layers (meterline/asgi/fastpath.py).
    app.add_middleware(ProxiedCalls, endpoints=gateway_routes.PROXIED, owner=app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestContext)  # outermost: a request id for every log line and answer
    app.include_router(health.router)
    app.include_router(usage.router)
    app.include_router(admin.router)
    app.include_router(admin_tokens.router)
    app.include_router(limits.router)
    app.include_router(stats_api.router)
    app.include_router(insights.router)
    app.include_router(bills_api.router)
    app.include_router(reconcile_api.router)
    app.include_router(audit_api.router)
    app.include_router(sync_api.router)
    web.install(app)  # the dashboard: its pages, and its files under /static/
    gateway_routes.install(app)
    if config.demo:
        # The demo's upstream providers are simulated by the server itself.
        app.mount(DEMO_SIMULATOR_PATH, create_simulator())
    return app
