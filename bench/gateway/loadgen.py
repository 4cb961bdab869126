"""The load generator: ``wrk`` with a Lua script that POSTs a fixed body and prints its results
as one JSON line from its ``done`` hook (no per-response Lua: that would slow wrk down)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_MARK = "WRKJSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%.0f,\"duration_us\":%.0f,\"bytes\":%.0f,\"connect\":%.0f," ..
    "\"read\":%.0f,\"write\":%.0f,\"status\":%.0f,\"timeout\":%.0f,\"p50_us\":%.1f," ..
    "\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    #: Answers with status >= 400 (wrk's "Non-2xx or 3xx responses").
    status_errors: int
    #: connect, read, write and timeout errors.
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal


def write_script(path: Path, body: bytes, headers: Mapping[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def threads_for(concurrency: int) -> int:
    return 1 if concurrency < 32 else 2


def run_wrk(wrk: str, url: str, script: Path, concurrency: int, seconds: float,
            timeout_s: int = 30) -> WrkResult:
    argv = [wrk, "--latency", "-t", str(threads_for(concurrency)), "-c", str(concurrency),
            "-d", f"{max(1, round(seconds))}s", "--timeout", f"{timeout_s}s", "-s", str(script),
            url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}"
                           f"\n{done.stdout.strip()}")
    data = json.loads(line[len(_MARK):])
    return WrkResult(
        requests=int(data["requests"]), seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        status_errors=int(data["status"]),
        socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
    )
