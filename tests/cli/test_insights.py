"""``meterline forecast`` and ``meterline hints`` (meterline/cli/insights.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

D = Decimal


@pytest.fixture
def history(ok, m1, write_jsonl, tmp_path):
    """Tenant acme (USD, UTC): 0.5 USD at noon on each of the 40 days before today, three days
    in four by alice, the fourth by bob."""
    ok("tenants", "create", "acme", "--json")
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=k) for k in range(1, 41)]
    events = [{"id": f"e{k}", "timestamp": f"{d}T12:00:00Z", "model": m1,
               "user": "bob" if k % 4 == 0 else "alice",
               "usage": {"input_tokens": 1_000_000}} for k, d in enumerate(days)]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "past.jsonl", events)), "--tenant", "acme")
    return today, days


def test_forecast_json(ok, history):
    today, days = history
    found = ok("forecast", "--tenant", "acme", "--json")
    spent = D("0.5") * sum(1 for d in days if (d.year, d.month) == (today.year, today.month))
    assert (found["tenant"], found["currency"], found["month"]) == ("acme", "USD",
                                                                   f"{today:%Y-%m}")
    assert D(found["spent"]) == spent and found["days_elapsed"] == today.day
    left = found["days_in_month"] - today.day
    assert spent + D("0.5") * left <= D(found["projected"]) <= spent + D("0.5") * (left + 1)
    assert found["method"] == "recent-pace+weekday" and found["daily_level"] == "0.5"
    assert found["budgets"] == [] and found["unconverted"] == []
    everyone = ok("forecast", "--json")
    assert everyone["tenant"] is None and everyone["spent"] == found["spent"]


def test_forecast_text_names_spend_projection_and_budgets(ok, history):
    ok("budgets", "set", "--tenant", "acme", "--model", "test/m1", "--amount", "1",
       "--period", "month", "--mode", "alert")
    out = ok("forecast", "--tenant", "acme")
    assert out.startswith("tenant acme, ") and "projected" in out and "USD" in out
    assert "limit 1 USD" in out and "OVER" in out


def test_hints_json_and_text(ok, history):
    found = ok("hints", "--tenant", "acme", "--json")
    assert (found["tenant"], found["days"]) == ("acme", 30)
    [hint] = found["hints"]
    assert hint["kind"] == "concentration" and hint["evidence"]["user"] == "alice"
    # 21 of the 29 calls certainly inside the 30 days, 22 of 30 when noon 30 days ago is too.
    assert hint["evidence"]["share"] in ("0.7241", "0.7333")
    assert "alice" in ok("hints", "--tenant", "acme")
    narrow = ok("hints", "--tenant", "acme", "--days", "3", "--json")
    assert narrow["days"] == 3


@pytest.mark.parametrize("args, code, needle", [
    (("hints", "--tenant", "nope"), 1, "unknown tenant 'nope'"),
    (("hints", "--tenant", "acme", "--days", "0"), 2, "days must be a whole number from 1 to 366"),
    (("hints", "--tenant", "acme", "--days", "367", "--json"), 2, "not 367"),
    (("hints", "--tenant", "acme", "--days", "many"), 2, "not 'many'"),
    (("forecast", "--tenant", "nope", "--json"), 1, "unknown tenant 'nope'"),
])
def test_bad_input_is_one_clear_line(ok, fails, run_cli, args, code, needle):
    ok("tenants", "create", "acme", "--json")
    fails(run_cli(*args), code, needle)


def test_hints_needs_a_tenant(run_cli):
    result = run_cli("hints")
    assert result.exit_code == 2 and "--tenant" in result.stderr
    assert "Traceback" not in result.output
