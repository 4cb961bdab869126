"""Every benchmark script runs once at a tiny size, so a benchmark that breaks fails CI.

Each runs as its own process, as a person would run it, and must exit 0 and print its table:
the header and a row for each cell asked for, with no errors and (for the gateway) every call
metered. The numbers themselves mean nothing at these sizes and are never checked; they come
only from full runs (README, Benchmarks). The gateway benchmark runs with ``--quick``: without
nginx and wrk it uses its Python stand-ins, and it never needs LiteLLM or py-spy (benchmark-only
dependencies, bench/requirements.txt), so nothing is installed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
#: A hang guard only (the benchmarks take seconds at these sizes), never a speed check.
HANG = 600


def run_bench(script: str, *argv: str) -> list[str]:
    """Run ``bench/<script>`` with ``argv``; its stdout as lines, once it has exited 0."""
    env = dict(os.environ)
    if "METERLINE_TEST_PG" in env:  # the PostgreSQL server the other tests use, if set
        env.setdefault("METERLINE_BENCH_PG", env["METERLINE_TEST_PG"])
    done = subprocess.run([sys.executable, str(BENCH / script), *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, (f"bench/{script} exited {done.returncode}\n"
                                  f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout.splitlines()


def table(lines: list[str], header: str) -> tuple[list[str], list[list[str]]]:
    """The header line starting with ``header`` (split in words) and the rows under it."""
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    assert start is not None, f"no table header {header!r} in:\n" + "\n".join(lines)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if not line.startswith(("-", "|-", "|--")):
            rows.append(line.split())
    return lines[start].split(), rows


def test_ingest() -> None:
    lines = run_bench("ingest.py", "--events", "1000", "--clients", "2", "--workers", "1")
    head, rows = table(lines, "backend")
    assert head[:6] == ["backend", "workers", "clients", "events", "seconds", "events/s"]
    assert [row[0] for row in rows] == ["sqlite", "postgresql"]
    assert head[-2:] == ["server", "ms/1k"]
    for row in rows:
        assert len(row) == 10, row
        assert row[3] == "1000"
        assert float(row[-1]) > 0, row  # the server's CPU per 1000 events
        assert row[head.index("errors")] == "0", row


def test_limits() -> None:
    lines = run_bench("limits.py", "--calls", "40", "--concurrency", "4",
                      "--lease-calls", "8", "1")
    head, rows = table(lines, "database")
    assert head[:3] == ["database", "lease", "conc"] and "calls/s" in head
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("sqlite", "8", "4"), ("sqlite", "1", "4"),
        ("postgresql", "8", "4"), ("postgresql", "1", "4")]
    for row in rows:
        assert len(row) == 8, row  # calls/s, then reserve and settle p50 and p99: numbers
        assert all(float(value) >= 0 for value in row[3:]), row


def test_prices() -> None:
    lines = run_bench("prices.py", "--quotes", "50", "--backends", "sqlite")
    header = next(line for line in lines if line.startswith("| backend"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:3] == ["backend", "models", "first start s"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and line != header]
    assert [row[0] for row in rows] == ["sqlite"]
    assert len(rows[0]) == len(columns)
    assert int(rows[0][1]) > 1000  # the full catalog was loaded and quoted from


def test_gateway() -> None:
    lines = run_bench("gateway/run.py", "--quick", "--skip-litellm")
    assert "smoke run (--quick): not saved" in lines
    start = next(i for i, line in enumerate(lines) if line.startswith("target "))
    head = [h.strip() for h in lines[start].split("  ") if h.strip()]
    assert head[:4] == ["target", "mode", "conc", "req/s"]
    assert {"% floor", "+p50 floor", "p99 x floor", "max lag ms", "metered"} <= set(head)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        values = line.split(maxsplit=len(head) - 1)
        assert len(values) == len(head), line
        rows[(values[0], values[1])] = dict(zip(head, values, strict=True))
    assert set(rows) == {(target, mode) for target in ("direct", "floor", "meterline")
                         for mode in ("plain", "stream")}
    for (target, _), row in rows.items():
        assert row["errors"] == "0", row
        assert float(row["req/s"].rstrip("*")) > 0, row
        if target == "meterline":
            # Every call in the ledger, priced (wrk, where installed, cuts off up to one call
            # per connection at the end that the ledger still gets: run.py checks the bound).
            assert "!" not in row["metered"] and "unpriced" not in row["metered"], row
            records, calls = map(int, row["metered"].split("/"))
            assert 0 < calls <= records, row
            assert row["% floor"].endswith("%"), row
            float(row["+p50 floor"])
            assert row["p99 x floor"].endswith("x"), row
        if target in ("floor", "meterline"):
            assert float(row["max lag ms"]) >= 0, row


def test_soak() -> None:
    lines = run_bench("soak.py", "--seconds", "4", "--sample", "1", "--rate", "10")
    head, rows = table(lines, "t_s")
    assert head == ["t_s", "calls", "errors", "late", "calls/s", "p50_ms", "p95_ms", "p99_ms",
                    "max_ms", "rss_mb", "in_flight", "pending"]
    assert rows, lines
    for row in rows:
        assert len(row) == len(head), row
        assert row[head.index("errors")] == "0", row
        assert float(row[head.index("rss_mb")]) > 0, row
    assert sum(int(row[head.index("calls")]) for row in rows) > 0
    # Every call answered is in the ledger (soak.py waits for the journal to drain).
    metered = next(line for line in lines if line.startswith("metered: "))
    assert "MISMATCH" not in metered, metered
    assert any(line.startswith("verdict: smoke run") for line in lines), lines


def test_gateway_inprocess() -> None:
    lines = run_bench("gateway/inprocess.py", "--calls", "20", "--concurrency", "1", "2",
                      "--python-tools")
    head, rows = table(lines, "mode")
    assert head == ["mode", "conc", "calls", "loop", "cpu", "ms/1000", "process", "cpu",
                    "ms/1000", "calls/s"]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("plain", "1", "20"), ("plain", "2", "20"), ("stream", "1", "20"), ("stream", "2", "20")]
    for row in rows:
        assert len(row) == 6, row
        assert all(float(value) > 0 for value in row[3:]), row


def test_dashboard() -> None:
    lines = run_bench("dashboard.py", "--records", "3000", "--tenants", "3", "--runs", "2")
    head, rows = table(lines, "page")
    assert head == ["page", "median_ms", "p95_ms", "status", "<300ms"]
    assert [row[0] for row in rows] == [
        "overview_7d", "overview_30d", "overview_90d", "usage_first_page", "usage_10th_page",
        "usage_one_tenant", "call_detail", "bills", "bill", "reconcile", "limits", "keys",
        "prices"]
    for row in rows:
        assert len(row) == len(head), row
        assert float(row[1]) > 0 and float(row[2]) > 0, row
        assert row[3] == "200", row  # every page rendered (its speed is not checked here)
