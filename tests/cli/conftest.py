"""Helpers for driving ``meterline …`` the way a user does (``run_cli`` is in tests/conftest.py).

Every test that takes ``run_cli`` runs once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

#: The test model of the brief: 0.0000005 USD per input token, 0.0000015 per output token.
M1_ADD = ("prices", "add", "--model", "test/m1", "--currency", "USD", "--unit", "1",
          "--input", "0.0000005", "--output", "0.0000015", "--effective-from", "2020-01-01")


def _fails(result: Result, code: int, *needles: str) -> str:
    """Assert a clean failure: exit ``code``, one ``error: …`` line on stderr naming every needle,
    no traceback, nothing on stdout. Returns the error line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


Ok = Callable[..., Any]
Fails = Callable[..., str]


@pytest.fixture
def fails() -> Fails:
    """``fails(result, code, *needles)``: see :func:`_fails`."""
    return _fails


@pytest.fixture
def ok(run_cli: Callable[..., Result]) -> Ok:
    """Run a command that must succeed; parse its stdout as JSON when ``--json`` was given."""

    def call(*args: str) -> Any:
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.output)
        if "--json" in args:
            return orjson.loads(result.stdout)
        return result.stdout

    return call


@pytest.fixture
def m1(ok: Ok) -> str:
    """``test/m1`` priced from 2020-01-01, added with ``prices add`` as a user would."""
    ok(*M1_ADD)
    return "test/m1"


def _write_jsonl(path: Path, events: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


@pytest.fixture
def write_jsonl() -> Callable[[Path, list[Any]], Path]:
    """``write_jsonl(path, events)``: one JSON event per line."""
    return _write_jsonl
