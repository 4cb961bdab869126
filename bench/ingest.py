"""Benchmark: usage events per second through ``POST /v1/usage`` (batches of 1000, rating on).

Runs ``meterline serve`` as a real server process on loopback against a fresh SQLite file and a
fresh PostgreSQL schema, sends pre-built batches from several client threads, and prints a table.

    python bench/ingest.py [--events 100000] [--clients 4] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import psycopg

try:
    import pwd
    PG_UID = pwd.getpwnam("postgres").pw_uid
except (ImportError, KeyError):
    PG_UID = -1

PG_SERVER = os.environ.get("METERLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN = "bench-admin-token"
MODELS = ("openai/gpt-5-nano", "anthropic/claude-sonnet-4-5", "deepseek/deepseek-chat",
          "openai/text-embedding-3-small")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds() -> tuple[float, float]:
    """(all CPUs busy, PostgreSQL's processes) in seconds so far; zeros where /proc is missing."""
    try:
        busy = sum(int(v) for i, v in enumerate(Path("/proc/stat").read_text().split("\n")[0]
                                               .split()[1:8]) if i not in (3, 4))
        postgres = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if stat.parent.stat().st_uid != PG_UID:
                    continue
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            postgres += int(fields[11]) + int(fields[12])
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, postgres / tick


def group_cpu_seconds(pgid: int) -> float:
    """CPU time so far of the live processes of group ``pgid`` (the server and its workers):
    other jobs on the machine do not count in it, as they do in the machine's busy time."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def batches(count: int, run: str) -> list[bytes]:
    out = []
    for start in range(0, count, 1000):
        events = []
        for n in range(start, min(start + 1000, count)):
            model = MODELS[n % len(MODELS)]
            usage = {"input_tokens": 1000 + n % 500}
            if "embedding" not in model:
                usage |= {"cached_input_tokens": n % 300, "output_tokens": 200 + n % 700}
            events.append({"id": f"{run}-{n}", "timestamp": "2026-11-01T10:00:00Z",
                           "model": model, "user": f"user-{n % 50}", "usage": usage,
                           "metadata": {"purpose": "bench"}})
        out.append(orjson.dumps({"events": events}))
    return out


def run_server(url: str, workers: int, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # The journal in the run's temp dir: never ./meterline-journal, shared with other runs.
    env = {**os.environ, "METERLINE_DATABASE_URL": url, "METERLINE_ADMIN_TOKEN": ADMIN,
           "METERLINE_CONFIG": "", "METERLINE_JOURNAL_DIR": str(folder / "journal")}
    proc = subprocess.Popen([sys.executable, "-m", "meterline.cli", "serve", "--port", str(port),
                             "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own group: its CPU is counted apart
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    detail = proc.stderr.read().decode() if proc.stderr else ""
    raise RuntimeError(f"server did not start: {detail}")


def measure(base: str, bodies: list[bytes], clients: int,
            server: int) -> tuple[float, int, float, float, float]:
    """Seconds, failed batches, and CPU seconds used meanwhile (all processes, PostgreSQL, the
    server's process group ``server``)."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(f"{base}/api/tenants", json={"name": "bench"}, headers=auth).raise_for_status()
    key = httpx.post(f"{base}/api/keys", json={"tenant": "bench"}, headers=auth).json()["key"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors = 0

    def worker() -> None:
        nonlocal errors
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                answer = http.post(f"{base}/v1/usage", content=body, headers=headers)
                if answer.status_code != 200 or b'"unpriced"' in answer.content:
                    with lock:
                        errors += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started, (busy, postgres) = time.perf_counter(), cpu_seconds()
    served = group_cpu_seconds(server)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy_after, postgres_after = cpu_seconds()
    return (time.perf_counter() - started, errors, busy_after - busy,
            postgres_after - postgres, group_cpu_seconds(server) - served)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    rows = []
    for backend in args.backends:
        for workers in args.workers:
            if backend == "sqlite" and workers > 1:
                continue  # one SQLite writer at a time: more workers only add lock waits
            schema = f"bench_{secrets.token_hex(4)}"
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                else:
                    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                        conn.execute(f'CREATE SCHEMA "{schema}"')
                    url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
                proc, base = run_server(url, workers, Path(tmp))
                try:
                    bodies = batches(args.events, schema)
                    seconds, errors, cpu, pg_cpu, server_cpu = measure(
                        base, bodies, args.clients, proc.pid)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                    if backend == "postgresql":
                        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            per_k = 1000_000 / args.events  # CPU seconds → ms per 1000 events
            rows.append((backend, workers, args.clients, args.events, seconds,
                         args.events / seconds, errors, cpu * per_k, pg_cpu * per_k,
                         server_cpu * per_k))
    # CPU columns: milliseconds of CPU per 1000 events while measuring, on every core (server,
    # database, this client and whatever else runs on the machine), in PostgreSQL's processes
    # alone, and in the server's processes alone (the number to compare between runs on a
    # shared machine).
    print(f"\n{'backend':<11}{'workers':>8}{'clients':>8}{'events':>9}{'seconds':>9}"
          f"{'events/s':>10}{'errors':>8}{'cpu ms/1k':>11}{'pg ms/1k':>10}{'server ms/1k':>14}")
    for backend, workers, clients, events, seconds, rate, errors, cpu, pg_cpu, server in rows:
        print(f"{backend:<11}{workers:>8}{clients:>8}{events:>9}{seconds:>9.2f}{rate:>10.0f}"
              f"{errors:>8}{cpu:>11.1f}{pg_cpu:>10.1f}{server:>14.1f}")


if __name__ == "__main__":
    main()
