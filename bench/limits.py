"""Benchmark: what budgets and quotas add to a call — reserve (before the upstream call, on the
response path) and settle (records written in batches with their holds released, as the
journal drainer does, off the response path; per record) — p50 and p99, on SQLite and
PostgreSQL, at concurrency 1 and 64.

Each call holds one key budget, one tenant budget and a text-token quota, the common case of
a tenant on a plan with a spending cap per key. Reserve goes through the gateway's admission:
from a lease in memory when one has room, else to the database (``--lease-calls 1``: every
call to the database, as without leases).

    python bench/limits.py [--calls 2000] [--concurrency 1 64] [--lease-calls 64 1]
                           [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meterline.config import LimitsConfig
from meterline.domain.budgets import DEFAULT_THRESHOLDS, Scope
from meterline.domain.quotas import Grant
from meterline.domain.usage import Usage
from meterline.gateway.admission import LEASE_SWEEP_SECONDS, Admission
from meterline.gateway.recorder import ZERO_USAGE, Call
from meterline.services.metering import set_usage_columns
from meterline.store import accounts, budgets, ledger, quotas
from meterline.store.budgets import Hold
from meterline.store.engine import make_engine
from meterline.store.ledger import NewRecord
from meterline.store.migrate import upgrade
from meterline.store.schema import usage_records

#: What each call used (what its record says; 420 of the 600 text tokens reserved).
USAGE = Usage.parse({"input_tokens": 120, "output_tokens": 300})
PG_SERVER = os.environ.get("METERLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def prepare(url: str, lease_calls: int) -> tuple[Admission, list[Hold], str]:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
        _, key = accounts.create_key(conn, "acme")
        made = [budgets.save_budget(conn, scope, period="month", mode="block",
                                    amount=Decimal(10**9), currency="USD",
                                    thresholds=DEFAULT_THRESHOLDS, timezone="UTC")
                for scope in (Scope(key=key.id, tenant="acme"), Scope(tenant="acme"))]
        quotas.add_grant(conn, Grant("qg_bench", "acme", None, "text_token", "package",
                                     10**14, 0, None, None, now, None, None))
    holds = [Hold(b, *b.bounds(now), Decimal("0.002")) for b in made]
    return Admission(engine, LimitsConfig(lease_calls=lease_calls)), holds, key.id


def record(request_id: str, key_id: str) -> NewRecord:
    """The ledger row of one call, built as the gateway's recorder builds it: every column,
    every meter at zero, then the call's usage (so a meter added later needs no change here)."""
    row: dict[str, Any] = {c.name: None for c in usage_records.columns}
    now = datetime.now(UTC)
    row.update({"request_id": request_id, "tenant_id": "acme", "event_id": request_id,
                "key_id": key_id, "provider": "openai", "model": "openai/gpt-5-nano",
                "source": "gateway", "status": "success", "pricing": "priced",
                "occurred_at": now, "recorded_at": now,
                "cost": Decimal("0.000123"), "currency": "USD",
                "billed_cost": Decimal("0.000123"), "billed_currency": "USD",
                "fx_missing": False, "estimated": False, "cost_mismatch": False})
    row.update(ZERO_USAGE)
    set_usage_columns(row, USAGE)
    return NewRecord(row)


def run(url: str, calls: int, concurrency: int, lease_calls: int) -> dict[str, list[float]]:
    admission, holds, key_id = prepare(url, lease_calls)
    engine = admission.engine
    timings: dict[str, list[float]] = {"reserve": [], "settle": []}
    pending: queue.Queue[NewRecord | None] = queue.Queue()

    failures: list[BaseException] = []

    def drain() -> None:
        # As the gateway's drainer does: whatever has accumulated, in one transaction.
        done = False
        while not done:
            batch = [pending.get()]
            while not pending.empty() and len(batch) < 1000:
                batch.append(pending.get())
            done = batch[-1] is None
            records = [r for r in batch if r is not None]
            if records and not failures:
                started = time.perf_counter()
                try:
                    with engine.begin() as conn:
                        ledger.write_records(conn, records)
                except Exception as exc:  # reported by run(); keep taking records until None
                    failures.append(exc)
                    continue
                admission.settled([r.row["request_id"] for r in records])
                per_record = (time.perf_counter() - started) * 1000 / len(records)
                timings["settle"].extend([per_record] * len(records))
            time.sleep(0.05)

    def sweep() -> None:
        # As every gateway process does: leases that are due are sealed, finished ones closed.
        while not swept.wait(LEASE_SWEEP_SECONDS):
            admission.sweep()
        admission.close()

    def one(_: int) -> None:
        if failures:
            return  # the drain failed: the run is lost, stop making calls
        request_id = "req_" + secrets.token_hex(8)
        call = Call(request_id, "acme", "USD", key_id, None, "openai/gpt-5-nano",
                    "openai/gpt-5-nano", "openai", "chat", datetime.now(UTC))
        started = time.perf_counter()
        refused = admission._reserve(call, holds, {"text_token": 600})
        timings["reserve"].append((time.perf_counter() - started) * 1000)
        if refused is not None:
            raise RuntimeError(f"call refused: {refused}")
        pending.put(record(request_id, key_id))

    swept = threading.Event()
    workers = [threading.Thread(target=drain), threading.Thread(target=sweep)]
    for worker in workers:
        worker.start()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(calls)))
    finally:
        pending.put(None)
        workers[0].join()
        swept.set()
        workers[1].join()
    if failures:
        # The records were not written, so their holds stay: that is what this run reports.
        raise RuntimeError(f"settling failed: {failures[0]}") from failures[0]
    with engine.connect() as conn:
        left = quotas.reserved_of(conn, "acme").get("text_token", 0)
    engine.dispose()
    if left != 0:
        raise RuntimeError(f"{left} quota units still held after the run")
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--lease-calls", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"{'database':<11}{'lease':>6}{'conc':>5}{'calls/s':>9}{'reserve p50':>13}"
          f"{'reserve p99':>13}{'settle p50':>12}{'settle p99':>12}"
          "   (ms; settle per record of a batch)")
    cells = [(kind, lease, concurrency) for kind in args.backends
             for lease in args.lease_calls for concurrency in args.concurrency]
    for kind, lease_calls, concurrency in cells:
        with tempfile.TemporaryDirectory() as directory:
            schema = f"bench_{secrets.token_hex(4)}"
            if kind == "sqlite":
                url = f"sqlite:///{directory}/bench.db"
            else:
                with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                    conn.execute(f'CREATE SCHEMA "{schema}"')
                url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
            try:
                started = time.perf_counter()
                timings = run(url, args.calls, concurrency, lease_calls)
                rate = args.calls / (time.perf_counter() - started)
            finally:
                if kind == "postgresql":
                    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        reserve, settle = timings["reserve"], timings["settle"]
        print(f"{kind:<11}{lease_calls:>6}{concurrency:>5}{rate:>9.0f}"
              f"{statistics.median(reserve):>13.3f}"
              f"{percentile(reserve, 0.99):>13.2f}{statistics.median(settle):>12.2f}"
              f"{percentile(settle, 0.99):>12.2f}")


if __name__ == "__main__":
    main()
