"""``meterline sync --file`` and ``meterline reconcile`` (meterline/cli/reconcile.py), on SQLite
and PostgreSQL, driven as a user would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

BILL = """ProviderName,x_Model,BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd
test,m1,0.00125,USD,2026-10-01T00:00:00Z,2026-11-01T00:00:00Z
test,m2,1,USD,2026-10-05T00:00:00Z,2026-10-06T00:00:00Z
"""


def test_sync_a_bill_file_then_reconcile(ok: Any, m1: str, tmp_path: Path, write_jsonl: Any,
                                         run_cli: Any) -> None:
    ok("tenants", "create", "acme")
    events = write_jsonl(tmp_path / "usage.jsonl", [
        {"id": "a", "timestamp": "2026-10-03T10:00:00Z", "model": m1,
         "usage": {"input_tokens": 1000, "output_tokens": 500}}])
    ok("usage", "ingest", str(events), "--tenant", "acme")
    bill = tmp_path / "bill.csv"
    bill.write_text(BILL)
    stored = ok("sync", "--file", str(bill), "--format", "focus", "--json")
    assert stored["lines"] == 2 and stored["totals"] == {"USD": "1.00125"}
    assert "2 rows of test" in ok("sync", "--file", str(bill))
    report = ok("reconcile", "--cycle", "2026-10", "--json")
    assert [(r["model"], r["status"], r["metered"], r["billed"]) for r in report["rows"]] == [
        ("test/m1", "match", "0.00125", "0.00125"), ("test/m2", "only_billed", None, "1")]
    text = run_cli("reconcile", "--cycle", "2026-10", "--provider", "test")
    assert text.exit_code == 0 and "only_billed" in text.stdout and "test/m1" in text.stdout
    # the row that differs says why it may: nothing metered for m2, nothing in the ledger
    [cause] = [line for line in text.stdout.splitlines() if line.startswith("    likely:")]
    assert "billed more than metered with nothing in the ledger" in cause
    assert report["rows"][1]["causes"][0]["code"] == "not_metered"


def test_sync_and_reconcile_refuse_bad_input(run_cli: Any, fails: Any, tmp_path: Path) -> None:
    fails(run_cli("sync"), 2, "--file")
    fails(run_cli("sync", "--file", str(tmp_path / "none.csv")), 2, "none.csv")
    bill = tmp_path / "bill.csv"
    bill.write_text(BILL)
    fails(run_cli("sync", "--file", str(bill), "--format", "tencent"), 2, "tencent file",
          "Usage Start Time")
    fails(run_cli("sync", "--file", str(bill), "--cycle", "2026-10"), 2, "--cycle")
    bill.write_text(BILL.replace("0.00125", "cheap"))
    fails(run_cli("sync", "--file", str(bill)), 2, "line 2", "BilledCost")
    fails(run_cli("reconcile", "--cycle", "October"), 2, "cycle")
    fails(run_cli("reconcile", "--cycle", "2026-10", "--tolerance", "-1"), 2, "tolerance")
    assert run_cli("sync", "--help").exit_code == 0
    assert run_cli("reconcile", "--help").exit_code == 0


def _local(day: str, clock: str, zone: str) -> str:
    """A local time of ``zone`` as the UTC instant an event carries."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(zone)).astimezone(
        UTC).isoformat()


@pytest.mark.parametrize(("zone", "currency"), [
    ("UTC", "USD"), ("Asia/Shanghai", "CNY"), ("America/Los_Angeles", "USD")])
def test_a_focus_export_reads_back_and_reconciles_in_every_timezone(
        ok: Any, m1: str, tmp_path: Path, write_jsonl: Any, zone: str, currency: str) -> None:
    ok("tenants", "create", "acme", "--currency", currency, "--timezone", zone)
    ok("fx", "set", "USD", "CNY", "7.1", "--from", "2020-01-01")
    # Calls on both sides of the cycle's first and last local midnights, and one in between.
    stamps = [("2026-10-31", "23:30"), ("2026-11-01", "00:30"), ("2026-11-15", "12:00"),
              ("2026-11-30", "23:30"), ("2026-12-01", "00:30")]
    events = [{"id": f"e{n}", "timestamp": _local(day, clock, zone), "model": m1,
               "usage": {"input_tokens": 10_000_000 + 1234 * n, "output_tokens": 777 * n}}
              for n, (day, clock) in enumerate(stamps)]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "usage.jsonl", events)), "--tenant", "acme")

    for step in ("open", "issued"):
        if step == "issued":
            ok("bill", "--tenant", "acme", "--cycle", "2026-11", "--issue", "--json")
        focus = tmp_path / f"bill-{step}.csv"
        ok("export", "--tenant", "acme", "--cycle", "2026-11", "--format", "focus", "-o",
           str(focus))
        stored = ok("sync", "--file", str(focus), "--format", "focus", "--json")
        assert (stored["from"], stored["until"]) == ("2026-11-01", "2026-12-01"), stored
        report = ok("reconcile", "--cycle", "2026-11", "--json")
        assert report["currency"] == currency
        rows = report["rows"]
        assert [(r["model"], r["date"], r["until"], r["status"]) for r in rows] == [
            ("test/m1", "2026-11-01", "2026-12-01", "match")], rows
        bill = ok("bill", "--tenant", "acme", "--cycle", "2026-11", "--json")
        assert rows[0]["billed"] == bill["total"]
        if step == "open":  # exact amounts: the ledger's own numbers come back to the digit
            assert rows[0]["difference"] == "0" and rows[0]["metered"] == bill["exact_total"]
