"""Prometheus metrics of the gateway (``GET /metrics``), on ``prometheus_client``: requests,
tokens and cost by provider and model, the upstream latency histogram, lease counters, and the
health of the process's background loops and of the journal.

One process: the metrics live in a ``CollectorRegistry`` of the app's own (tests build many apps
in one process; the global registry would refuse the second app's metrics). Several worker
processes (``meterline serve --workers N``): ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before the workers start, so ``prometheus_client`` keeps every value in a file
per process there, and a scrape, whichever worker it reaches, adds up all of them
(``MultiProcessCollector``). Counters of a worker that died still count (their totals happened);
the gauges of a dead worker are dropped at the next scrape (``mark_process_dead``).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

if TYPE_CHECKING:
    from meterline.gateway.state import GatewayState

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How often a worker copies its loops' health and lease counts into the shared files (a scrape
#: in another worker sees them this late at most; the scraping worker's own are current).
SYNC_SECONDS = 1.0

log = logging.getLogger("meterline.metrics")


def multiprocess_directory() -> str | None:
    """The shared directory, if this process's values are kept there. ``prometheus_client``
    decides when it is first imported, from the environment: a directory named later (after
    the import) is not used, and this process then reports on its own."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and getattr(prometheus_values.ValueClass, "_multiprocess", False):
        return directory
    return None


class Metrics:
    def __init__(self) -> None:
        self.directory = multiprocess_directory()
        registry = self.registry = CollectorRegistry()
        self.requests = Counter("meterline_requests", "Gateway calls by provider, model and "
                                "status.", ("provider", "model", "status"), registry=registry)
        self.tokens = Counter("meterline_tokens", "Tokens metered, by direction.",
                              ("provider", "model", "direction"), registry=registry)
        # The gateway's costs are exact Decimals (the ledger, the headers); this counter is a
        # float, as every Prometheus value is: close enough for a rate on a dashboard, never
        # a number to bill from.
        self.cost = Counter("meterline_cost", "Cost metered, in the price's currency.",
                            ("provider", "model", "currency"), registry=registry)
        self.latency = Histogram("meterline_upstream_latency_seconds",
                                 "Time until the upstream answered.", ("provider",),
                                 buckets=BUCKETS, registry=registry)
        self.leases_opened = Counter("meterline_leases_opened", "Budget and quota leases "
                                     "granted to this gateway.", registry=registry)
        self.lease_admissions = Counter("meterline_lease_admissions", "Limited calls admitted "
                                        "from a lease in memory.", registry=registry)
        # Every worker runs each loop: across workers, the worst one is shown (the most
        # failures in a row, the oldest success), so that an alert sees a stuck worker.
        self.loop_failures = Gauge("meterline_background_failures", "Consecutive failed "
                                   "passes of a background loop (0 after a success).",
                                   ("loop",), multiprocess_mode="livemax", registry=registry)
        self.loop_success = Gauge("meterline_background_last_success_seconds", "Unix time of "
                                  "a background loop's last successful pass (0: none yet).",
                                  ("loop",), multiprocess_mode="livemin", registry=registry)
        #: The series of each (provider, model, status, currency): ``labels()`` looks them up
        #: with checks that cost more than the counting itself.
        self._series: dict[tuple[str, str, str, str | None], _Series] = {}
        self._state: GatewayState | None = None
        self._lock = threading.Lock()
        self._leases_seen = (0, 0)
        self._syncing: threading.Thread | None = None

    def observe(self, *, provider: str, model: str, status: str, input_tokens: int,
                output_tokens: int, cost: Decimal | None, currency: str | None,
                upstream_seconds: float | None) -> None:  # money-ok: seconds
        """Count one finished gateway call. Never raises on odd numbers (a counter refuses to
        go down): the call's answer is on its way and must not fail here."""
        key = (provider, model, status, currency)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(
                self.requests.labels(provider, model, status),
                self.tokens.labels(provider, model, "input"),
                self.tokens.labels(provider, model, "output"),
                None if currency is None else self.cost.labels(provider, model, currency),
                self.latency.labels(provider))
        series.requests.inc()
        series.input_tokens.inc(max(0, input_tokens))
        series.output_tokens.inc(max(0, output_tokens))
        if cost is not None and series.cost is not None and cost >= 0:
            series.cost.inc(float(cost))  # money-ok: a metric (see __init__)
        if upstream_seconds is not None:
            series.latency.observe(max(0.0, upstream_seconds))

    def follow(self, state: GatewayState) -> None:
        """Report ``state``'s loops, leases and journal from now on. With several workers, each
        copies its own into the shared files every SYNC_SECONDS."""
        self._state = state
        if self.directory is not None and self._syncing is None:
            self._syncing = threading.Thread(target=self._sync_forever, daemon=True,
                                             name="meterline-metrics")
            self._syncing.start()

    def render(self) -> bytes:
        """The text exposition (blocking: it reads the journal and the shared files)."""
        self.sync()
        if self.directory is not None:
            forget_dead_workers(self.directory)
        return generate_latest(_Scrape(self))

    def sync(self) -> None:
        """Copy the followed loops' health and lease counts into the metrics."""
        state = self._state
        if state is None:
            return
        with self._lock:
            for status in state.health:
                self.loop_failures.labels(status.name).set(status.failures)
                self.loop_success.labels(status.name).set(
                    status.last_success.timestamp() if status.last_success else 0)
            leases = state.admission.leases
            opened, taken = leases.opened_total, leases.taken_total
            seen_opened, seen_taken = self._leases_seen
            self.leases_opened.inc(max(0, opened - seen_opened))
            self.lease_admissions.inc(max(0, taken - seen_taken))
            self._leases_seen = (max(opened, seen_opened), max(taken, seen_taken))

    def pending(self) -> int | None:
        state = self._state
        return None if state is None else state.recorder.journal.pending()

    def _sync_forever(self) -> None:
        failed = False
        while True:  # for as long as the worker lives (a daemon thread)
            time.sleep(SYNC_SECONDS)
            try:
                self.sync()
            except Exception:
                # Metrics must never take a worker down; one report per run of failures.
                if not failed:
                    log.exception("copying this worker's metrics failed")
                failed = True
            else:
                failed = False


class _Series(NamedTuple):
    requests: Counter
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter | None
    latency: Histogram


class _Scrape:
    """What one scrape shows: this process's metrics, or every worker's added up, without the
    ``_created`` series (a single process would show them, a multiprocess scrape cannot), and
    the journal's backlog, read now (the directory is the machine's, not a worker's)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        directory = self.metrics.directory
        families: Iterable[Metric] = (
            _every_worker(directory) if directory is not None
            else self.metrics.registry.collect())
        for family in families:
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
        pending = self.metrics.pending()
        if pending is not None:
            yield GaugeMetricFamily("meterline_journal_pending", "Gateway calls journaled and "
                                    "not yet in the ledger (this machine's journal directory).",
                                    value=pending)


def _every_worker(directory: str) -> Iterable[Metric]:
    collector = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]
    found: Iterable[Metric] = collector.collect()  # type: ignore[no-untyped-call]
    return found


def forget_dead_workers(directory: str) -> None:
    """Drop the gauges of workers that are gone (killed, crashed or restarted): their last
    values would otherwise stand for ever. Their counters stay."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path)[:-3].rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
