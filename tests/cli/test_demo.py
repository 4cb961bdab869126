"""``meterline serve --demo`` started as a user starts it, in a folder of its own (a real
process): the CLI reaches the demo's data through the environment the demo prints, the demo
keeps its files apart from a real server's, and restarts leave one usable demo key."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from click.testing import CliRunner

from meterline.cli.main import cli

EXPORT = "CLI on the demo's data:  export "
#: Only a guard against a hung server; a start normally takes seconds.
START_DEADLINE = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def demo_server(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """``meterline serve --demo`` running in ``folder``: its URL once it answers, and the lines
    it printed. Stopped with Ctrl-C (SIGINT) afterwards, as a user stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "meterline", "serve", "--demo", "--port", str(port)],
        cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert child.stdout is not None
    out = child.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in out:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE
    try:
        while not any(line.startswith(f"meterline listening on {url}") for line in seen):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"serve --demo did not start: {seen}") from None
            if line is None:
                raise AssertionError(f"serve --demo stopped: {seen}")
            seen.append(line)
        while True:  # listening is announced just before the socket accepts connections
            try:
                if httpx.get(f"{url}/healthz", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and child.poll() is None, seen
            time.sleep(0.05)
        yield url, seen
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        reader.join(timeout=10)
        out.close()


def demo_key(lines: list[str]) -> str:
    [key] = [line.removeprefix("demo key: ") for line in lines if line.startswith("demo key: ")]
    return key


def cli_env(lines: list[str]) -> dict[str, str | None]:
    """The environment the demo told the user to export (and nothing else of meterline's)."""
    [line] = [line for line in lines if line.startswith(EXPORT)]
    name, value = shlex.split(line.removeprefix(EXPORT))[0].split("=", 1)
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("METERLINE_")}
    env[name] = value
    return env


def test_the_cli_sees_the_demo_data_and_restarts_keep_one_demo_key(tmp_path: Path) -> None:
    with demo_server(tmp_path) as (url, first):
        # A call through the simulated upstream: it is journaled, then lands in the ledger.
        answer = httpx.post(f"{url}/v1/chat/completions", timeout=60,
                            headers={"Authorization": f"Bearer {demo_key(first)}"},
                            json={"model": "openai/gpt-5-nano",
                                  "messages": [{"role": "user", "content": "Hello"}]})
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-meterline-request-id"]
    env = cli_env(first)
    assert env["METERLINE_DATABASE_URL"] == f"sqlite:///{tmp_path / 'meterline-demo.db'}"
    runner = CliRunner()

    def meterline(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "demo\tUSD\tUTC" in meterline("tenants", "list").splitlines()
    newest = orjson.loads(meterline("usage", "list", "--tenant", "demo", "--limit", "1",
                                    "--json"))
    assert [r["request_id"] for r in newest] == [request_id]
    # The demo's files, apart from those a real server in this folder would use.
    assert (tmp_path / "meterline-demo-journal").is_dir()
    assert not (tmp_path / "meterline-journal").exists()
    assert not (tmp_path / "meterline.db").exists()

    with demo_server(tmp_path) as (_, second):
        pass
    # A key is shown once, so each start prints a new one, and revokes the one before.
    assert demo_key(first) != demo_key(second)
    listed = orjson.loads(meterline("keys", "list", "--tenant", "demo", "--json"))
    assert len(listed) == 2
    [active] = [k for k in listed if k["revoked_at"] is None]
    assert demo_key(second).startswith(active["prefix"])
