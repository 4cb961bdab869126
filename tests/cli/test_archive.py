"""``meterline archive`` (meterline/cli/archive.py), and ``usage list --archived``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

from meterline.store.archive import older_than

NOW = datetime.now(UTC)
CUTOFF = older_than(2, NOW)
#: Days from the cutoff: four events before it, three after.
DAYS = (-100, -31, -2, -0.5, 0, 1, 40)


@pytest.fixture
def usage_file(ok: Callable[..., Any], m1: str, write_jsonl: Callable[[Path, list[Any]], Path],
               tmp_path: Path) -> Path:
    ok("tenants", "create", "acme", "--json")
    events = [{"id": f"e{i}", "timestamp": (CUTOFF + timedelta(days=days)).isoformat(),
               "user": f"user-{i % 2}", "model": m1,
               "usage": {"input_tokens": 1000 + i, "output_tokens": 77 * i}}
              for i, days in enumerate(DAYS)]
    path = write_jsonl(tmp_path / "usage.jsonl", events)
    ok("usage", "ingest", str(path), "--tenant", "acme", "--json")
    return path


def test_archive_moves_old_records_and_keeps_every_number(
        ok: Callable[..., Any], run_cli: Callable[..., Result], usage_file: Path) -> None:
    views = [("stats", "summary", "--json"), ("stats", "trend", "--days", "200", "--json"),
             ("stats", "by", "model", "--start", "2020-01-01", "--json"),
             ("stats", "by", "day", "--tenant", "acme", "--start", "2020-01-01", "--json")]
    before = [ok(*view) for view in views]
    listed = ok("usage", "list", "--tenant", "acme", "--json")
    cycle = f"{CUTOFF:%Y-%m}"
    planned = ok("archive", "--before", cycle, "--dry-run", "--json")
    assert planned == {"before": cycle, "cutoff": CUTOFF.isoformat(), "records": 4,
                       "lines": 7, "kept_incomplete": 0, "dry_run": True}
    assert ok("usage", "list", "--tenant", "acme", "--json") == listed
    result = run_cli("archive", "--older-than", "2")
    assert result.exit_code == 0, result.output
    assert (f"moved 4 records and 7 charge lines from before {cycle} ({CUTOFF.isoformat()})"
            in result.stdout)
    assert "archiving" in result.stderr  # the progress bar
    assert [ok(*view) for view in views] == before
    hot = ok("usage", "list", "--tenant", "acme", "--json")
    assert sorted(r["id"] for r in hot) == ["e4", "e5", "e6"]
    both = ok("usage", "list", "--tenant", "acme", "--archived", "--json")
    assert both == listed
    rebuilt = ok("stats", "rebuild", "--json")
    assert rebuilt["records"] == len(DAYS)
    assert [ok(*view) for view in views] == before
    again = ok("archive", "--older-than", "2", "--json")
    assert (again["records"], again["lines"], again["dry_run"]) == (0, 0, False)
    # The same file once more: old events are duplicates, nothing is charged twice.
    assert ok("usage", "ingest", str(usage_file), "--tenant", "acme", "--json") == {
        "events": len(DAYS), "recorded": 0, "duplicates": len(DAYS), "unpriced": 0,
        "fx_missing": 0, "refused": 0}
    assert [ok(*view) for view in views] == before


def test_an_event_older_than_the_archive_is_refused(
        ok: Callable[..., Any], run_cli: Callable[..., Result], usage_file: Path,
        write_jsonl: Callable[[Path, list[Any]], Path], tmp_path: Path) -> None:
    ok("archive", "--older-than", "2", "--json")
    late = write_jsonl(tmp_path / "late.jsonl", [
        {"id": "late", "timestamp": (CUTOFF - timedelta(days=1)).isoformat(),
         "model": "test/m1", "usage": {"input_tokens": 5}},
        {"id": "fresh", "timestamp": NOW.isoformat(), "model": "test/m1",
         "usage": {"input_tokens": 5}}])
    result = run_cli("usage", "ingest", str(late), "--tenant", "acme", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["refused"] == 1
    assert (f"refused: late: events[0].timestamp: older than the archived period (before "
            f"{CUTOFF.isoformat()})") in result.stderr


@pytest.mark.parametrize(("args", "needles"), [
    ((), ("--older-than N or --before YYYY-MM",)),
    (("--older-than", "2", "--before", "2020-01"), ("one of",)),
    (("--older-than", "0"), ("--older-than: must be at least 1",)),
    (("--before", "2020-13"), ("--before:", "not a cycle")),
    (("--before", f"{NOW:%Y-%m}"), ("--before:", "too recent")),
])
def test_bad_input(run_cli: Callable[..., Result], fails: Callable[..., str],
                   args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    fails(run_cli("archive", *args), 2, *needles)
