"""The health of a process's background work: its loops and the journal drainer.

Background work must outlive any failure of one pass (a database outage, a bug in one row):
each pass is guarded, failures are counted and retried with a capped back-off, and what each
loop last achieved is kept here for ``/readyz`` and ``/metrics`` (docs/architecture.md,
"Background work").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

#: Consecutive failures after which a loop counts as failing (the process is not ready).
FAILING_AFTER = 3

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff(base: float, failures: int, cap: float) -> float:
    """``base`` doubled per consecutive failure, at most ``cap`` seconds.

    The doubling stops at the cap instead of raising 2 to the failure count, which overflows a
    float after 1024 failures in a row (about 85 minutes of an outage at 5 s per try)."""
    delay = base
    for _ in range(failures):
        if delay >= cap:
            break
        delay *= 2
    return min(delay, cap)


@dataclass(frozen=True, slots=True)
class Status:
    """What one loop last did: its last success, consecutive failures and last error."""

    name: str
    interval: float
    last_success: datetime | None
    failures: int
    last_error: str | None

    @property
    def failing(self) -> bool:
        return self.failures >= FAILING_AFTER

    def to_json(self) -> dict[str, object]:
        return {"interval_seconds": self.interval,
                "last_success": self.last_success.isoformat() if self.last_success else None,
                "failures": self.failures, "last_error": self.last_error,
                "failing": self.failing}


class Tracker:
    """The health of one loop; written by the loop (any thread), read by health checks."""

    def __init__(self, name: str, interval: float, clock: Clock = utc_now) -> None:
        self.name = name
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last_success: datetime | None = None
        self._failures = 0
        self._last_error: str | None = None

    def succeeded(self) -> int:
        """Record a successful pass; returns the failures it ends."""
        with self._lock:
            ended, self._failures = self._failures, 0
            self._last_success = self.clock()
            return ended

    def failed(self, exc: BaseException) -> int:
        """Record a failed pass; returns the consecutive failures so far."""
        with self._lock:
            self._failures += 1
            # The class only: a driver's message may carry hosts or credentials.
            self._last_error = exc.__class__.__name__
            return self._failures

    @property
    def failures(self) -> int:
        return self._failures

    def status(self) -> Status:
        with self._lock:
            return Status(self.name, self.interval, self._last_success, self._failures,
                          self._last_error)


class Registry:
    """Every tracked loop of a process, by name."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self._trackers: dict[str, Tracker] = {}

    def tracker(self, name: str, interval: float) -> Tracker:
        return self.add(Tracker(name, interval, self.clock))

    def add(self, tracker: Tracker) -> Tracker:
        self._trackers[tracker.name] = tracker
        return tracker

    def __iter__(self) -> Iterator[Status]:
        return iter([t.status() for t in self._trackers.values()])
