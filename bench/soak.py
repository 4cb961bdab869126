"""Soak benchmark: does meterline stay flat under hours of ordinary traffic?

Starts the simulated upstream (``python -m meterline.simulator``) and ``meterline serve`` (one
worker, a fresh SQLite file and journal in a temporary directory) as their own processes,
drives a fixed rate of chat calls through the gateway — streamed and not, mixed — for the
whole run, and every ``--sample`` seconds prints one row: the calls completed in that window,
their errors, latency percentiles, the server's resident memory (RSS, its whole process
group) and the journal's backlog. At the end it waits for the journal to drain, checks that
every successful call reached the ledger, and prints a verdict: the memory growth slopes (a
least-squares line through the RSS samples after warm-up, and through the second half of the
run, which the verdict judges), the errors, and the metering check. It exits 1 on a warning.

    python bench/soak.py --minutes 10 [--rate 20] [--stream-share 0.5] [--sample 10]
    python bench/soak.py --seconds 5 --sample 1        # smoke run (tests/test_benchmarks.py)

The load is open-loop: call i starts at ``i / rate`` seconds whatever the earlier calls do, so
a server that slows down shows as rising latency and calls in flight (at most
``--max-in-flight``; a call that would exceed it is counted ``late`` and skipped, not queued),
not as a lower rate. The machine's other load changes the latencies; the memory slope and the
error count are what the soak is for. ``--output FILE`` also writes the table and verdict as
markdown (bench/results/soak.md holds a full run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "gateway"))

from procs import Child, free_port, start_child, wait_until  # noqa: E402

ADMIN_TOKEN = "soak-admin-token"
UPSTREAM_KEY = "sk-soak-upstream"
MODEL = "openai/gpt-5-nano"
PRICES = {"input_tokens": "0.05", "cached_input_tokens": "0.005", "output_tokens": "0.4"}
#: The share of the run treated as warm-up (imports, pools, first allocations) and left out
#: of the first memory slope.
WARMUP_SHARE = 0.2
#: The verdict judges the slope of the run's second half: caches that fill as the database
#: grows (SQLite's page cache, 2 MB per pooled connection) make the first minutes climb and
#: then level off, where a leak keeps its slope.
SETTLED_SHARE = 0.5
#: Memory growth in the second half above which the verdict warns, in MB per hour (at 20
#: calls/s, 20 MB/hour is about 280 bytes a call).
SLOPE_WARN_MB_PER_HOUR = 20.0


@dataclass
class Window:
    """The calls that completed in one sampling window."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    late: int = 0


@dataclass
class Sample:
    at: float
    calls: int
    errors: int
    late: int
    rate: float
    p50: float
    p95: float
    p99: float
    worst: float
    rss_mb: float
    in_flight: int
    pending: int | None


@dataclass
class Totals:
    started: int = 0
    ok: int = 0
    errors: int = 0
    late: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


# --- the processes -----------------------------------------------------------------------------

def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in process group ``pgid`` (the server and any worker
    it forked), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])  # kB
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def start_upstream(workdir: Path) -> tuple[Child, str]:
    port = free_port()
    child = start_child("simulator", [sys.executable, "-m", "meterline.simulator", "--port",
                                      str(port), "--require-key", UPSTREAM_KEY],
                        workdir / "simulator.log", env=_env(), cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/v1/models", timeout=2).status_code == 401, 60, child)
    return child, url


def start_meterline(workdir: Path, upstream: str) -> tuple[Child, str]:
    config = workdir / "meterline.toml"
    config.write_text(f"""\
reporting_currency = "USD"

[database]
url = "sqlite:///{workdir / 'meterline.db'}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{upstream}/v1"
api_key_env = "SOAK_UPSTREAM_KEY"
timeout_seconds = 30

[gateway]
journal_dir = "{workdir / 'journal'}"
""")
    port = free_port()
    env = _env() | {"METERLINE_CONFIG": str(config), "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN,
                    "SOAK_UPSTREAM_KEY": UPSTREAM_KEY}
    child = start_child("meterline", [sys.executable, "-m", "meterline.cli", "serve", "--port",
                                      str(port), "--workers", "1"],
                        workdir / "server.log", env=env, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, 120, child)
    return child, base


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def admin(base: str, method: str, path: str, **kwargs: object) -> dict[str, object]:
    answer = httpx.request(method, f"{base}{path}", timeout=60,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                           **kwargs)  # type: ignore[arg-type]
    if answer.status_code >= 400:
        raise RuntimeError(f"meterline {method} {path}: {answer.status_code} {answer.text}")
    found: dict[str, object] = answer.json()
    return found


def setup(base: str) -> str:
    """A tenant, its key and the model's price; returns the key."""
    admin(base, "POST", "/api/tenants", json={"name": "soak", "currency": "USD"})
    key = str(admin(base, "POST", "/api/keys", json={"tenant": "soak"})["key"])
    admin(base, "POST", "/api/prices", json={
        "model": MODEL, "billing_type": "token", "currency": "USD", "unit": "1M",
        "effective_from": "2020-01-01", "prices": PRICES})
    return key


def journal_pending(base: str) -> int | None:
    try:
        body = httpx.get(f"{base}/readyz", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return None
    pending = body.get("journal", {}).get("pending")
    return pending if isinstance(pending, int) else None


# --- the load ----------------------------------------------------------------------------------

def body(index: int, stream: bool) -> bytes:
    # A prompt that differs a little per call (as real traffic does), a modest answer.
    words = 8 + index % 24
    return json.dumps({"model": MODEL, "stream": stream, "max_tokens": 64,
                       "messages": [{"role": "user", "content": " ".join(
                           ["soak"] * words) + " [[sim tokens=32]]"}]}).encode()


async def one_call(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                   index: int, stream: bool, window: list[Window], totals: Totals) -> None:
    began = time.perf_counter()
    try:
        async with session.post(url, data=body(index, stream), headers=headers) as answer:
            raw = await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        totals.error(exc.__class__.__name__)
        window[0].errors += 1
        return
    elapsed = time.perf_counter() - began
    problem = None
    if status != 200:
        problem = f"HTTP {status}"
    elif stream:
        if not raw.rstrip().endswith(b"data: [DONE]") or b'"error"' in raw:
            problem = "broken stream"
    elif b'"choices"' not in raw:
        problem = "answer without choices"
    if problem is not None:
        totals.error(problem)
        window[0].errors += 1
        return
    totals.ok += 1
    window[0].latencies.append(elapsed)


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def drive(args: argparse.Namespace, base: str, key: str, server: Child,
                duration: float) -> tuple[list[Sample], Totals]:
    url = f"{base}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    totals = Totals()
    window = [Window()]
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        window_start = started
        next_sample = started + args.sample
        index = 0
        while True:
            now = time.perf_counter()
            if now - started >= duration:
                break
            if now >= next_sample:
                samples.append(await sample(window[0], now - started, now - window_start,
                                            server, base, len(in_flight)))
                print_row(samples[-1])
                window[0] = Window()
                window_start = now
                next_sample += args.sample
            due = started + index / args.rate
            if now < due:
                await asyncio.sleep(min(due - now, max(0.0, next_sample - now)))
                continue
            # Exactly the share asked for, spread evenly: 0.5 streams every other call.
            stream = int((index + 1) * args.stream_share) > int(index * args.stream_share)
            if len(in_flight) >= args.max_in_flight:
                totals.late += 1
                window[0].late += 1
            else:
                totals.started += 1
                task = asyncio.create_task(one_call(session, url, headers, index, stream,
                                                    window, totals))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            index += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=120)
        now = time.perf_counter()
        if window[0].latencies or window[0].errors or not samples:
            samples.append(await sample(window[0], now - started, now - window_start, server,
                                        base, len(in_flight)))
            print_row(samples[-1])
    return samples, totals


async def sample(window: Window, at: float, span: float, server: Child, base: str,
                 in_flight: int) -> Sample:
    ordered = sorted(window.latencies)
    pending = await asyncio.to_thread(journal_pending, base)
    return Sample(at=at, calls=len(ordered), errors=window.errors, late=window.late,
                  rate=len(ordered) / span if span > 0 else 0.0,
                  p50=1000 * percentile(ordered, 0.50), p95=1000 * percentile(ordered, 0.95),
                  p99=1000 * percentile(ordered, 0.99), worst=1000 * (ordered[-1] if ordered
                                                                      else 0.0),
                  rss_mb=group_rss_mb(server.pid), in_flight=in_flight, pending=pending)


# --- output ------------------------------------------------------------------------------------

HEADER = ("t_s", "calls", "errors", "late", "calls/s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
          "rss_mb", "in_flight", "pending")


def row_values(s: Sample) -> list[str]:
    return [f"{s.at:.0f}", str(s.calls), str(s.errors), str(s.late), f"{s.rate:.1f}",
            f"{s.p50:.1f}", f"{s.p95:.1f}", f"{s.p99:.1f}", f"{s.worst:.1f}",
            f"{s.rss_mb:.1f}", str(s.in_flight), "-" if s.pending is None else str(s.pending)]


def _line(values: list[str] | tuple[str, ...]) -> str:
    return f"{values[0]:<6}" + "".join(f"{v:>10}" for v in values[1:])


def print_header() -> None:
    print(_line(HEADER), flush=True)


def print_row(s: Sample) -> None:
    print(_line(row_values(s)), flush=True)


def slope_mb_per_hour(samples: list[Sample], skip: float) -> tuple[float, float, int]:
    """The least-squares slope of RSS over time (MB/hour) without the first ``skip`` share of
    the run, the growth from the first sample used to the last (MB), and the samples used."""
    if not samples:
        return 0.0, 0.0, 0
    cut = samples[-1].at * skip
    used = [s for s in samples if s.at >= cut] or samples
    if len(used) < 2:
        return 0.0, 0.0, len(used)
    xs = [s.at for s in used]
    ys = [s.rss_mb for s in used]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread \
        if spread else 0.0
    return slope * 3600, ys[-1] - ys[0], len(used)


@dataclass
class Verdict:
    lines: list[str]
    ok: bool


def verdict(samples: list[Sample], totals: Totals, metered: int | None,
            duration: float) -> Verdict:
    slope, growth, used = slope_mb_per_hour(samples, WARMUP_SHARE)
    late, late_growth, late_used = slope_mb_per_hour(samples, SETTLED_SHARE)
    rate = totals.ok / duration if duration else 0.0
    per_call = late * 1e6 / 3600 / rate if rate else 0.0
    all_latencies_p99 = max((s.p99 for s in samples), default=0.0)
    memory_ok = late <= SLOPE_WARN_MB_PER_HOUR
    lines = [
        f"calls: {totals.started} started, {totals.ok} ok, {totals.errors} errors"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(totals.error_kinds.items()))})"
           if totals.error_kinds else "") + f", {totals.late} late (skipped)",
        f"metered: {metered if metered is not None else '?'} ledger records for {totals.ok} "
        f"successful calls" + ("" if metered == totals.ok else "  <-- MISMATCH"),
        f"memory: {samples[0].rss_mb:.1f} MB at the first sample, {samples[-1].rss_mb:.1f} MB "
        f"at the last; after warm-up ({used} samples) {slope:+.1f} MB/hour ({growth:+.1f} MB); "
        f"second half ({late_used} samples) {late:+.1f} MB/hour ({late_growth:+.1f} MB, "
        f"{per_call:+.0f} bytes a call)" if samples else "memory: no samples",
        f"worst window p99: {all_latencies_p99:.1f} ms",
    ]
    if duration < 120:
        lines.append("verdict: smoke run (too short to judge memory)"
                     + ("" if totals.errors == 0 and metered == totals.ok else "; ERRORS"))
        return Verdict(lines, totals.errors == 0 and metered == totals.ok)
    ok = memory_ok and totals.errors == 0 and metered == totals.ok
    problems = []
    if not memory_ok:
        problems.append(f"memory grew {late:+.1f} MB/hour in the second half "
                        f"(> {SLOPE_WARN_MB_PER_HOUR:g}); a longer run tells a cache still "
                        "filling (it levels off) from a leak (it keeps its slope)")
    if totals.errors:
        problems.append(f"{totals.errors} errors")
    if metered != totals.ok:
        problems.append("not every call metered")
    lines.append("verdict: " + (f"PASS: memory levels off (second half {late:+.1f} MB/hour, "
                                f"at most {SLOPE_WARN_MB_PER_HOUR:g}), no errors, every call "
                                "metered" if ok else "WARN: " + "; ".join(problems)))
    return Verdict(lines, ok)


def markdown(samples: list[Sample], result: Verdict, args: argparse.Namespace,
             duration: float) -> str:
    out = [f"# Soak: {duration / 60:g} minutes at {args.rate:g} calls/s "
           f"({args.stream_share:.0%} streamed)", "",
           f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, "
           f"{os.cpu_count()} CPUs, Python {platform.python_version()}; one worker, SQLite, "
           "the simulated upstream as its own process.", "",
           "| " + " | ".join(HEADER) + " |", "|" + "---:|" * len(HEADER)]
    out += ["| " + " | ".join(row_values(s)) + " |" for s in samples]
    out += ["", *(f"- {line}" for line in result.lines), ""]
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=None, help="run length (default 10)")
    length.add_argument("--seconds", type=float, default=None, help="run length in seconds")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--stream-share", type=float, default=0.5,
                        help="share of calls streamed (0..1)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds per table row")
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the table and verdict as markdown here")
    args = parser.parse_args()
    duration = args.seconds if args.seconds is not None else 60 * (args.minutes or 10.0)
    if duration <= 0 or args.rate <= 0 or args.sample <= 0 or not 0 <= args.stream_share <= 1:
        parser.error("length, --rate and --sample must be positive, --stream-share in 0..1")

    with tempfile.TemporaryDirectory(prefix="meterline-soak-") as scratch:
        workdir = Path(scratch)
        upstream, up_url = start_upstream(workdir)
        server: Child | None = None
        try:
            server, base = start_meterline(workdir, up_url)
            key = setup(base)
            print(f"soak: {duration:g} s at {args.rate:g} calls/s, {args.stream_share:.0%} "
                  f"streamed, a row every {args.sample:g} s (meterline pid {server.pid})",
                  flush=True)
            print_header()
            samples, totals = asyncio.run(drive(args, base, key, server, duration))
            if not server.alive():
                raise RuntimeError(f"meterline died during the run:\n{server.tail()}")
            metered = ledger_calls(base)
        except BaseException:
            if server is not None:
                print(server.tail(), file=sys.stderr)
            raise
        finally:
            if server is not None:
                server.stop()
            upstream.stop()
    print()
    result = verdict(samples, totals, metered, duration)
    for line in result.lines:
        print(line)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown(samples, result, args, duration))
        print(f"written to {args.output}")
    return 0 if result.ok else 1


def ledger_calls(base: str) -> int | None:
    """The records in the ledger once the journal has drained (at most two minutes)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal_pending(base) == 0:
            break
        time.sleep(0.2)
    summary = admin(base, "GET", "/api/summary", params={"tenant": "soak"})
    calls = summary.get("calls")
    return calls if isinstance(calls, int) else None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        sys.exit(2)
