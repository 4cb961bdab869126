"""The journal drainer survives an outage of any length (issue 12.2): its back-off was
``interval * 2 ** failures``, which overflows after 1024 failures in a row (about 85 minutes
into an outage) and ended the thread, so the journal grew for ever."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meterline.gateway.drainer import Drainer
from meterline.gateway.journal import Journal

FAILURES = 1100  # past 1024, where 2.0 ** failures overflows a float


class FailingFor:
    """A sink that fails its first ``times`` calls, then keeps what it gets."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            if self.left:
                self.left -= 1
                raise ConnectionError("database unreachable")
            self.ids += [item["request_id"] for item in batch]


def test_the_drainer_outlives_a_thousand_failures_in_a_row(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="meterline.gateway.drainer")
    journal = Journal(tmp_path)
    journal.append({"request_id": "kept"})
    sink = FailingFor(FAILURES)
    # Tiny waits so that a thousand failures take a moment; the cap is what is under test.
    drainer = Drainer(journal, sink, interval=1e-4, max_backoff=1e-4).start()
    try:
        deadline = time.monotonic() + 60
        while sink.ids != ["kept"]:
            assert time.monotonic() < deadline, f"not drained; {sink.left} failures left"
            time.sleep(0.01)
        assert drainer.failures == 0
        assert drainer.health.status().last_success is not None
        assert journal.pending() == 0
    finally:
        assert drainer.stop(timeout=10)
