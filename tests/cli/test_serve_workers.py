"""``meterline serve --workers 2``, a real server: one scrape of ``/metrics``, whichever worker
answers it, counts the calls every worker served (before, it counted its own worker's); a
worker that dies keeps its counts, and loses its gauges; the run's metrics files go with it."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN
from tests.serving import Server, serve, upstream

NANO = "openai/gpt-5-nano"
REQUESTS = re.compile(r'^meterline_requests_total\{model="openai/gpt-5-nano",provider="openai",'
                      r'status="success"\} (\S+)$', re.MULTILINE)
#: Only a guard against a hung server.
DEADLINE = 300.0
MAX_CALLS = 2000


def worker(request_id: str) -> str:
    """The process that made a request id (``req_`` + 16 hex digits of time + its tag)."""
    return request_id[20:28]


def call(server: Server, key: str) -> str:
    """One chat call on a connection of its own (a worker accepts each connection)."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": NANO, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
    return worker(answer.headers["x-meterline-request-id"])


def scrape(server: Server) -> tuple[str, str]:
    """The exposition, and the worker that answered."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.get("/metrics", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.text, worker(answer.headers["x-meterline-request-id"])


def served_calls(text: str) -> float:
    found = REQUESTS.search(text)
    assert found is not None, text
    return float(found.group(1))


def worker_pids(server: Server) -> list[int]:
    """The serve process's workers (multiprocessing's spawned children)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def metrics_directory(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [found] = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(found.decode())


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_one_scrape_counts_the_calls_of_every_worker(tmp_path: Path) -> None:
    with upstream() as up, serve(tmp_path, up, "--workers", "2") as server:
        key = server.new_key()
        served: Counter[str] = Counter()
        deadline = time.monotonic() + DEADLINE
        # Calls four at a time, each on a new connection, until both workers served some: the
        # kernel hands a connection to whichever worker accepts first.
        with ThreadPoolExecutor(4) as pool:
            while len(served) < 2 or sum(served.values()) < 20:
                assert time.monotonic() < deadline and sum(served.values()) < MAX_CALLS, served
                served.update(pool.map(lambda _: call(server, key), range(8)))
        assert len(served) == 2, served
        calls = sum(served.values())

        answered: Counter[str] = Counter()
        with ThreadPoolExecutor(4) as pool:
            while len(answered) < 2:  # every scrape, whichever worker answers, has them all
                assert time.monotonic() < deadline and sum(answered.values()) < MAX_CALLS, \
                    answered
                for text, by in pool.map(lambda _: scrape(server), range(4)):
                    answered[by] += 1
                    assert served_calls(text) == calls, (by, served)
        # Each loop's gauge is one series (the worst worker's), not one per worker.
        assert len(re.findall(r'^meterline_background_failures\{loop="hold_sweep"\} 0\.0$',
                              text, re.MULTILINE)) == 1, text
        assert "pid=" not in text
        assert re.search(r"^meterline_journal_pending \d", text, re.MULTILINE), text

        # A worker killed outright: uvicorn starts another; its counts stay in the total, its
        # live gauges go at the next scrape.
        pids = worker_pids(server)
        assert len(pids) == 2, pids
        directory = metrics_directory(pids[0])
        assert list(directory.glob(f"gauge_live*_{pids[0]}.db"))
        os.kill(pids[0], signal.SIGKILL)
        while list(directory.glob(f"gauge_live*_{pids[0]}.db")):
            assert time.monotonic() < deadline
            assert served_calls(scrape(server)[0]) == calls
            time.sleep(0.1)
        assert served_calls(scrape(server)[0]) == calls
        assert list(directory.glob("counter_*.db"))
    assert not directory.exists()  # the run's files went with it
