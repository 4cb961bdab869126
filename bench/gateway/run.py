"""Gateway benchmark: direct calls vs the floor vs meterline vs LiteLLM proxy, against one fast
fake upstream.

nginx answers OpenAI chat completions with fixed bodies (the upstream is never the bottleneck);
wrk drives non-streamed and streamed chat at each concurrency against the upstream directly,
the floor (floor.py: uvicorn + raw ASGI + aiohttp pass-through, no auth, no metering: what
Python itself allows), meterline (auth, metering and journal on, one worker, SQLite) and
LiteLLM proxy (one worker, no database). Prints requests/s, p50/p99 latency, the p50 each proxy
adds over direct, meterline's req/s and latency as a share of the floor's, the worst event-loop
lag of the floor and meterline during each cell, errors and - for meterline - how many calls
reached the ledger, and saves the table as markdown in bench/results/gateway-<date>.md.

    python3 bench/gateway/run.py [--duration 10] [--concurrency 1 32 128] [--skip-litellm]
    python3 bench/gateway/run.py --quick --skip-litellm     # smoke run: seconds, nothing saved

Needs nginx and wrk (apt-get install -y nginx wrk); ``--quick`` falls back to Python stand-ins
for both when they are missing (``--python-tools`` forces them): the run then shows that the
benchmark works, and its numbers mean nothing. LiteLLM is installed on first use into its own
virtualenv, bench/.venv-litellm, from bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

# Run as a script: this directory is on sys.path, so its modules import by name.
import pyspy
from fake_upstream import start_nginx, start_python
from loadgen import WrkResult, run_python, run_wrk, threads_for, write_script
from procs import Child, free_port, group_cpu_seconds, machine_cpu_seconds
from proxies import (
    MODES,
    REPO,
    Direct,
    Floor,
    LiteLLM,
    LiteLLMUnavailable,
    Meterline,
    litellm_version,
)

RESULTS = REPO / "bench" / "results"
TARGETS = ("direct", "floor", "meterline", "litellm")
INSTALL = "apt-get update && apt-get install -y nginx wrk"
#: The goals for meterline, one worker: absolute (issue 5) ...
GOAL_RPS_C32 = 2000.0
GOAL_ADDED_P50_C1_MS = 0.5
#: ... and against the floor in the same run (issue 17).
GOAL_FLOOR_SHARE_C32 = {"plain": 0.60, "stream": 0.50}
GOAL_FLOOR_ADDED_P50_C1_MS = 0.3
GOAL_FLOOR_P99_RATIO_C32 = 2.0
GOAL_MAX_LAG_MS = 20.0
#: --quick: the smoke run's sizes (CI runs it: a benchmark that breaks fails CI).
QUICK = {"duration": 1.0, "warmup": 0.0, "concurrency": [2]}
FULL = {"duration": 10.0, "warmup": 2.0, "concurrency": [1, 32, 128]}
#: Above this share of the machine used by other processes during a cell, the cell is marked.
OTHER_LOAD_WARN = 0.10
#: Above this share of the machine busy before the run, the run says its numbers are low.
BUSY_WARN = 0.15


@dataclass
class Cell:
    target: str
    mode: str
    concurrency: int
    result: WrkResult | None = None
    #: Ledger records for the cell's calls (meterline only): (records, priced).
    ledger: tuple[int, int] | None = None
    #: CPU seconds the target's processes used during the measured run.
    cpu_seconds: float | None = None
    #: Share of the machine used by processes other than wrk, nginx and the target while the
    #: cell was measured (another job on the machine makes the cell's numbers low).
    other_load: float | None = None
    #: The worst event-loop lag of the target's server during the cell (ms; probed targets).
    lag_ms: float | None = None
    note: str = ""

    @property
    def metered_ok(self) -> bool | None:
        """Every completed call is in the ledger and priced; at most one call per connection
        more (the ones wrk cut off when its time was up still reach the ledger)."""
        if self.ledger is None or self.result is None:
            return None
        records, priced = self.ledger
        done = self.result.requests
        return done <= records <= done + self.concurrency and priced == records


@dataclass
class Run:
    cells: list[Cell] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None

    def find(self, target: str, mode: str, concurrency: int) -> Cell | None:
        return next((c for c in self.cells if (c.target, c.mode, c.concurrency)
                     == (target, mode, concurrency) and c.result is not None), None)


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):  # nginx, when sbin is not on PATH
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def machine_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time used by others in the next ``seconds`` (0..1)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def version_of(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "?"


def meterline_revision(source: Path) -> str:
    where = "" if source == REPO else f" from {source}"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "meterline"], cwd=source,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?" + where
    if not rev:
        return "?" + where
    return f"{rev}{' (meterline/ modified)' if dirty else ''}{where}"


Target = Direct | Floor | Meterline | LiteLLM


def load(wrk: str | None, path: Path, url: str, body: bytes, headers: dict[str, str],
         concurrency: int, seconds: float) -> WrkResult:
    """One load run: wrk with a Lua script at ``path``.lua, or (``wrk`` None) the Python
    stand-in with its spec at ``path``.json."""
    if wrk is None:
        return run_python(url, path.with_suffix(".json"), body, headers, concurrency, seconds)
    script = write_script(path.with_suffix(".lua"), body, headers)
    return run_wrk(wrk, url, script, concurrency, seconds)


def lag_during(folder: Path, start: float, end: float, wait: float = 2.0) -> float | None:
    """The worst lag (ms) the probe wrote for windows overlapping ``start``..``end``
    (``time.monotonic()``), once it has written past ``end`` (at most ``wait`` s later)."""
    deadline = time.monotonic() + wait
    while True:
        windows = []
        for path in folder.glob("lag-*.txt"):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    first, last, worst = map(float, line.split())
                    windows.append((first, last, worst))
        if any(last >= end for _, last, _ in windows) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    inside = [worst for first, last, worst in windows if last > start and first < end]
    return max(inside) if inside else None


def measure(wrk: str | None, target: Target, mode: str, concurrency: int,
            args: argparse.Namespace, workdir: Path, nginx_pgid: int) -> Cell:
    cell = Cell(target.name, mode, concurrency)
    tag = f"bench-{mode}-c{concurrency}"
    body = target.body(mode)
    url = target.url(mode)
    stem = workdir / f"{target.name}-{mode}-{concurrency}"
    try:
        if args.warmup > 0:
            warm = f"warmup-{mode}-c{concurrency}"
            load(wrk, stem.with_name(stem.name + "-warm"), url, body, target.headers(warm),
                 concurrency, args.warmup)
            if isinstance(target, Meterline):  # the warm-up's records drain before measuring
                target.wait_metered(warm, 1, timeout=60)
        ours = (target.pgid, nginx_pgid) if target.pgid != nginx_pgid else (nginx_pgid,)
        before = [group_cpu_seconds(g) for g in ours]
        machine, children = machine_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        cell.result = load(wrk, stem, url, body, target.headers(tag), concurrency, args.duration)
        ended = time.monotonic()
        after = [group_cpu_seconds(g) for g in ours]
        wrk_used = resource.getrusage(resource.RUSAGE_CHILDREN)
        cell.cpu_seconds = after[0] - before[0]
        others = (machine_cpu_seconds() - machine - sum(after) + sum(before)
                  - (wrk_used.ru_utime - children.ru_utime)
                  - (wrk_used.ru_stime - children.ru_stime))
        # Over the whole load run, its start included (the Python load generator takes a while).
        cell.other_load = max(0.0, others) / (max(ended - began, cell.result.seconds)
                                              * (os.cpu_count() or 1))
        if target.lag_dir is not None:
            cell.lag_ms = lag_during(target.lag_dir, began, ended)
        if isinstance(target, Meterline):
            cell.ledger = target.wait_metered(tag, cell.result.requests, timeout=120)
    except (RuntimeError, httpx.HTTPError, sqlite3.Error) as exc:
        cell.note = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return cell


def progress(cell: Cell) -> None:
    r = cell.result
    if r is None:
        print(f"  {cell.target:<10}{cell.mode:<7}c={cell.concurrency:<4} failed: {cell.note}",
              flush=True)
        return
    extra = ""
    if cell.cpu_seconds is not None and r.requests:
        extra += f"  cpu {1000 * cell.cpu_seconds / r.requests:.3f} ms/req"
    if cell.other_load is not None and cell.other_load > OTHER_LOAD_WARN:
        extra += f"  (other processes used {100 * cell.other_load:.0f}% of the machine)"
    if cell.ledger is not None:
        extra += f"  ledger {cell.ledger[0]} ({cell.ledger[1]} priced)"
    if cell.lag_ms is not None:
        extra += f"  max loop lag {cell.lag_ms:.1f} ms"
    print(f"  {cell.target:<10}{cell.mode:<7}c={cell.concurrency:<4}{r.rps:>9.0f} req/s  "
          f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  errors {r.errors}{extra}", flush=True)


def run_target(name: str, wrk: str | None, upstream: str, nginx: Child,
               args: argparse.Namespace, workdir: Path, run: Run) -> None:
    print(f"{name}:", flush=True)
    target: Target
    lag_dir = None if args.no_lag else workdir / "lag" / name
    try:
        if name == "direct":
            target = Direct(upstream, nginx.pid)
        elif name == "floor":
            target = Floor(workdir, upstream, lag_dir)
        elif name == "meterline":
            target = Meterline(workdir, upstream, args.meterline_src, lag_dir, args.workers)
        else:
            target = LiteLLM(workdir, upstream)
    except (LiteLLMUnavailable, RuntimeError, OSError, httpx.HTTPError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        print(f"  unavailable: {reason}", flush=True)
        run.unavailable[name] = reason
        return
    try:
        for mode in args.modes:
            for concurrency in args.concurrency:
                cell = measure(wrk, target, mode, concurrency, args, workdir, nginx.pid)
                run.cells.append(cell)
                progress(cell)
        if isinstance(target, Meterline):
            check_ledger(target, run)
            if args.profile:
                try:
                    run.profile = profile(target, wrk, args, workdir)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"  profile failed: {exc}", flush=True)
    finally:
        target.stop()


def check_ledger(target: Meterline, run: Run) -> None:
    """A record read back through the admin API, and one cell counted through it too."""
    sample = target.sample_record()
    if sample:
        run.notes.append(
            f"meterline ledger sample (GET /api/usage?limit=1): model {sample.get('model')}, "
            f"status {sample.get('status')}, pricing {sample.get('pricing')}, usage "
            f"{sample.get('usage')}, cost {sample.get('cost')} {sample.get('currency')}, "
            f"price version {sample.get('price_version')}")
    for cell in run.cells:
        if cell.target == "meterline" and cell.ledger and cell.ledger[0] <= 10_000:
            tag = f"bench-{cell.mode}-c{cell.concurrency}"
            counted = target.api_count(tag)
            same = "matches" if counted == cell.ledger[0] else "DIFFERS FROM"
            completed = cell.result.requests if cell.result else "?"
            run.notes.append(f"meterline {cell.mode} c={cell.concurrency}: GET /api/usage?"
                             f"user={tag} returns {counted} records, which {same} the SQLite "
                             f"count ({cell.ledger[0]}); wrk completed {completed} calls")
            break


def profile(target: Meterline, wrk: str | None, args: argparse.Namespace,
            workdir: Path) -> str | None:
    """py-spy on the meterline server during an extra non-streamed run at concurrency 32 (not
    one of the measured cells: sampling costs CPU on a machine with few cores)."""
    spy = pyspy.find_pyspy()
    if spy is None:
        print("  --profile: py-spy not found (pip install py-spy)", flush=True)
        return None
    raw = args.output.with_name(args.output.stem + "-meterline-pyspy.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    seconds = max(args.duration, 5)
    print(f"  profiling meterline with py-spy for {seconds:g} s (plain, c=32) ...", flush=True)
    recorder = pyspy.start(spy, target.pid, seconds, raw, workdir / "py-spy.log")
    time.sleep(0.5)
    result = load(wrk, workdir / "profile", target.url("plain"), target.body("plain"),
                  target.headers("profile-plain-c32"), 32, seconds + 1)
    recorder.wait(timeout=seconds + 60)
    if not raw.exists():
        print(f"  py-spy wrote nothing: {(workdir / 'py-spy.log').read_text()[-500:]}",
              flush=True)
        return None
    summary = pyspy.summarize(raw)
    header = (f"py-spy record -f raw, {seconds:g} s, meterline pid {target.pid}, "
              f"during plain c=32 at {result.rps:.0f} req/s (raw stacks: {_shown(raw)})")
    print("  " + header, flush=True)
    return header + "\n" + summary


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _floor_shares(cell: Cell, floor: Cell | None) -> list[str]:
    """% floor, +p50 floor, p99 x floor of a proxy's cell ("-" for direct and the floor)."""
    r, f = cell.result, floor.result if floor else None
    if cell.target in ("direct", "floor") or r is None or f is None or not f.rps:
        return ["-", "-", "-"]
    ratio = f"{r.p99_ms / f.p99_ms:.1f}x" if f.p99_ms else "-"
    return [f"{100 * r.rps / f.rps:.0f}%", f"{r.p50_ms - f.p50_ms:+.2f}", ratio]


def rows(run: Run, args: argparse.Namespace) -> list[list[str]]:
    out = []
    blank = ["-"] * (len(HEADERS) - 2)
    for target in args.targets:
        if target in run.unavailable:
            out.append([target, *blank, f"unavailable: {run.unavailable[target]}"])
            continue
        for mode in args.modes:
            for concurrency in args.concurrency:
                cell = next((c for c in run.cells if (c.target, c.mode, c.concurrency)
                             == (target, mode, concurrency)), None)
                if cell is None:
                    continue
                r = cell.result
                if r is None:
                    out.append([target, mode, str(concurrency), *blank[2:],
                                f"failed: {cell.note}"])
                    continue
                direct = run.find("direct", mode, concurrency)
                added = "-" if target == "direct" or direct is None or direct.result is None \
                    else f"{r.p50_ms - direct.result.p50_ms:+.2f}"
                if cell.ledger is not None:
                    records, priced = cell.ledger
                    metered = f"{records}/{r.requests}" + ("" if cell.metered_ok else " !")
                    if priced != records:
                        metered += f" ({records - priced} unpriced)"
                else:
                    metered = "-" if target in ("direct", "floor") else "n/a"
                cpu = "-" if cell.cpu_seconds is None or not r.requests \
                    else f"{1000 * cell.cpu_seconds / r.requests:.3f}"
                lag = "-" if cell.lag_ms is None else f"{cell.lag_ms:.1f}"
                busy = "*" if cell.other_load and cell.other_load > OTHER_LOAD_WARN else ""
                share, added_floor, p99_ratio = _floor_shares(
                    cell, run.find("floor", mode, concurrency))
                out.append([target, mode, str(concurrency), f"{r.rps:.0f}{busy}", share,
                            _ms(r.p50_ms), _ms(r.p99_ms), added, added_floor, p99_ratio, lag,
                            cpu, str(r.errors), metered])
    return out


HEADERS = ["target", "mode", "conc", "req/s", "% floor", "p50 ms", "p99 ms", "+p50 ms",
           "+p50 floor", "p99 x floor", "max lag ms", "cpu ms/req", "errors", "metered"]


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h)
              for i, h in enumerate(HEADERS[:-1])]
    lines = []
    head = [h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(HEADERS, widths,
                                                                               strict=False))]
    lines.append("  ".join([*head, HEADERS[-1]]))
    lines.append("-" * (sum(widths) + 2 * len(widths) + len(HEADERS[-1])))
    for row in table:
        cells = [v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in enumerate(zip(row,
                                                                                  widths,
                                                                                  strict=False))]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADERS) - 3) + ["---"]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines)


def goals(run: Run) -> list[str]:
    out = []
    c32 = run.find("meterline", "plain", 32)
    if c32 and c32.result:
        rps = c32.result.rps
        out.append(f"meterline plain c=32: {rps:.0f} req/s "
                   f"(goal >= {GOAL_RPS_C32:.0f}): {'PASS' if rps >= GOAL_RPS_C32 else 'FAIL'}")
    c1, d1 = run.find("meterline", "plain", 1), run.find("direct", "plain", 1)
    if c1 and d1 and c1.result and d1.result:
        added = c1.result.p50_ms - d1.result.p50_ms
        verdict = "PASS" if added <= GOAL_ADDED_P50_C1_MS else "FAIL"
        out.append(f"meterline plain c=1: {added:.2f} ms added at p50 "
                   f"(goal <= {GOAL_ADDED_P50_C1_MS} ms): {verdict}")
    out += floor_goals(run)
    checked = [c for c in run.cells if c.target == "meterline" and c.ledger is not None]
    if checked:
        bad = [f"{c.mode} c={c.concurrency}" for c in checked if not c.metered_ok]
        out.append("every call metered and priced (ledger count between wrk's completed "
                   "calls and that plus the connections cut off at the end): "
                   + ("PASS" if not bad else f"FAIL ({', '.join(bad)})"))
    return out


def floor_goals(run: Run) -> list[str]:
    """Issue 17's goals: meterline against the floor measured in the same run."""
    out = []
    for mode in MODES:
        ours, floor = run.find("meterline", mode, 32), run.find("floor", mode, 32)
        if ours and floor and ours.result and floor.result and floor.result.rps:
            share, goal = ours.result.rps / floor.result.rps, GOAL_FLOOR_SHARE_C32[mode]
            out.append(f"meterline {mode} c=32: {100 * share:.0f}% of the floor's req/s "
                       f"(goal >= {100 * goal:.0f}%): {'PASS' if share >= goal else 'FAIL'}")
        if ours and floor and ours.result and floor.result and floor.result.p99_ms:
            ratio = ours.result.p99_ms / floor.result.p99_ms
            verdict = "PASS" if ratio <= GOAL_FLOOR_P99_RATIO_C32 else "FAIL"
            out.append(f"meterline {mode} c=32: p99 {ratio:.1f}x the floor's "
                       f"(goal <= {GOAL_FLOOR_P99_RATIO_C32:g}x): {verdict}")
        ours, floor = run.find("meterline", mode, 1), run.find("floor", mode, 1)
        if ours and floor and ours.result and floor.result:
            added = ours.result.p50_ms - floor.result.p50_ms
            verdict = "PASS" if added <= GOAL_FLOOR_ADDED_P50_C1_MS else "FAIL"
            out.append(f"meterline {mode} c=1: {added:.2f} ms added at p50 over the floor "
                       f"(goal <= {GOAL_FLOOR_ADDED_P50_C1_MS} ms): {verdict}")
    lags = [c for c in run.cells if c.target == "meterline" and c.lag_ms is not None]
    if lags:
        worst = max(lags, key=lambda c: c.lag_ms or 0.0)
        assert worst.lag_ms is not None
        verdict = "PASS" if worst.lag_ms <= GOAL_MAX_LAG_MS else "FAIL"
        out.append(f"meterline's worst event-loop stall: {worst.lag_ms:.1f} ms ({worst.mode} "
                   f"c={worst.concurrency}; goal <= {GOAL_MAX_LAG_MS:g} ms in a 60 s run): "
                   f"{verdict}")
    return out


def environment(args: argparse.Namespace, busy: float, wrk: str | None,
                nginx: str | None) -> list[str]:
    cores = os.cpu_count() or 0
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info
                    if ln.startswith("model name")), "?")
    lines = [
        f"machine: {cores} cores ({cpu}), {platform.system()} {platform.release()}; wrk, nginx "
        f"and the proxy under test all share these {cores} cores (nothing is pinned), so a "
        f"proxy's numbers include the load generator's and the upstream's CPU competing with it",
        f"background load before the run: {100 * busy:.0f}% of the machine"
        + ("  (WARNING: other processes were busy; numbers are pessimistic)"
           if busy > BUSY_WARN else ""),
        (f"wrk: {version_of([wrk, '-v']).split(' [')[0]}, threads "
         f"{', '.join(f'{threads_for(c)} at c={c}' for c in args.concurrency)}, "
         if wrk else "load generator: the Python stand-in (aiohttp, one process; NOT wrk: "
         "these numbers only show that the benchmark works), ")
        + f"{args.warmup:g} s warm-up + {args.duration:g} s per cell, latency to the last byte",
        f"nginx: {version_of([nginx, '-v'])}, worker_processes 1, fixed bodies" if nginx else
        "upstream: the Python stand-in for nginx (uvicorn, fixed bodies; NOT nginx)",
        f"meterline: {meterline_revision(args.meterline_src)}, python {platform.python_version()}, "
        f"`meterline serve --workers {args.workers}`, SQLite, journal on, price set for the "
        f"fake models",
    ]
    if "floor" in args.targets:
        lines.append("floor: bench/gateway/floor.py, uvicorn (one worker) + raw ASGI + aiohttp "
                     "to the same upstream, no auth, no metering; % floor, +p50 floor and p99 x "
                     "floor compare a proxy's cell with the floor's at the same mode and "
                     "concurrency")
    if not args.no_lag:
        lines.append("max lag ms: the worst overshoot of a 1 ms sleep on the server's event loop "
                     "during the cell (a probe task in the floor and meterline, "
                     "bench/gateway/lagprobe/); a stall of the loop delays every call under way")
    if "litellm" in args.targets:
        lines.append(f"litellm: {litellm_version() or 'not installed'}, `litellm --num_workers "
                     f"1`, master key, no database, model priced from its bundled cost map")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=argparse.SUPPRESS,
                        help=f"seconds measured per cell [{FULL['duration']:g}; --quick: "
                             f"{QUICK['duration']:g}]")
    parser.add_argument("--warmup", type=float, default=argparse.SUPPRESS,
                        help=f"seconds of warm-up before each cell, 0: none "
                             f"[{FULL['warmup']:g}; --quick: {QUICK['warmup']:g}]")
    parser.add_argument("--concurrency", type=int, nargs="+", default=argparse.SUPPRESS,
                        help="concurrent connections (wrk -c) "
                             f"[{' '.join(map(str, FULL['concurrency']))}; --quick: "
                             f"{' '.join(map(str, QUICK['concurrency']))}]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (CI): the sizes above, Python stand-ins for nginx and "
                             "wrk where they are missing, nothing saved unless --output; its "
                             "numbers mean nothing")
    parser.add_argument("--python-tools", action="store_true",
                        help="use the Python stand-ins for nginx and wrk even where they are "
                             "installed (numbers not comparable with wrk's)")
    parser.add_argument("--no-lag", action="store_true",
                        help="run the floor and meterline without the event-loop lag probe")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="plain (non-streamed) and/or stream")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
                        help="what to measure (direct is needed for the added latency, "
                             "floor for the shares)")
    parser.add_argument("--skip-litellm", action="store_true",
                        help="leave LiteLLM out (no virtualenv, no install)")
    parser.add_argument("--profile", action="store_true",
                        help="also run py-spy on meterline during an extra plain c=32 run and "
                             "summarize where its CPU goes")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="meterline's worker processes (`meterline serve --workers N`); the "
                             "goals are stated for one")
    parser.add_argument("--meterline-src", type=Path, default=REPO, metavar="DIR",
                        help="source tree to run meterline from (e.g. a scratch copy with a "
                             "change, to compare)")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown file (default bench/results/gateway-<date>.md)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for other processes to leave the "
                             "machine idle")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (configs, server logs, database)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if not hasattr(args, name):
            setattr(args, name, value)
    if args.skip_litellm:
        args.targets = [t for t in args.targets if t != "litellm"]
    if any(c < 1 for c in args.concurrency) or args.duration < 1 or args.workers < 1:
        parser.error("--concurrency values, --duration and --workers must be at least 1")
    args.meterline_src = args.meterline_src.resolve()
    if not (args.meterline_src / "meterline" / "__init__.py").exists():
        parser.error(f"--meterline-src: {args.meterline_src} has no meterline package")

    nginx, wrk = find_binary("nginx"), find_binary("wrk")
    if args.python_tools:
        nginx = wrk = None
    elif nginx is None or wrk is None:
        missing = " and ".join(n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None)
        if not args.quick:
            print(f"{missing} not found. Install with:\n    {INSTALL}\n(or run with "
                  "--python-tools: Python stand-ins, numbers not comparable)", file=sys.stderr)
            return 2
        print(f"{missing} not found: using the Python stand-in (--quick)", flush=True)

    started = datetime.now(UTC)
    save = args.output is not None or not args.quick
    args.output = (args.output or RESULTS / f"gateway-{started.strftime('%Y-%m-%d')}.md").resolve()
    busy = machine_busy(0.2 if args.quick else 1.0)
    if args.wait_idle > 0 and busy > BUSY_WARN:
        print(f"the machine is {100 * busy:.0f}% busy: waiting up to {args.wait_idle:g} s for "
              f"it to quieten ...", flush=True)
        deadline = time.monotonic() + args.wait_idle
        while busy > BUSY_WARN and time.monotonic() < deadline:
            time.sleep(5)
            busy = machine_busy(2.0)
    run = Run()
    workdir = Path(tempfile.mkdtemp(prefix="meterline-gwbench-"))
    print(f"gateway benchmark: {args.duration:g} s per cell, concurrency "
          f"{' '.join(map(str, args.concurrency))}, modes {' '.join(args.modes)}; "
          f"work dir {workdir}", flush=True)
    if busy > BUSY_WARN:
        print(f"warning: the machine is already {100 * busy:.0f}% busy; results will be low",
              flush=True)
    upstream_port = free_port()
    try:
        nginx_child = (start_nginx(nginx, workdir, upstream_port) if nginx
                       else start_python(workdir, upstream_port))
    except RuntimeError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"the fake upstream did not start: {exc}", file=sys.stderr)
        return 1
    upstream = f"http://127.0.0.1:{upstream_port}"
    try:
        for name in args.targets:
            run_target(name, wrk, upstream, nginx_child, args, workdir, run)
    except KeyboardInterrupt:
        print("interrupted: reporting what was measured", file=sys.stderr)
    finally:
        nginx_child.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    table = rows(run, args)
    env_lines = environment(args, busy, wrk, nginx)
    goal_lines = goals(run)
    loaded = [f"{c.target} {c.mode} c={c.concurrency} ({100 * c.other_load:.0f}%)"
              for c in run.cells if c.other_load is not None and c.other_load > OTHER_LOAD_WARN]
    if loaded:
        env_lines.append("other processes on the machine were busy during (share of the "
                         "machine): " + ", ".join(loaded) + "; those numbers are low")
    legend = ("+p50 ms: p50 minus direct's p50 at the same mode and concurrency; % floor: "
              "req/s as a share of the floor's; +p50 floor: p50 minus the floor's; p99 x floor: "
              "p99 over the floor's; max lag ms: the server's worst event-loop stall; cpu "
              "ms/req: CPU time of the target's processes (direct: nginx) per completed call; "
              "errors: answers >= 400 plus socket errors; metered: meterline ledger records for "
              "the cell / calls wrk completed ('!' marks a mismatch); * : other processes used "
              f"more than {100 * OTHER_LOAD_WARN:.0f}% of the machine during the cell")
    print()
    print(text_table(table))
    print()
    for line in [legend, *env_lines, *goal_lines, *run.notes]:
        print(f"- {line}")
    if run.profile:
        print()
        print(run.profile)
    broken = [f"{name} unavailable" for name in run.unavailable if name != "litellm"]
    for c in run.cells:
        if c.result is None or c.metered_ok is False:
            why = "failed" if c.result is None else "not every call metered once"
            broken.append(f"{c.target} {c.mode} c={c.concurrency}: {why}")
    if broken:
        print(f"\nbenchmark incomplete: {'; '.join(broken)}", file=sys.stderr)
    if not save:
        print("\nsmoke run (--quick): not saved")
        return 1 if broken else 0

    output = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"# Gateway benchmark, {started.strftime('%Y-%m-%d %H:%M')} UTC", "",
             "`python3 bench/gateway/run.py " + " ".join(sys.argv[1:] if argv is None
                                                          else argv) + "`", "",
             markdown_table(table), "", *(f"- {line}" for line in [legend, *env_lines]), ""]
    if goal_lines:
        parts += ["## Goals (one worker)", "", *(f"- {line}" for line in goal_lines), ""]
    if run.notes:
        parts += ["## Ledger checks", "", *(f"- {line}" for line in run.notes), ""]
    if run.profile:
        parts += ["## Profile", "", "```", run.profile, "```", ""]
    output.write_text("\n".join(parts))
    print(f"\nsaved {_shown(output)}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
