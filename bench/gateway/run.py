"""Gateway benchmark: direct calls vs meterline vs LiteLLM proxy, against one fast fake upstream.

nginx answers OpenAI chat completions with fixed bodies (the upstream is never the bottleneck);
wrk drives non-streamed and streamed chat at each concurrency against the upstream directly,
meterline (auth, metering and journal on, one worker, SQLite) and LiteLLM proxy (one worker, no
database). Prints requests/s, p50/p99 latency, the p50 each proxy adds over direct, errors and
- for meterline - how many calls reached the ledger, and saves the table as markdown in
bench/results/gateway-<date>.md.

    python3 bench/gateway/run.py [--duration 10] [--concurrency 1 32 128] [--skip-litellm]

Needs nginx and wrk (apt-get install -y nginx wrk). LiteLLM is installed on first use into its
own virtualenv, bench/.venv-litellm, from bench/requirements.txt.
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
from fake_upstream import start_nginx
from loadgen import WrkResult, run_wrk, threads_for, write_script
from procs import Child, free_port, group_cpu_seconds, machine_cpu_seconds
from proxies import MODES, REPO, Direct, LiteLLM, LiteLLMUnavailable, Meterline, litellm_version

RESULTS = REPO / "bench" / "results"
TARGETS = ("direct", "meterline", "litellm")
INSTALL = "apt-get update && apt-get install -y nginx wrk"
#: The issue's goals for meterline, one worker.
GOAL_RPS_C32 = 2000.0
GOAL_ADDED_P50_C1_MS = 0.5
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


def measure(wrk: str, target: Direct | Meterline | LiteLLM, mode: str, concurrency: int,
            args: argparse.Namespace, workdir: Path, nginx_pgid: int) -> Cell:
    cell = Cell(target.name, mode, concurrency)
    tag = f"bench-{mode}-c{concurrency}"
    body = target.body(mode)
    warm = write_script(workdir / f"{target.name}-{mode}-{concurrency}-warm.lua", body,
                        target.headers(f"warmup-{mode}-c{concurrency}"))
    script = write_script(workdir / f"{target.name}-{mode}-{concurrency}.lua", body,
                          target.headers(tag))
    url = target.url(mode)
    try:
        if args.warmup > 0:
            run_wrk(wrk, url, warm, concurrency, args.warmup)
            if isinstance(target, Meterline):  # the warm-up's records drain before measuring
                target.wait_metered(f"warmup-{mode}-c{concurrency}", 1, timeout=60)
        ours = (target.pgid, nginx_pgid) if target.pgid != nginx_pgid else (nginx_pgid,)
        before = [group_cpu_seconds(g) for g in ours]
        machine, children = machine_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
        cell.result = run_wrk(wrk, url, script, concurrency, args.duration)
        after = [group_cpu_seconds(g) for g in ours]
        wrk_used = resource.getrusage(resource.RUSAGE_CHILDREN)
        cell.cpu_seconds = after[0] - before[0]
        others = (machine_cpu_seconds() - machine - sum(after) + sum(before)
                  - (wrk_used.ru_utime - children.ru_utime)
                  - (wrk_used.ru_stime - children.ru_stime))
        cell.other_load = max(0.0, others) / (cell.result.seconds * (os.cpu_count() or 1))
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
    print(f"  {cell.target:<10}{cell.mode:<7}c={cell.concurrency:<4}{r.rps:>9.0f} req/s  "
          f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  errors {r.errors}{extra}", flush=True)


def run_target(name: str, wrk: str, upstream: str, nginx: Child, args: argparse.Namespace,
               workdir: Path, run: Run) -> None:
    print(f"{name}:", flush=True)
    target: Direct | Meterline | LiteLLM
    try:
        if name == "direct":
            target = Direct(upstream, nginx.pid)
        elif name == "meterline":
            target = Meterline(workdir, upstream, args.meterline_src)
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


def profile(target: Meterline, wrk: str, args: argparse.Namespace, workdir: Path) -> str | None:
    """py-spy on the meterline server during an extra non-streamed run at concurrency 32 (not
    one of the measured cells: sampling costs CPU on a machine with few cores)."""
    spy = pyspy.find_pyspy()
    if spy is None:
        print("  --profile: py-spy not found (pip install py-spy)", flush=True)
        return None
    raw = args.output.with_name(args.output.stem + "-meterline-pyspy.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    seconds = max(args.duration, 5)
    script = write_script(workdir / "profile.lua", target.body("plain"),
                          target.headers("profile-plain-c32"))
    print(f"  profiling meterline with py-spy for {seconds:g} s (plain, c=32) ...", flush=True)
    recorder = pyspy.start(spy, target.pid, seconds, raw, workdir / "py-spy.log")
    time.sleep(0.5)
    result = run_wrk(wrk, target.url("plain"), script, 32, seconds + 1)
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


def rows(run: Run, args: argparse.Namespace) -> list[list[str]]:
    out = []
    for target in args.targets:
        if target in run.unavailable:
            out.append([target, "-", "-", "-", "-", "-", "-", "-", "-",
                        f"unavailable: {run.unavailable[target]}"])
            continue
        for mode in args.modes:
            for concurrency in args.concurrency:
                cell = next((c for c in run.cells if (c.target, c.mode, c.concurrency)
                             == (target, mode, concurrency)), None)
                if cell is None:
                    continue
                r = cell.result
                if r is None:
                    out.append([target, mode, str(concurrency), "-", "-", "-", "-", "-", "-",
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
                    metered = "-" if target == "direct" else "n/a"
                cpu = "-" if cell.cpu_seconds is None or not r.requests \
                    else f"{1000 * cell.cpu_seconds / r.requests:.3f}"
                busy = "*" if cell.other_load and cell.other_load > OTHER_LOAD_WARN else ""
                out.append([target, mode, str(concurrency), f"{r.rps:.0f}{busy}", _ms(r.p50_ms),
                            _ms(r.p99_ms), added, cpu, str(r.errors), metered])
    return out


HEADERS = ["target", "mode", "conc", "req/s", "p50 ms", "p99 ms", "+p50 ms", "cpu ms/req",
           "errors", "metered"]


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
             "|" + "|".join(["---"] * 2 + ["---:"] * 7 + ["---"]) + "|"]
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
    checked = [c for c in run.cells if c.target == "meterline" and c.ledger is not None]
    if checked:
        bad = [f"{c.mode} c={c.concurrency}" for c in checked if not c.metered_ok]
        out.append("every call metered and priced (ledger count between wrk's completed "
                   "calls and that plus the connections cut off at the end): "
                   + ("PASS" if not bad else f"FAIL ({', '.join(bad)})"))
    return out


def environment(args: argparse.Namespace, busy: float, wrk: str, nginx: str) -> list[str]:
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
        f"wrk: {version_of([wrk, '-v']).split(' [')[0]}, threads "
        f"{', '.join(f'{threads_for(c)} at c={c}' for c in args.concurrency)}, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s per cell, latency to the last byte",
        f"nginx: {version_of([nginx, '-v'])}, worker_processes 1, fixed bodies",
        f"meterline: {meterline_revision(args.meterline_src)}, python {platform.python_version()}, "
        f"`meterline serve --workers 1`, SQLite, journal on, price set for the fake models",
    ]
    if "litellm" in args.targets:
        lines.append(f"litellm: {litellm_version() or 'not installed'}, `litellm --num_workers "
                     f"1`, master key, no database, model priced from its bundled cost map")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of warm-up before each cell (0: none)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 128],
                        help="concurrent connections (wrk -c)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="plain (non-streamed) and/or stream")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
                        help="what to measure (direct is needed for the added latency)")
    parser.add_argument("--skip-litellm", action="store_true",
                        help="leave LiteLLM out (no virtualenv, no install)")
    parser.add_argument("--profile", action="store_true",
                        help="also run py-spy on meterline during an extra plain c=32 run and "
                             "summarize where its CPU goes")
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
    if args.skip_litellm:
        args.targets = [t for t in args.targets if t != "litellm"]
    if any(c < 1 for c in args.concurrency) or args.duration < 1:
        parser.error("--concurrency values and --duration must be at least 1")
    args.meterline_src = args.meterline_src.resolve()
    if not (args.meterline_src / "meterline" / "__init__.py").exists():
        parser.error(f"--meterline-src: {args.meterline_src} has no meterline package")

    nginx, wrk = find_binary("nginx"), find_binary("wrk")
    if nginx is None or wrk is None:
        missing = " and ".join(n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None)
        print(f"{missing} not found. Install with:\n    {INSTALL}", file=sys.stderr)
        return 2

    started = datetime.now(UTC)
    args.output = (args.output or RESULTS / f"gateway-{started.strftime('%Y-%m-%d')}.md").resolve()
    busy = machine_busy()
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
    nginx_child = start_nginx(nginx, workdir, upstream_port)
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
    legend = ("+p50 ms: p50 minus direct's p50 at the same mode and concurrency; cpu ms/req: "
              "CPU time of the target's processes (direct: nginx) per completed call; errors: "
              "answers >= 400 plus socket errors; metered: meterline ledger records for the "
              "cell / calls wrk completed ('!' marks a mismatch); * : other processes used more "
              f"than {100 * OTHER_LOAD_WARN:.0f}% of the machine during the cell")
    print()
    print(text_table(table))
    print()
    for line in [legend, *env_lines, *goal_lines, *run.notes]:
        print(f"- {line}")
    if run.profile:
        print()
        print(run.profile)

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
