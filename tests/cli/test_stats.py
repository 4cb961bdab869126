"""``meterline stats summary|by|trend|rebuild`` (meterline/cli/stats.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import delete, select

from meterline.store.engine import make_engine
from meterline.store.schema import (
    charge_lines,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
)
from meterline.store.types import money_sum

NOW = datetime.now(UTC)


def lines_total(database_url: str) -> Decimal:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(money_sum(charge_lines.c.amount))).scalar_one()
    finally:
        engine.dispose()


def wipe_rollups(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for table in (usage_daily, usage_daily_models, usage_daily_people,
                          usage_daily_meters):
                conn.execute(delete(table))
    finally:
        engine.dispose()


@pytest.fixture
def acme(ok: Callable[..., Any], m1: str, write_jsonl: Callable[[Path, list[Any]], Path],
         tmp_path: Path) -> str:
    ok("tenants", "create", "acme", "--json")
    events = [{"id": f"e{i}", "timestamp": (NOW - timedelta(days=i % 3)).isoformat(),
               "user": f"user-{i % 2}", "model": m1, "status": "error" if i == 4 else "success",
               "usage": {"input_tokens": 100 + i, "output_tokens": 7 * i}}
              for i in range(6)]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "usage.jsonl", events)), "--tenant",
       "acme", "--json")
    return "acme"


def test_summary_by_and_trend(ok: Callable[..., Any], acme: str, database_url: str) -> None:
    summary = ok("stats", "summary", "--tenant", acme, "--json")
    assert (summary["currency"], summary["calls"]) == ("USD", 6)
    assert Decimal(summary["total"]) == lines_total(database_url)
    assert summary["success_rate"] == round(5 / 6, 4)
    text = ok("stats", "summary", "--tenant", acme)
    # read by a person: rounded (two significant digits below a cent); --json stays exact
    assert summary["total"] == "0.000465"
    assert "total 0.00047 USD" in text and "83.33% succeeded" in text

    by_user = ok("stats", "by", "user", "--tenant", acme, "--start", "2020-01-01", "--json")
    assert {g["key"]: g["calls"] for g in by_user["groups"]} == {"user-0": 3, "user-1": 3}
    assert by_user["total_cost"] == summary["total"]
    text = ok("stats", "by", "user", "--tenant", acme, "--start", "2020-01-01")
    assert "user-0\t" in text and "user-1\t" in text

    trend = ok("stats", "trend", "--tenant", acme, "--days", "3", "--json")
    assert [d["calls"] for d in trend["days"]] == [2, 2, 2]
    assert trend["total"] == summary["total"]
    assert "total " in ok("stats", "trend", "--days", "3")


def test_rebuild_restores_the_rollups(ok: Callable[..., Any], acme: str,
                                      database_url: str,
                                      run_cli: Callable[..., Result]) -> None:
    before = ok("stats", "by", "model", "--start", "2020-01-01", "--json")
    wipe_rollups(database_url)
    assert ok("stats", "summary", "--json")["calls"] == 0
    result = run_cli("stats", "rebuild")
    assert result.exit_code == 0, result.output
    assert "rollups rebuilt from 6 records" in result.stdout
    assert "rebuilding" in result.stderr  # the progress bar
    assert ok("stats", "by", "model", "--start", "2020-01-01", "--json") == before
    assert ok("stats", "rebuild", "--tenant", acme, "--json") == {"tenant": "acme",
                                                                  "records": 6}
    assert ok("stats", "by", "model", "--start", "2020-01-01", "--json") == before


def test_bad_input(run_cli: Callable[..., Result], fails: Callable[..., str],
                   acme: str) -> None:
    fails(run_cli("stats", "trend", "--days", "0"), 2, "days")
    fails(run_cli("stats", "by", "model", "--start", "2026-02-01", "--end", "2026-01-01"), 2,
          "end")
    fails(run_cli("stats", "by", "model", "--start", "last week"), 2, "start")
    fails(run_cli("stats", "summary", "--tenant", "nobody"), 1, "nobody")
    fails(run_cli("stats", "rebuild", "--tenant", "nobody"), 1, "nobody")
    unknown = run_cli("stats", "by", "colour")
    assert unknown.exit_code == 2 and "colour" in unknown.output


@pytest.mark.parametrize("command", [(), ("summary",), ("by",), ("trend",), ("rebuild",)])
def test_help(run_cli: Callable[..., Result], command: tuple[str, ...]) -> None:
    result = run_cli("stats", *command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_text_rounds_money_for_reading_and_json_keeps_it_exact(
        ok: Callable[..., Any], m1: str, write_jsonl: Callable[[Path, list[Any]], Path],
        tmp_path: Path) -> None:
    ok("tenants", "create", "acme")
    ok("prices", "add", "--model", "test/cny", "--currency", "CNY", "--unit", "1",
       "--input", "0.0000005", "--output", "0.0000015", "--effective-from", "2020-01-01")
    ok("fx", "set", "USD", "CNY", "7.1", "--from", "2020-01-01")  # CNY -> USD: its reciprocal
    events = [{"id": "big", "model": m1, "usage": {"input_tokens": 1234567}},
              {"id": "small", "model": "test/cny", "usage": {"input_tokens": 1000,
                                                             "output_tokens": 500}}]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "usage.jsonl", events)), "--tenant", "acme")
    ok("budgets", "set", "--tenant", "acme", "--amount", "10", "--mode", "alert")

    # exact in --json: 0.6172835 + 0.00125 CNY at 1/7.1 (ten places: 0.0001760563)
    summary = ok("stats", "summary", "--tenant", "acme", "--json")
    assert summary["total"] == "0.6174595563"
    text = ok("stats", "summary", "--tenant", "acme")
    assert "total 0.62 USD" in text and "0.6174595563" not in text
    [budget] = ok("budgets", "list", "--json")
    assert budget["spent"] == "0.6174595563" and budget["remaining"] == "9.3825404437"
    listed = ok("budgets", "list")
    assert "spent 0.62" in listed and "remaining 9.38" in listed
    by_model = ok("stats", "by", "model", "--tenant", "acme", "--start", "2020-01-01")
    assert "test/m1\t0.62\t" in by_model and "test/cny\t0.00018\t" in by_model
    records = {r["id"]: r for r in ok("usage", "list", "--tenant", "acme", "--json")}
    assert (records["small"]["cost"], records["small"]["billed_cost"]) == ("0.00125",
                                                                           "0.0001760563")
    assert "0.0013 CNY" in ok("usage", "list", "--tenant", "acme")  # cost, in its currency
