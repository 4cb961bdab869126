"""Structured logs (meterline/logs.py): with ``log_format = "json"`` every line a server writes is
a JSON object, and a line written while a request is served carries that request's id, the one
its answer names in ``x-meterline-request-id`` (gateway calls and admin requests alike). Text,
the default, stays as it was."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from meterline.api.app import create_app
from meterline.config import Config, load_config
from meterline.errors import InvalidInput
from meterline.logs import JsonFormatter, logging_config
from tests.conftest import ADMIN, LiveServer
from tests.serving import Server, serve, upstream

#: The simulated provider answers this prompt with an HTTP 500.
FAILING = "x [[sim status=500]]"
#: Only a guard against a hung server.
DEADLINE = 120.0


def failing_call(server: Server) -> str:
    """A call the provider fails: the gateway passes the 500 on, and logs a warning."""
    key = server.new_key()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "openai/gpt-5-nano",
                                 "messages": [{"role": "user", "content": FAILING}]})
    assert answer.status_code == 500, answer.text
    request_id: str = answer.headers["x-meterline-request-id"]
    return request_id


def logged(server: Server, words: str) -> list[str]:
    """The server's stderr lines, once one of them contains ``words``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        lines = server.stderr.splitlines()
        if any(words in line for line in lines):
            return lines
        assert time.monotonic() < deadline, server.stderr
        time.sleep(0.05)


def test_json_lines_carry_the_request_id_of_the_call(tmp_path: Path) -> None:
    with upstream() as up, serve(tmp_path, up, settings='log_format = "json"') as server:
        request_id = failing_call(server)
        lines = logged(server, "failed upstream")
    entries = [json.loads(line) for line in lines if line]  # every line is JSON
    assert entries and all(isinstance(e, dict) for e in entries)
    [warning] = [e for e in entries if "failed upstream" in e["message"]]
    assert warning["request_id"] == request_id
    assert warning["level"] == "WARNING" and warning["logger"] == "meterline.gateway"
    assert warning["message"] == ("/v1/chat/completions failed upstream: the provider "
                                  "answered 500")
    when = datetime.fromisoformat(warning["time"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - when).total_seconds()) < 3600
    assert "exception" not in warning
    assert "meterline listening on" in server.stdout  # what serve prints for a person


def test_text_stays_as_it_was_and_the_flag_wins(tmp_path: Path) -> None:
    with upstream() as up, serve(tmp_path, up, "--log-format", "text",
                                 settings='log_format = "json"') as server:
        failing_call(server)
        lines = logged(server, "failed upstream")
    assert "/v1/chat/completions failed upstream: the provider answered 500" in lines
    assert not any(line.startswith("{") for line in lines), lines


# --- in one process: admin requests, exceptions ---------------------------------------------

@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """Meterline's log lines, as JSON, while the block runs (the process's own logging setup
    is left alone: pytest's capture hangs on it)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("meterline")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def probed_app(config: Config) -> FastAPI:
    app = create_app(config)

    async def warn() -> dict[str, str]:
        logging.getLogger("meterline.probe").warning("probe warning")
        return {}

    async def fail() -> dict[str, str]:
        raise RuntimeError("probe failure")

    app.add_api_route("/api/_probe/warn", warn)
    app.add_api_route("/api/_probe/fail", fail)
    return app


def entries(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_request_has_an_id_in_its_answer_and_its_log_lines(config: Config) -> None:
    with LiveServer(probed_app(config)) as url, \
            httpx.Client(base_url=url, timeout=60) as http, json_log() as out:
        tenants = http.get("/api/tenants", headers=ADMIN)
        assert tenants.status_code == 200
        first = tenants.headers["x-meterline-request-id"]
        assert first.startswith("req_")
        warned = http.get("/api/_probe/warn", headers=ADMIN)
        assert warned.status_code == 200
        failed = http.get("/api/_probe/fail", headers=ADMIN)
        assert failed.status_code == 500
        assert "probe failure" not in failed.text
    ids = {first, warned.headers["x-meterline-request-id"],
           failed.headers["x-meterline-request-id"]}
    assert len(ids) == 3  # one per request
    found = entries(out)
    [warning] = [e for e in found if e["message"] == "probe warning"]
    assert warning["request_id"] == warned.headers["x-meterline-request-id"]
    # The unexpected error is logged by the server-error handler, outside the middleware.
    [error] = [e for e in found if e["message"] == "unexpected error"]
    assert error["request_id"] == failed.headers["x-meterline-request-id"]
    assert error["level"] == "ERROR"
    assert "RuntimeError: probe failure" in error["exception"]
    assert error["exception"].startswith("Traceback")


def test_a_line_outside_any_request_has_no_request_id() -> None:
    with json_log() as out:
        logging.getLogger("meterline.probe").warning("between requests: %d", 42)
    [entry] = entries(out)
    assert entry["message"] == "between requests: 42"
    assert "request_id" not in entry and "exception" not in entry
    assert set(entry) == {"time", "level", "logger", "message"}


def test_json_escapes_what_it_must() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("meterline.x", logging.ERROR, __file__, 1,
                                   "line one\nline two \"quoted\" \udcff %s", ("中文",),
                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"].startswith("line one\nline two \"quoted\" ")
    assert entry["message"].endswith(" 中文")
    assert "ValueError: bad" in entry["exception"]


def test_uvicorn_access_lines_are_json_too() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    setup = logging_config("json")
    assert setup["loggers"]["uvicorn.access"]["handlers"] == ["json"]
    assert logging_config("text") == LOGGING_CONFIG  # uvicorn's own, as before


# --- the setting ------------------------------------------------------------------------------

def test_log_format_setting(tmp_path: Path) -> None:
    assert load_config(env={}).log_format == "text"
    path = tmp_path / "meterline.toml"
    path.write_text('log_format = "json"\n')
    assert load_config(path, env={}).log_format == "json"
    assert load_config(path, env={"METERLINE_LOG_FORMAT": "text"}).log_format == "text"
    path.write_text('log_format = "yaml"\n')
    with pytest.raises(InvalidInput, match="log_format must be one of text, json"):
        load_config(path, env={})
    with pytest.raises(InvalidInput, match="log_format must be one of text, json"):
        load_config(env={"METERLINE_LOG_FORMAT": "JSON"})
