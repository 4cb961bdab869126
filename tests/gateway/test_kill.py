"""SPEC §7.4, nothing lost: a call whose answer reached the client is in the ledger even if the
gateway process is killed (SIGKILL) right after. A real ``meterline serve`` process is killed
the moment the last answer arrived, then started again on the same database and journal; every
call is in the ledger exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.gateway.conftest import TEXT, UPSTREAM_KEY, fresh_database, money

REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "METERLINE_KILL_TEST_UPSTREAM_KEY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """``python -m meterline.cli serve`` in a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meterline.cli", "serve", "--port", str(self.port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=2) as http:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"the gateway exited: {self.log.read_text()}")
                try:
                    if http.get(self.url + "/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the gateway did not start: {self.log.read_text()}")
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


def serve_env(database: str, upstream, tmp_path: Path) -> dict[str, str]:
    """The environment of a ``meterline serve`` on ``database`` in front of ``upstream``, its
    journal in ``tmp_path``."""
    journal = tmp_path / "journal"
    config = tmp_path / "meterline.toml"
    config.write_text(f"""
[gateway]
journal_dir = "{journal}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{upstream.url}/v1"
api_key_env = "{KEY_ENV}"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{upstream.url}"
api_key_env = "{KEY_ENV}"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env.update({"METERLINE_DATABASE_URL": database, "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN,
                "METERLINE_CONFIG": str(config), KEY_ENV: UPSTREAM_KEY})
    return env


def test_calls_survive_sigkill_right_after_the_answer(database, upstream, tmp_path):
    env = serve_env(database, upstream, tmp_path)
    log = tmp_path / "gateway.log"

    first = Gateway(env, log)
    try:
        with httpx.Client(base_url=first.url, headers=ADMIN, timeout=30) as admin:
            assert admin.post("/api/tenants", json={"name": "acme"}).status_code == 201
            key = admin.post("/api/keys", json={"tenant": "acme"}).json()["key"]
        ids = []
        with openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="openai/gpt-5-nano", messages=[{"role": "user", "content": "one"}])
            assert raw.parse().choices[0].message.content == TEXT
            ids.append(raw.headers["x-meterline-request-id"])
        with anthropic.Anthropic(base_url=first.url, api_key=key, max_retries=0) as client:
            raw = client.messages.with_raw_response.create(
                model="anthropic/claude-sonnet-4-6", max_tokens=20,
                messages=[{"role": "user", "content": "two"}])
            ids.append(raw.headers["x-meterline-request-id"])
            raw.parse()
        with httpx.Client(base_url=first.url, timeout=30) as http, http.stream(
                "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                json={"model": "openai/gpt-5-nano", "stream": True,
                      "messages": [{"role": "user", "content": "three"}]}) as response:
            ids.append(response.headers["x-meterline-request-id"])
            for chunk in response.iter_raw():
                if b"data: [DONE]" in chunk:
                    first.kill()  # the answer is complete at the client: kill at once
                    break
    finally:
        first.kill()
    assert first.process.returncode == -signal.SIGKILL

    second = Gateway(env, log)
    try:
        with httpx.Client(base_url=second.url, headers=ADMIN, timeout=30) as admin:
            deadline = time.monotonic() + 15
            while True:
                records = admin.get("/api/usage", params={"tenant": "acme"}).json()["records"]
                if len(records) >= len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # a duplicate would have been written by now
            records = admin.get("/api/usage", params={"tenant": "acme"}).json()["records"]
    finally:
        second.stop()
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    for record in records:
        assert record["status"] == "success", record
        assert record["usage"] == {"input_tokens": 1, "output_tokens": 16}
        assert money(record["cost"]) > 0
