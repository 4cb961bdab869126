"""The targets of the benchmark: the fake upstream called directly, the floor (a minimal Python
pass-through), meterline, LiteLLM proxy.

Each target says where a run of each mode (``plain`` or ``stream``) is sent, with which body
and headers. meterline runs with auth, metering and the journal on (one worker, SQLite in a
temp dir, a price for the fake model so every call is priced); the floor (floor.py) forwards
calls and nothing else; LiteLLM runs from its own virtualenv (``bench/.venv-litellm``), one
worker, no database. The floor and meterline can run with the event-loop lag probe
(lagprobe/sitecustomize.py) writing into ``lag_dir``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fake_upstream import MODEL, completion_body, stream_body
from procs import Child, free_port, start_child, wait_until

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
LITELLM_VENV = BENCH / ".venv-litellm"
REQUIREMENTS = BENCH / "requirements.txt"
#: The folder whose sitecustomize.py measures a server's event-loop lag (see its docstring).
LAGPROBE = BENCH / "gateway" / "lagprobe"
FLOOR = BENCH / "gateway" / "floor.py"
ADMIN_TOKEN = "bench-admin-token"
MESSAGES = [{"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": "Say something short about proxies."}]
#: The price added for the fake models (USD per 1M tokens), so every call is priced.
#: The upstream model name LiteLLM is configured with: one in its bundled cost map, so that it
#: costs every call on its default path (nginx answers whatever the name).
LITELLM_PRICED_MODEL = "gpt-4o-mini"
PRICES = {"input_tokens": "0.15", "cached_input_tokens": "0.075", "output_tokens": "0.60"}

MODES = ("plain", "stream")


def chat_body(model: str, mode: str) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 32}
    if mode == "stream":
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


class Direct:
    """wrk straight at nginx: the baseline the proxies' overhead is measured against."""

    name = "direct"

    lag_dir: Path | None = None

    def __init__(self, upstream: str, nginx_pgid: int) -> None:
        self.upstream = upstream
        self.pgid = nginx_pgid  # the CPU counted for direct calls is nginx's

    def url(self, mode: str) -> str:
        return f"{self.upstream}/{'sse' if mode == 'stream' else 'plain'}/v1/chat/completions"

    def body(self, mode: str) -> bytes:
        return chat_body(MODEL, mode)

    def headers(self, tag: str) -> dict[str, str]:
        return {"Authorization": "Bearer fake"}

    def stop(self) -> None:
        pass


def probed(env: dict[str, str], lag_dir: Path | None) -> dict[str, str]:
    """``env`` with the lag probe switched on, writing into ``lag_dir`` (unchanged if None)."""
    if lag_dir is None:
        return env
    lag_dir.mkdir(parents=True, exist_ok=True)
    path = [str(LAGPROBE), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return env | {"BENCH_LAG_DIR": str(lag_dir), "PYTHONPATH": os.pathsep.join(path)}


class Floor:
    """floor.py: uvicorn + raw ASGI + aiohttp to the same upstream; no auth, no metering. What
    meterline adds is measured against it in the same run."""

    name = "floor"

    def __init__(self, workdir: Path, upstream: str, lag_dir: Path | None = None) -> None:
        self.dir = workdir / "floor"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lag_dir = lag_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = probed({k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")},
                     lag_dir)
        self.child: Child = start_child(
            "floor", [sys.executable, str(FLOOR), "--port", str(self.port),
                      "--upstream", upstream], self.dir / "server.log", env=env, cwd=self.dir)
        try:
            wait_until(lambda: httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200,
                       30, self.child)
            for mode, expected in (("plain", completion_body()), ("stream", stream_body())):
                answer = httpx.post(self.url(mode), content=self.body(mode), timeout=30,
                                    headers={"Content-Type": "application/json"})
                if answer.status_code != 200 or answer.content != expected:
                    raise RuntimeError(f"floor check call ({mode}): {answer.status_code} "
                                       f"{answer.text[:300]}")
        except (RuntimeError, httpx.HTTPError) as exc:
            self.child.stop()
            raise RuntimeError(f"floor did not start: {exc}\n{self.child.tail()}") from None

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def pgid(self) -> int:
        return self.child.pid

    def url(self, mode: str) -> str:
        return f"{self.base}/{'sse' if mode == 'stream' else 'plain'}/v1/chat/completions"

    def body(self, mode: str) -> bytes:
        return chat_body(MODEL, mode)

    def headers(self, tag: str) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        self.child.stop()


class Meterline:
    """``meterline serve --workers N`` (``workers``, 1 unless asked) with a fresh SQLite database
    and journal in ``workdir``, run from the source tree ``source`` (put first on PYTHONPATH: a
    scratch copy with a change can be measured against the same upstream)."""

    name = "meterline"

    def __init__(self, workdir: Path, upstream: str, source: Path = REPO,
                 lag_dir: Path | None = None, workers: int = 1) -> None:
        self.lag_dir = lag_dir
        self.workers = workers
        self.dir = workdir / "meterline"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "meterline.db"
        config = self.dir / "meterline.toml"
        config.write_text(f"""\
reporting_currency = "USD"

[database]
url = "sqlite:///{self.db}"

[[providers]]
name = "fake"
kind = "openai"
base_url = "{upstream}/plain/v1"
api_key_env = "BENCH_FAKE_API_KEY"

[[providers]]
name = "fakestream"
kind = "openai"
base_url = "{upstream}/sse/v1"
api_key_env = "BENCH_FAKE_API_KEY"

[gateway]
journal_dir = "{self.dir / 'journal'}"
""")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("METERLINE_")}
        env |= {"METERLINE_CONFIG": str(config), "METERLINE_ADMIN_TOKEN": ADMIN_TOKEN,
                "BENCH_FAKE_API_KEY": "fake", "PYTHONPATH": str(source)}
        env = probed(env, lag_dir)
        self.child: Child = start_child(
            "meterline", [sys.executable, "-m", "meterline.cli", "serve", "--port",
                          str(self.port), "--workers", str(workers)],
            self.dir / "server.log", env=env, cwd=self.dir)
        try:
            wait_until(lambda: httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200,
                       90, self.child)
            self._setup()
        except (RuntimeError, httpx.HTTPError) as exc:
            self.child.stop()
            raise RuntimeError(f"meterline did not start: {exc}\n{self.child.tail()}") from None

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def pgid(self) -> int:
        return self.child.pid

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{self.base}{path}", timeout=30,
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"meterline {method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def _setup(self) -> None:
        self._admin("POST", "/api/tenants", json={"name": "bench", "currency": "USD"})
        self.key: str = self._admin("POST", "/api/keys", json={"tenant": "bench"})["key"]
        for provider in ("fake", "fakestream"):
            self._admin("POST", "/api/prices", json={
                "model": f"{provider}/{MODEL}", "billing_type": "token", "currency": "USD",
                "unit": "1M", "effective_from": "2020-01-01", "source": "bench",
                "prices": PRICES})
        # One call of each mode must come back priced before anything is measured.
        for mode in MODES:
            answer = httpx.post(self.url(mode), content=self.body(mode), timeout=30,
                                headers={**self.headers("check"),
                                         "Content-Type": "application/json"})
            if answer.status_code != 200:
                raise RuntimeError(f"meterline check call ({mode}): {answer.status_code} "
                                   f"{answer.text[:500]}")
            if mode == "plain" and "x-meterline-cost" not in answer.headers:
                raise RuntimeError("meterline check call came back without x-meterline-cost")

    def url(self, mode: str) -> str:
        return f"{self.base}/v1/chat/completions"

    def body(self, mode: str) -> bytes:
        provider = "fakestream" if mode == "stream" else "fake"
        return chat_body(f"{provider}/{MODEL}", mode)

    def headers(self, tag: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "x-meterline-user": tag}

    def metered(self, tag: str) -> tuple[int, int]:
        """(records, priced records) in the ledger for calls sent with ``tag`` as the user."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute("SELECT count(*), count(cost) FROM usage_records "
                               "WHERE user_id = ?", (tag,)).fetchone()
        return int(row[0]), int(row[1])

    def wait_metered(self, tag: str, at_least: int, timeout: float = 60,
                     stalled: float = 10) -> tuple[int, int]:
        """The ledger count for ``tag`` once the drainer has caught up: at least ``at_least``
        and unchanged for a second; or whatever is there after ``timeout``, or once it has not
        moved for ``stalled`` seconds (the drain is stuck: the table will say so)."""
        deadline = time.monotonic() + timeout
        last, moved = (-1, -1), time.monotonic()
        while True:
            now = self.metered(tag)
            if now != last:
                moved = time.monotonic()
            elif now[0] >= at_least or time.monotonic() - moved > stalled:
                return now
            if time.monotonic() > deadline:
                return now
            last = now
            time.sleep(1.0)

    def sample_record(self) -> dict[str, Any]:
        """The newest ledger record, through the admin API."""
        records = self._admin("GET", "/api/usage", params={"limit": 1})["records"]
        return records[0] if records else {}

    def api_count(self, tag: str) -> int:
        """Records for ``tag`` counted through the admin API (capped at 10,000)."""
        records = self._admin("GET", "/api/usage",
                              params={"tenant": "bench", "user": tag, "limit": 10_000})
        return len(records["records"])

    def stop(self) -> None:
        self.child.stop()


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed or started; the table says why."""


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m;"
                           "print(m.version('litellm'))"], capture_output=True, text=True)
    return done.stdout.strip() or None


def ensure_litellm(log: Path) -> Path:
    """The ``litellm`` command of the benchmark's own virtualenv, created on first use from
    ``bench/requirements.txt`` (never installed into the project's environment)."""
    command = LITELLM_VENV / "bin" / "litellm"
    if command.exists():
        return command
    print(f"  creating {LITELLM_VENV.relative_to(REPO)} and installing "
          f"{REQUIREMENTS.relative_to(REPO)} (first run only, a minute or two) ...", flush=True)
    with open(log, "w") as out:
        made = subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)],
                              stdout=out, stderr=subprocess.STDOUT)
        if made.returncode != 0:
            raise LiteLLMUnavailable(f"python -m venv failed (see {log})")
        # Keep the virtualenv out of git whatever the repository's .gitignore says.
        (LITELLM_VENV / ".gitignore").write_text("*\n")
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
               "-r", str(REQUIREMENTS)]
        installed = subprocess.run(pip, stdout=out, stderr=subprocess.STDOUT)
    if installed.returncode != 0 or not command.exists():
        raise LiteLLMUnavailable(f"pip install -r {REQUIREMENTS.name} failed (see {log})")
    return command


class LiteLLM:
    """``litellm --config cfg.yaml --num_workers 1``: no database, a master key, one
    deployment per mode pointing at nginx, as a model LiteLLM has a price for (it costs every
    call, as meterline does)."""

    name = "litellm"
    lag_dir: Path | None = None  # its own virtualenv and start-up: not probed

    def __init__(self, workdir: Path, upstream: str) -> None:
        self.dir = workdir / "litellm"
        self.dir.mkdir(parents=True, exist_ok=True)
        command = ensure_litellm(self.dir / "install.log")
        # Auth on, like meterline's: the master key (no database, so no virtual keys).
        self.master_key = f"sk-bench-{secrets.token_hex(24)}"
        entries = []
        for name, path in ((MODEL, "plain"), (f"{MODEL}-stream", "sse")):
            entries.append(f"""\
  - model_name: {name}
    litellm_params:
      model: openai/{LITELLM_PRICED_MODEL}
      api_base: {upstream}/{path}/v1
      api_key: fake
""")
        config = self.dir / "config.yaml"
        config.write_text("model_list:\n" + "".join(entries) + f"""\
litellm_settings:
  set_verbose: false
  drop_params: true
general_settings:
  master_key: {self.master_key}
""")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY", "PYTHONPATH")
               and not k.startswith("METERLINE_")}
        # The cost map ships inside the package: never fetch it at start.
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False"}
        self.child: Child = start_child(
            "litellm", [str(command), "--config", str(config), "--host", "127.0.0.1",
                        "--port", str(self.port), "--num_workers", "1"],
            self.dir / "server.log", env=env, cwd=self.dir)
        try:
            wait_until(lambda: httpx.get(f"{self.base}/health/liveliness",
                                         timeout=2).status_code == 200, 180, self.child)
            for mode in MODES:
                answer = httpx.post(self.url(mode), content=self.body(mode), timeout=30,
                                    headers={**self.headers("check"),
                                             "Content-Type": "application/json"})
                if answer.status_code != 200:
                    raise RuntimeError(f"check call ({mode}): {answer.status_code} "
                                       f"{answer.text[:300]}")
        except (RuntimeError, httpx.HTTPError) as exc:
            self.child.stop()
            raise LiteLLMUnavailable(f"litellm did not start: {exc}") from None

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def pgid(self) -> int:
        return self.child.pid

    def url(self, mode: str) -> str:
        return f"{self.base}/v1/chat/completions"

    def body(self, mode: str) -> bytes:
        return chat_body(f"{MODEL}-stream" if mode == "stream" else MODEL, mode)

    def headers(self, tag: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def stop(self) -> None:
        self.child.stop()
