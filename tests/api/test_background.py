"""Background loops survive any failure of a pass and report it (issue 12.1): a raw database
error in a loop once ended the app's task group, so prices, holds and alerts stopped for good
while the process kept serving and ``/readyz`` said ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from meterline.api.app import create_app
from meterline.config import Config
from meterline.health import FAILING_AFTER, backoff
from tests.conftest import ADMIN, LiveServer


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until ``condition()`` is truthy; the deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return found


class HoldSweepFault:
    """Makes the hold sweep's statement raise OperationalError while ``on`` is set (through
    the app's own engine: nothing global is patched)."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.raised = 0
        self.seen_after = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("DELETE FROM BUDGET_HOLDS"):
            return
        if self.on.is_set():
            self.raised += 1
            raise OperationalError(statement, None, ConnectionError("server closed the "
                                                                    "connection unexpectedly"))
        if self.raised:
            self.seen_after += 1


@pytest.fixture
def faulty(config: Config) -> Iterator[tuple[httpx.Client, HoldSweepFault]]:
    app = create_app(config, intervals={"hold_sweep": 0.01})
    fault = HoldSweepFault()
    event.listen(app.state.meterline.engine, "before_cursor_execute", fault)
    with LiveServer(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, fault


def hold_sweep(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    ready = http.get("/readyz")
    return ready.status_code, {**ready.json(), **ready.json()["loops"]["hold_sweep"]}


def test_a_failing_loop_keeps_running_reports_itself_and_recovers(faulty: Any) -> None:
    http, fault = faulty
    status, found = hold_sweep(http)
    assert (status, found["status"]) == (200, "ready")

    fault.on.set()
    status, found = wait_for(lambda: (r := hold_sweep(http))[1]["failures"] >= FAILING_AFTER
                             and r)
    assert status == 503 and found["status"] == "degraded", found
    assert found["failing"] and found["last_error"] == "OperationalError"
    assert any("hold_sweep" in problem for problem in found["problems"])
    metrics = http.get("/metrics", headers=ADMIN).text
    assert 'meterline_background_failures{loop="hold_sweep"}' in metrics
    assert 'meterline_background_last_success_seconds{loop="journal_drainer"}' in metrics
    assert "meterline_journal_pending 0" in metrics
    # The other loops are unaffected.
    assert found["loops"]["price_refresh"]["failures"] == 0

    fault.on.clear()
    status, found = wait_for(lambda: (r := hold_sweep(http))[1]["failures"] == 0 and r)
    assert (status, found["status"]) == (200, "ready")
    assert found["last_success"] is not None
    wait_for(lambda: fault.seen_after >= 2)  # it goes on sweeping after recovering


def test_backoff_is_capped_whatever_the_failure_count() -> None:
    assert backoff(0.2, 0, 5.0) == 0.2
    assert backoff(0.2, 3, 5.0) == pytest.approx(1.6)
    for failures in (5, 1024, 10_000, 10**9):
        assert backoff(0.2, failures, 5.0) == 5.0
