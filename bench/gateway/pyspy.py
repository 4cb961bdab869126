"""Profiling the meterline server under load with py-spy, and a plain-text summary of the raw
(collapsed stacks) output: where the CPU goes, by function and by package."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from proxies import LITELLM_VENV

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_STACK = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def find_pyspy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    local = LITELLM_VENV / "bin" / "py-spy"
    return str(local) if local.exists() else None


def start(pyspy: str, pid: int, seconds: float, out: Path, log: Path) -> subprocess.Popen[bytes]:
    """``py-spy record -f raw`` of ``pid`` for ``seconds``. Blocking sampling (py-spy pauses
    the process for each of its 100 samples a second): ``--nonblocking`` tears deep async
    stacks, which makes the inclusive numbers useless."""
    with open(log, "wb") as sink:
        return subprocess.Popen([pyspy, "record", "-d", str(round(seconds)),
                                 "-f", "raw", "-o", str(out), "-p", str(pid)],
                                stdout=sink, stderr=subprocess.STDOUT)


def _frame(text: str) -> tuple[str, str]:
    """(function, file) of one frame, without the line number."""
    match = _FRAME.match(text)
    if match is None:
        return text, ""
    return match["func"], match["file"]


def package(file: str) -> str:
    """The package a frame's file belongs to: ``meterline.gateway``, ``httpx``, ``asyncio``..."""
    if file.startswith("meterline/"):
        parts = file.split("/")
        return ".".join(parts[:2]) if len(parts) > 2 else "meterline"
    if file.startswith("<frozen") or "/" not in file:
        return file.removesuffix(".py") or "?"
    return file.split("/", 1)[0]


def parse(raw: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in raw.read_text(errors="replace").splitlines():
        match = _STACK.match(line.strip())
        if match:
            frames = [_frame(f) for f in match["stack"].split(";")]
            stacks.append((frames, int(match["count"])))
    return stacks


def _parked(frames: list[tuple[str, str]]) -> bool:
    """A thread waiting for work (py-spy's idle detection misses some waits in C)."""
    func, file = frames[-1]
    if file.startswith("threading.py") and func.endswith((".wait", "Lock.acquire")):
        return True
    return func == "_worker" and file.startswith("concurrent/futures/thread.py")


def summarize(raw: Path, top: int = 15) -> str:
    """Self time by function and by package, and inclusive time of meterline's functions, as
    percentages of all samples (py-spy counts only samples where a thread was on the CPU)."""
    stacks = parse(raw)
    total = sum(count for _, count in stacks)
    if not total:
        return "py-spy recorded no samples"
    busy = sum(count for frames, count in stacks if not _parked(frames))
    if not busy:
        return "py-spy recorded only idle samples"
    idle = 0
    self_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_ml: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, count in stacks:
        if _parked(frames):
            idle += count  # a thread parked in a wait, which py-spy can count as running
            continue
        func, file = frames[-1]
        self_fn[f"{func} ({file})"] += count
        self_pkg[package(file)] += count
        seen = {f"{f} ({p})" for f, p in frames if p.startswith("meterline/")}
        for name in seen:
            incl_ml[name] += count
        threads["drainer and worker threads" if frames[0][0].endswith("_bootstrap")
                else "main thread (event loop: requests)"] += count

    def table(title: str, counter: Counter[str], n: int) -> list[str]:
        out = [title]
        out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in counter.most_common(n)]
        return out

    total -= idle
    lines = [f"{total} samples on the CPU ({idle} more of threads parked in a wait, left out)"]
    lines += table("by thread:", threads, 4)
    lines += table("self time by package:", self_pkg, top)
    lines += table("self time by function:", self_fn, top)
    lines += table("inclusive time of meterline functions:", incl_ml, top)
    return "\n".join(lines)
