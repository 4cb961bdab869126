"""The CPU meterline's app spends per call, measured in-process: robust on a busy machine.

run.py's req/s and latencies move with whatever else the machine runs. This drives meterline's
ASGI app directly (no HTTP server, no load generator: the same app ``meterline serve`` runs, with
auth, metering, the journal and the drainer on, against the same fake upstream) and reports the
CPU time of the event-loop thread per 1000 calls, and of the whole process (the drainer writing
the ledger included) once the ledger has every call. CPU time counts only this process's own
work, so other jobs on the machine barely move it (they still slow caches down a little: run
it twice and compare the spread).

    python3 bench/gateway/inprocess.py [--calls 5000] [--concurrency 1 32] [--modes plain stream]
                                       [--profile FILE]   # cProfile of the event-loop thread

The fake upstream is nginx when installed (else the Python stand-in: it runs in its own
process, so its CPU is not counted either way). ``--profile`` writes cProfile statistics of the
last cell and prints the functions with the most time of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

# Run as a script: this directory is on sys.path, so its modules import by name.
from fake_upstream import start_nginx, start_python
from procs import free_port
from proxies import ADMIN_TOKEN, MODES, PRICES, REPO, chat_body
from run import find_binary

MODEL = "bench-model"
Message = dict[str, Any]


def config_text(db: Path, journal: Path, upstream: str) -> str:
    return f"""\
reporting_currency = "USD"

[database]
url = "sqlite:///{db}"

[[providers]]
name = "fake"
kind = "openai"
base_url = "{upstream}/plain/v1"
api_key_env = "BENCH_FAKE_API_KEY"

[[providers]]
name = "fakestream"
kind = "openai"
base_url = "{upstream}/sse/v1"
api_key_env = "BENCH_FAKE_API_KEY"

[gateway]
journal_dir = "{journal}"
"""


class Driver:
    """Calls the ASGI app as uvicorn would (ASGI 2.3: a client's leaving is heard on
    ``receive``), one coroutine per connection."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key
        self.failures: list[str] = []

    async def call(self, mode: str, user: str) -> None:
        provider = "fakestream" if mode == "stream" else "fake"
        body = chat_body(f"{provider}/{MODEL}", mode)
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {},
            "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"authorization", f"Bearer {self.key}".encode()),
                        (b"x-meterline-user", user.encode())],
        }
        sent = False
        never = asyncio.Event()
        status = 0

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never.wait()  # the client stays until the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        if status != 200:
            self.failures.append(f"{mode}: HTTP {status}")


def thread_cpu() -> float:
    return time.thread_time()


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def ledger_count(db: Path, user: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM usage_records WHERE user_id = ?",
                                (user,)).fetchone()[0])


async def cell(driver: Driver, db: Path, mode: str, concurrency: int, calls: int,
               profile: cProfile.Profile | None) -> dict[str, float]:
    user = f"{mode}-c{concurrency}"
    queue = iter(range(calls))

    async def connection() -> None:
        for _ in queue:
            await driver.call(mode, user)

    wall, loop_cpu, all_cpu = time.perf_counter(), thread_cpu(), process_cpu()
    if profile is not None:
        profile.enable()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    if profile is not None:
        profile.disable()
    loop_used, served = thread_cpu() - loop_cpu, time.perf_counter() - wall
    while ledger_count(db, user) < calls:  # the drainer's share counts too
        await asyncio.sleep(0.05)
    return {"loop_ms": 1000 * loop_used / calls * 1000,
            "process_ms": 1000 * (process_cpu() - all_cpu) / calls * 1000,
            "calls_s": calls / served}


async def setup(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async def post(path: str, body: dict[str, Any]) -> Any:
            answer = await admin.post(path, json=body)
            if answer.status_code >= 400:
                raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")
            return answer.json()

        await post("/api/tenants", {"name": "bench", "currency": "USD"})
        key: str = (await post("/api/keys", {"tenant": "bench"}))["key"]
        for provider in ("fake", "fakestream"):
            await post("/api/prices", {
                "model": f"{provider}/{MODEL}", "billing_type": "token", "currency": "USD",
                "unit": "1M", "effective_from": "2020-01-01", "source": "bench",
                "prices": PRICES})
    return key


async def main_async(args: argparse.Namespace, upstream: str, work: Path) -> int:
    db, journal = work / "meterline.db", work / "journal"
    (work / "meterline.toml").write_text(config_text(db, journal, upstream))
    os.environ.update({"METERLINE_ADMIN_TOKEN": ADMIN_TOKEN, "BENCH_FAKE_API_KEY": "fake"})
    # Imported from the source tree asked for (--meterline-src) rather than wherever it is
    # installed.
    sys.path.insert(0, str(args.meterline_src))
    from meterline.api.app import create_app
    from meterline.api.factory import tune_garbage_collector
    from meterline.config import load_config

    app = create_app(load_config(work / "meterline.toml"))
    profile = cProfile.Profile() if args.profile else None
    rows = []
    async with app.router.lifespan_context(app):
        key = await setup(app)
        # The metering refresh and this setup made objects that live as long as the app.
        tune_garbage_collector()
        driver = Driver(app, key)
        for mode in args.modes:
            for _ in range(2):  # warm-up: connection pools, caches
                await driver.call(mode, "warm-up")
            for concurrency in args.concurrency:
                last = mode == args.modes[-1] and concurrency == args.concurrency[-1]
                result = await cell(driver, db, mode, concurrency, args.calls,
                                    profile if last else None)
                rows.append((mode, concurrency, result))
    print(f"{'mode':<7}{'conc':>5}{'calls':>7}{'loop cpu ms/1000':>18}"
          f"{'process cpu ms/1000':>21}{'calls/s':>9}")
    for mode, concurrency, result in rows:
        print(f"{mode:<7}{concurrency:>5}{args.calls:>7}{result['loop_ms']:>18.0f}"
              f"{result['process_ms']:>21.0f}{result['calls_s']:>9.0f}")
    print(f"\nload average before: {args.load}; after: {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} cores); loop cpu: the event-loop thread's CPU time (requests); "
          "process cpu: every thread's, the drainer writing the ledger included; meterline "
          f"from {Path(sys.modules['meterline'].__file__ or '?').parent.parent}")
    if driver.failures:
        print(f"failed calls: {len(driver.failures)} ({driver.failures[0]})", file=sys.stderr)
        return 1
    if profile is not None:
        profile.dump_stats(args.profile)
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(25)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="cProfile the event-loop thread during the last cell")
    parser.add_argument("--meterline-src", type=Path, default=REPO, metavar="DIR",
                        help="source tree to import meterline from (a scratch copy with a "
                             "change, to compare)")
    parser.add_argument("--python-tools", action="store_true",
                        help="the Python stand-in upstream even where nginx is installed")
    args = parser.parse_args(argv)
    if args.calls < 1 or any(c < 1 for c in args.concurrency):
        parser.error("--calls and --concurrency must be at least 1")
    args.load = f"{os.getloadavg()[0]:.2f}"
    work = Path(tempfile.mkdtemp(prefix="meterline-inprocess-"))
    nginx = None if args.python_tools else find_binary("nginx")
    port = free_port()
    upstream_child = (start_nginx(nginx, work, port) if nginx
                      else start_python(work, port))
    try:
        runner: Callable[[], Awaitable[int]] = lambda: main_async(  # noqa: E731
            args, f"http://127.0.0.1:{port}", work)
        try:
            import uvloop
            return uvloop.run(runner())
        except ImportError:
            return asyncio.run(runner())
    finally:
        upstream_child.stop()
        shutil.rmtree(work, ignore_errors=True)
        assert threading.main_thread() is threading.current_thread()


if __name__ == "__main__":
    sys.exit(main())
