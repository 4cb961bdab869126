"""How long ``Journal.append`` takes for a ~1 KB gateway record (not a test; run it by hand):

    python tests/gateway/bench_journal_append.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from meterline.gateway.journal import Journal, encode


def record(i: int) -> dict[str, object]:
    now = datetime.now(UTC)
    line = {"meter": "input_tokens", "quantity": Decimal("1234"), "unit": "token",
            "unit_price": Decimal("0.15"), "per": 1_000_000, "amount": Decimal("0.0001851")}
    return {"row": {"request_id": f"req_{i:016x}", "tenant_id": "acme", "event_id": f"ev_{i}",
                    "user_id": "alice", "key_id": "key_123", "endpoint": "chat.completions",
                    "source": "gateway", "status": "success", "occurred_at": now,
                    "recorded_at": now, "provider": "openai", "model": "gpt-4o-mini",
                    "input_tokens": 1234, "output_tokens": 456, "cost": Decimal("0.000459"),
                    "currency": "USD", "billed_cost": Decimal("0.000459"), "latency_ms": 812,
                    "tags": ["prod", "search"], "metadata": {"purpose": "x" * 150}},
            "lines": [line, {**line, "meter": "output_tokens"}]}


BLOCK = 10_000


def blocks(call: Callable[[int], object], n: int) -> tuple[float, float]:
    """Median and best µs per call over blocks of BLOCK calls (robust to a noisy machine)."""
    times = []
    for start in range(0, n - BLOCK + 1, BLOCK):
        began = time.perf_counter()
        for i in range(start, start + BLOCK):
            call(i)
        times.append((time.perf_counter() - began) / BLOCK * 1e6)
    return statistics.median(times), min(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    records = [record(i) for i in range(1000)]
    print(f"record: {len(encode(records[0]))} bytes")
    with tempfile.TemporaryDirectory() as directory:
        journal = Journal(Path(directory))
        for r in records:  # warm up, open the segment
            journal.append(r)
        encode_us = blocks(lambda i: encode(records[i % 1000]), n)
        append_us = blocks(lambda i: journal.append(records[i % 1000]), n)

        def worker() -> None:
            for i in range(n // 4):
                journal.append(records[i % 1000])

        threads = [threading.Thread(target=worker) for _ in range(4)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        threaded_us = (time.perf_counter() - started) / n * 1e6
        journal.close()
    print(f"per call, median (best) of {n // BLOCK} blocks of {BLOCK}: "
          f"encode {encode_us[0]:.2f} ({encode_us[1]:.2f}) µs, "
          f"append {append_us[0]:.2f} ({append_us[1]:.2f}) µs; "
          f"4 threads appending: {threaded_us:.2f} µs per append, wall clock")


if __name__ == "__main__":
    main()
