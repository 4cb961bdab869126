"""Benchmark: what the full price catalog (curated + genai-prices, about 2,300 models) costs —
the start of `meterline serve` (first start on an empty database, and a restart), and a quote
(name resolution + version in force + rating) in process and over HTTP — on SQLite and
PostgreSQL.

    python bench/prices.py [--quotes 5000] [--backends sqlite postgresql]

Prints one table. Goals (issue 11): start under 3 s, quote p50 under 0.2 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meterline.domain.rating import rate
from meterline.domain.usage import Usage
from meterline.services.bootstrap import prepare_database
from meterline.store import pricing
from meterline.store.engine import make_engine

PG = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN = "bench-admin-token"


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    name = f"bench_prices_{os.getpid()}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_start(url: str, folder: str) -> tuple[float, subprocess.Popen[bytes], int]:
    """Seconds from `meterline serve` to its first answer on /readyz."""
    port = free_port()
    # An installed server has its bytecode compiled (pip compiles on install): without the
    # cache every start would compile meterline's modules again, which is not what users see.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"METERLINE_DATABASE_URL": url, "METERLINE_ADMIN_TOKEN": ADMIN,
                "METERLINE_JOURNAL_DIR": f"{folder}/journal-{port}"})
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "meterline", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - started, process, port
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"meterline serve exited with {process.returncode}")
        time.sleep(0.01)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(backend: str, quotes: int) -> dict[str, Any]:
    row: dict[str, Any] = {"backend": backend}
    with database(backend) as url, tempfile.TemporaryDirectory() as folder:
        row["first start s"], process, _ = serve_start(url, folder)
        stop(process)
        row["restart s"], process, port = serve_start(url, folder)
        try:
            engine = make_engine(url)
            prepare_database(engine)
            with engine.connect() as conn:
                loaded = time.perf_counter()
                book = pricing.load_pricebook(conn)
                row["book load ms"] = (time.perf_counter() - loaded) * 1000
            row["models"] = len(book)
            names = [name for name in book.models()
                     if book.versions(name)[0].billing_type.value == "token"]
            rng = random.Random(7)
            usage = Usage.parse({"input_tokens": 1200, "cached_input_tokens": 200,
                                 "output_tokens": 300})
            now = datetime.now(UTC)
            samples = []
            for _ in range(quotes):
                name = rng.choice(names)
                began = time.perf_counter()
                # A version that does not price these meters raises: still timed.
                with contextlib.suppress(Exception):
                    rate(usage, book.version_at(book.resolve(name), now, "USD"), now)
                samples.append((time.perf_counter() - began) * 1000)
            row["quote p50 ms"] = statistics.median(samples)
            row["quote p99 ms"] = percentile(samples, 0.99)
            http = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              headers={"Authorization": f"Bearer {ADMIN}"}) as client:
                for _ in range(min(quotes, 1000)):
                    name = rng.choice(names)
                    began = time.perf_counter()
                    client.post("/v1/billing/quote", json={
                        "model": name, "usage": {"input_tokens": 1200, "output_tokens": 300}})
                    http.append((time.perf_counter() - began) * 1000)
            row["HTTP quote p50 ms"] = statistics.median(http)
            engine.dispose()
        finally:
            stop(process)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=5000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    rows = [run(backend, args.quotes) for backend in args.backends]
    columns = ["backend", "models", "first start s", "restart s", "book load ms",
               "quote p50 ms", "quote p99 ms", "HTTP quote p50 ms"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                for c in columns) + " |")


if __name__ == "__main__":
    main()
