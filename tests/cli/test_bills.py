"""``meterline bill``, ``export`` and ``refund`` (meterline/cli/bills.py), on SQLite and
PostgreSQL, driven as a user would."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from meterline.domain.money import quantize_minor

D = Decimal


@pytest.fixture
def acme(ok: Callable[..., Any], m1: str, write_jsonl: Callable[[Path, list[Any]], Path],
         tmp_path: Path) -> dict[str, str]:
    """Tenant acme (USD) with October usage of two users; returns request ids by event id."""
    ok("tenants", "create", "acme", "--json")
    events = [{"id": f"e{i}", "timestamp": f"2026-10-{i + 1:02d}T08:00:00Z",
               "user": f"user-{i % 2}", "model": m1,
               "usage": {"input_tokens": 1001 + i, "output_tokens": 7 * i + 3}} for i in range(5)]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "usage.jsonl", events)), "--tenant",
       "acme", "--json")
    return {r["id"]: r["request_id"] for r in ok("usage", "list", "--tenant", "acme", "--json")}


def test_bill_shows_issues_and_pays(ok: Callable[..., Any], acme: dict[str, str]) -> None:
    found = ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--json")
    assert (found["tenant"], found["cycle"], found["currency"], found["status"]) == (
        "acme", "2026-10", "USD", "open")
    assert [(ln["meter"], ln["quantity"]) for ln in found["lines"]] == [
        ("input_tokens", "5015"), ("output_tokens", "85")]
    exact = D("5015") * D("0.0000005") + D("85") * D("0.0000015")
    assert D(found["total"]) == exact
    users = [ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--user", u, "--json")
             for u in ("user-0", "user-1")]
    assert D(users[0]["total"]) + D(users[1]["total"]) == exact
    text = ok("bill", "--tenant", "acme", "--cycle", "2026-10")
    assert "bill acme 2026-10: open, USD" in text and f"total {found['total']} USD" in text

    issued = ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--issue", "--json")
    assert issued["status"] == "issued" and D(issued["total"]) == quantize_minor(exact, "USD")
    assert sum(D(ln["amount"]) for ln in issued["lines"]) == D(issued["total"])
    assert ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--json") == issued
    paid = ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--pay", "--json")
    assert paid["status"] == "paid" and paid["lines"] == issued["lines"]


def test_bill_errors(run_cli: Callable[..., Result], fails: Callable[..., str],
                     acme: dict[str, str]) -> None:
    fails(run_cli("bill", "--tenant", "acme", "--cycle", "2026-13"), 2, "cycle")
    fails(run_cli("bill", "--tenant", "nobody", "--cycle", "2026-10"), 1, "nobody")
    fails(run_cli("bill", "--tenant", "acme", "--cycle", "2026-10", "--user", "nobody"), 1,
          "nobody")
    fails(run_cli("bill", "--tenant", "acme", "--cycle", "2026-10", "--pay"), 2,
          "status", "allowed from open: issued, void")
    assert run_cli("bill", "--tenant", "acme", "--cycle", "2026-10", "--void").exit_code == 0
    fails(run_cli("bill", "--tenant", "acme", "--cycle", "2026-10", "--issue"), 2,
          "is void", "allowed from void: none")


@pytest.mark.parametrize("flags", [("--issue", "--pay"), ("--pay", "--issue"),
                                   ("--issue", "--void"), ("--issue", "--pay", "--void")])
def test_bill_refuses_two_status_changes_at_once(run_cli: Callable[..., Result],
                                                 fails: Callable[..., str],
                                                 ok: Callable[..., Any], acme: dict[str, str],
                                                 flags: tuple[str, ...]) -> None:
    """Before, the last flag won silently: `--issue --pay` paid nothing and issued the bill."""
    fails(run_cli("bill", "--tenant", "acme", "--cycle", "2026-10", *flags), 2, "together",
          *flags)
    assert ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--json")["status"] == "open"


def test_export_writes_files_that_add_up(ok: Callable[..., Any], acme: dict[str, str],
                                         tmp_path: Path, run_cli: Callable[..., Result],
                                         fails: Callable[..., str]) -> None:
    total = D(ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--issue", "--json")["total"])
    for fmt, lang in (("csv", "en"), ("csv", "zh"), ("focus", "en"), ("xlsx", "zh")):
        path = tmp_path / f"bill-{fmt}-{lang}"
        text = ok("export", "--tenant", "acme", "--cycle", "2026-10", "--format", fmt,
                  "--lang", lang, "-o", str(path))
        assert f"wrote {path}" in text and f"total {total}" in text
        content = path.read_bytes()
        if fmt == "xlsx":
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                assert "账单 2026-10" in archive.read("xl/workbook.xml").decode()
            continue
        rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
        if fmt == "focus":
            column = rows[0].index("BilledCost")
            assert sum(D(row[column]) for row in rows[1:]) == total
        else:
            assert sum(D(row[7]) for row in rows[1:-1]) == D(rows[-1][7]) == total
    user = tmp_path / "user.csv"
    ok("export", "--tenant", "acme", "--cycle", "2026-10", "--format", "csv", "--user",
       "user-1", "-o", str(user))
    # the user's bill is open (the total row has no price currency or FX rate)
    assert user.read_text().splitlines()[-1].endswith(",USD,open,,")
    fails(run_cli("export", "--tenant", "acme", "--cycle", "10/2026", "--format", "csv", "-o",
                  str(user)), 2, "cycle")
    fails(run_cli("export", "--tenant", "acme", "--cycle", "2026-10", "--format", "csv", "-o",
                  str(tmp_path / "missing" / "x.csv")), 2, "cannot write")


def test_refund(ok: Callable[..., Any], acme: dict[str, str], run_cli: Callable[..., Result],
                fails: Callable[..., str]) -> None:
    before = D(ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--json")["total"])
    found = ok("refund", acme["e2"], "--reason", "broken answer", "--json")
    assert found["duplicate"] is False and found["refund_of"] == acme["e2"]
    refund = found["refund"]
    assert (refund["status"], refund["source"], refund["cost"]) == (
        "refunded", "refund", "-0.000527")  # 1003 × 0.0000005 + 17 × 0.0000015
    assert refund["metadata"]["refund_reason"] == "broken answer"
    text = ok("refund", acme["e2"])
    assert "already refunded" in text and refund["request_id"] in text
    bill = ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--json")
    assert D(bill["total"]) == before - D("0.000527")
    assert [ln["quantity"] for ln in bill["lines"] if ln["status"] == "refunded"] == [
        "-1003", "-17"]
    fails(run_cli("refund", "req_unknown"), 1, "req_unknown")
    fails(run_cli("refund", refund["request_id"]), 2, "itself a refund")
