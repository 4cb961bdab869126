"""serve_in_thread, the required key, request counting and the standalone process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from meterline.simulator import SimState, create_simulator, serve_in_thread
from meterline.simulator.__main__ import main

KEY = "sk-upstream-secret"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"parts": [{"text": "hi"}]}]}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture(scope="module")
def keyed() -> Iterator[str]:
    with serve_in_thread(create_simulator(require_key=KEY)) as url:
        yield url


def test_serve_in_thread_starts_and_stops() -> None:
    app = create_simulator()
    with serve_in_thread(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url) as client:
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        port = int(url.rsplit(":", 1)[1])
    assert app.state.requests == {"/v1/chat/completions": 1}
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_counts_and_log(sim_url: str, sim: SimState) -> None:
    with httpx.Client(base_url=sim_url) as client:
        for _ in range(3):
            client.post("/v1/chat/completions", json=CHAT, headers={"x-trace": "t1"})
        client.post("/v1/messages", json={"model": "c", "messages": []})
    assert sim.requests == {"/v1/chat/completions": 3, "/v1/messages": 1}  # errors count too
    last = sim.received[-2]
    assert (last.method, last.path, last.body) == ("POST", "/v1/chat/completions", CHAT)
    assert last.headers["x-trace"] == "t1"


def test_required_key_openai(keyed: str) -> None:
    with openai.OpenAI(base_url=f"{keyed}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as raised:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert raised.value.code == "invalid_api_key"
    with openai.OpenAI(base_url=f"{keyed}/v1", api_key=KEY, max_retries=0) as client:
        assert client.models.list().data


def test_required_key_anthropic(keyed: str) -> None:
    with anthropic.Anthropic(base_url=keyed, api_key="wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            client.messages.create(
                model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert raised.value.response.json()["error"]["type"] == "authentication_error"
    with anthropic.Anthropic(base_url=keyed, api_key=KEY, max_retries=0) as client:
        message = client.messages.create(
            model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert message.usage.output_tokens == 5


def test_required_key_gemini(keyed: str) -> None:
    with httpx.Client(base_url=keyed) as client:
        refused = client.post(GENERATE, json=GEMINI)
        assert refused.status_code == 401
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
        assert client.post(GENERATE, json=GEMINI, headers={"x-goog-api-key": KEY}).is_success
        assert client.post(GENERATE, json=GEMINI, params={"key": KEY}).is_success
        bearer = {"authorization": f"Bearer {KEY}"}
        assert client.post("/v1/videos", json={"prompt": "p"}, headers=bearer).is_success


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--require-key" in out


def test_standalone_process() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "meterline.simulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    answer = client.post("/v1/chat/completions", json=CHAT)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline and process.poll() is None
                    time.sleep(0.05)
        assert answer.json()["usage"]["total_tokens"] == 17
    finally:
        process.terminate()
        process.wait(timeout=10)
