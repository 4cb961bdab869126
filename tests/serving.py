"""A real ``meterline serve`` process, started as an operator starts it (a config file, the
environment, a free loopback port), in front of a simulated upstream, for the tests that need
the whole server: several worker processes, the log it writes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from meterline.simulator import create_simulator, serve_in_thread
from tests.conftest import ADMIN, ADMIN_TOKEN

UPSTREAM_KEY = "sk-upstream"
KEY_ENV = "METERLINE_SERVE_TEST_UPSTREAM_KEY"
#: Only a guard against a hung server: a start normally takes seconds.
START_DEADLINE = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def upstream() -> Iterator[str]:
    """A simulated provider on loopback, taking the key ``sk-upstream``."""
    with serve_in_thread(create_simulator(require_key=UPSTREAM_KEY)) as url:
        yield url


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr.log").read_text(encoding="utf-8")

    @property
    def stdout(self) -> str:
        return (self.folder / "stdout.log").read_text(encoding="utf-8")

    def new_key(self) -> str:
        """A key of a new tenant ``acme``."""
        with httpx.Client(base_url=self.url, headers=ADMIN, timeout=60) as admin:
            created = admin.post("/api/tenants", json={"name": "acme"})
            assert created.status_code == 201, created.text
            key = admin.post("/api/keys", json={"tenant": "acme"})
            assert key.status_code == 201, key.text
            found: str = key.json()["key"]
            return found


@contextmanager
def serve(folder: Path, upstream_url: str, *args: str, settings: str = "") -> Iterator[Server]:
    """``meterline serve *args`` with a config file in ``folder`` (``settings`` are top-level
    lines of it), a SQLite database and journal there, and the provider ``openai`` at
    ``upstream_url`` (models it does not price are recorded unpriced). Stopped with SIGTERM."""
    config = folder / "meterline.toml"
    config.write_text(f"""{settings}
[gateway]
journal_dir = "{folder / 'journal'}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{upstream_url}/v1"
api_key_env = "{KEY_ENV}"
unknown_models = "record_unpriced"
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METERLINE_", "PROMETHEUS_", "prometheus_"))}
    env.update({"METERLINE_DATABASE_URL": f"sqlite:///{folder / 'meterline.db'}",
                "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN, "METERLINE_CONFIG": str(config),
                KEY_ENV: UPSTREAM_KEY, "PYTHONUNBUFFERED": "1"})
    port = free_port()
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "meterline", "serve", "--port", str(port), *args],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    server = Server(f"http://127.0.0.1:{port}", process, folder)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(server)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"serve exited: {server.stdout}\n{server.stderr}")
        try:
            if httpx.get(server.url + "/healthz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"serve did not start: {server.stdout}\n{server.stderr}")
        time.sleep(0.05)


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=60)
