"""The load generator: ``wrk`` with a Lua script that POSTs a fixed body and prints its results
as one JSON line from its ``done`` hook (no per-response Lua: that would slow wrk down).

Without wrk (``run.py --quick`` on a machine that has none, or ``--python-tools``) a Python
stand-in does the same with aiohttp and prints the same line: run as ``python3
bench/gateway/loadgen.py SPEC.json`` (url, body, headers, concurrency, seconds, timeout). It
uses far more CPU per call than wrk, on the cores the servers under test use too, so its
numbers only show that the benchmark works. It stops at ``seconds`` (calls under way then
finish) or after ``MAX_CALLS`` calls, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The Python load generator's bound on calls per run (besides its time).
MAX_CALLS = 1_000_000

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
    return _parse(line)


def run_python(url: str, spec: Path, body: bytes, headers: Mapping[str, str], concurrency: int,
               seconds: float, timeout_s: int = 30) -> WrkResult:
    """The Python stand-in for ``run_wrk``, in a child process (its CPU counts as the load
    generator's, not the benchmark's)."""
    spec.write_text(json.dumps({"url": url, "body": body.decode(), "headers": dict(headers),
                                "concurrency": concurrency, "seconds": seconds,
                                "timeout": timeout_s}))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(spec)],
                          capture_output=True, text=True, timeout=seconds + timeout_s + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"python load generator failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}\n{done.stdout.strip()}")
    return _parse(line)


def _parse(line: str) -> WrkResult:
    data = json.loads(line[len(_MARK):])
    return WrkResult(
        requests=int(data["requests"]), seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        status_errors=int(data["status"]),
        socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
    )


async def _drive(spec: dict[str, Any]) -> dict[str, float]:
    import aiohttp

    body = spec["body"].encode()
    headers = {"Content-Type": "application/json", **spec["headers"]}
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "timeout": 0, "status": 0}
    received = 0
    left = MAX_CALLS
    timeout = aiohttp.ClientTimeout(total=spec["timeout"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout, auto_decompress=False) as session:
        started = time.perf_counter()
        deadline = started + spec["seconds"]

        async def connection() -> None:
            nonlocal received, left
            while left > 0 and time.perf_counter() < deadline:
                left -= 1
                began = time.perf_counter()
                try:
                    async with session.post(spec["url"], data=body, headers=headers) as answer:
                        received += len(await answer.read())
                        status = answer.status
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectorError:
                    errors["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
                except aiohttp.ClientError:
                    errors["read"] += 1
                    continue
                latencies.append(time.perf_counter() - began)
                if status >= 400:
                    errors["status"] += 1

        await asyncio.gather(*(connection() for _ in range(spec["concurrency"])))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]

    def at(share: float) -> float:
        return 1e6 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"requests": len(latencies), "duration_us": 1e6 * elapsed, "bytes": received,
            "connect": errors["connect"], "read": errors["read"], "write": 0,
            "status": errors["status"], "timeout": errors["timeout"], "p50_us": at(0.50),
            "p90_us": at(0.90), "p99_us": at(0.99), "max_us": 1e6 * ordered[-1],
            "mean_us": 1e6 * sum(ordered) / len(ordered)}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(_drive(spec))
    print(_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
