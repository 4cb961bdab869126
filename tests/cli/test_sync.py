"""``meterline sync --provider P`` (meterline/cli/reconcile.py) against fake provider billing
APIs on loopback, configured as a user configures it: a [[bill_sources]] entry whose
credentials are in environment variables. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.billing.conftest import serving
from tests.billing.data import BY_PROVIDER, KEY_ID, SECRET


def _config(tmp_path: Path, entries: str) -> str:
    path = tmp_path / "meterline.toml"
    path.write_text(entries, encoding="utf-8")
    return str(path)


def _aliyun(url: str, **extra: str) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in extra.items())
    return f"""
[[bill_sources]]
provider = "aliyun"
access_key_id_env = "TEST_ALI_ID"
access_key_secret_env = "TEST_ALI_SECRET"
endpoint = "{url}"
requests_per_second = 1000
{lines}"""


def test_sync_stores_the_lines_prints_the_balance_and_twice_changes_nothing(
        run_cli: Any, ok: Any, tmp_path: Path) -> None:
    case = BY_PROVIDER["aliyun"]
    run_cli.env.update({"TEST_ALI_ID": KEY_ID, "TEST_ALI_SECRET": SECRET})
    with serving(case) as (url, account):
        config = _config(tmp_path, _aliyun(url, low_balance='"20000"'))
        found = ok("--config", config, "sync", "--provider", "aliyun", "--cycle", "2026-10",
                   "--json")
        assert (found["rows"], found["lines"], found["models"]) == (4, 3, 2)
        assert found["totals"] == {"CNY": "1234570.290123456789000001"}
        assert found["balances"][0]["amount"] == "10000.25"
        assert found["below_low_balance"] is True
        assert ("DescribeInstanceBill", "throttled") in account.seen  # and retried
        first = ok("--config", config, "reconcile", "--cycle", "2026-10", "--provider", "qwen",
                   "--json")
        text = ok("--config", config, "sync", "--provider", "aliyun", "--cycle", "2026-10")
    assert "aliyun account aliyun: 2026-10" in text and "4 rows of 2 models" in text
    assert "stored as 3 lines" in text and "balance: " in text and "CNY" in text
    assert "below low_balance" in text
    assert SECRET not in text and KEY_ID not in text
    again = ok("--config", config, "reconcile", "--cycle", "2026-10", "--provider", "qwen",
               "--json")
    assert again == first
    assert [(r["model"], r["date"], r["billed"], r["status"]) for r in first["rows"]] == [
        ("qwen/qwen-max", "2026-10-01", "1234567.890123456789000001", "only_billed"),
        ("qwen/qwen-max", "2026-10-31", "-0.1", "only_billed"),
        ("qwen/qwen-plus", "2026-10-01", "2.5", "only_billed")]


def test_sync_errors_are_one_clear_line(run_cli: Any, fails: Any, tmp_path: Path) -> None:
    case = BY_PROVIDER["aliyun"]
    account = case.account()
    account.throttle_first = False
    with serving(case, account) as (url, _):
        config = _config(tmp_path, _aliyun(url))
        sync = ("--config", config, "sync", "--cycle", "2026-10", "--provider")
        fails(run_cli(*sync, "azure"), 2, "cannot sync 'azure'", "aliyun, tencent")
        fails(run_cli(*sync, "tencent"), 2, "tencent is not configured", "[[bill_sources]]")
        fails(run_cli(*sync, "aliyun"), 2, "TEST_ALI_ID", "is not set")
        run_cli.env.update({"TEST_ALI_ID": KEY_ID, "TEST_ALI_SECRET": "not-the-secret"})
        line = fails(run_cli(*sync, "aliyun"), 1, "refused the credentials",
                     "SignatureDoesNotMatch", "TEST_ALI_ID, TEST_ALI_SECRET")
        assert "not-the-secret" not in line
        run_cli.env["TEST_ALI_SECRET"] = SECRET
        account.denied.add("DescribeInstanceBill")
        fails(run_cli(*sync, "aliyun"), 1, "may not call DescribeInstanceBill",
              "bssapi:DescribeInstanceBill", "Forbidden.RAM")
        fails(run_cli("--config", config, "sync"), 2, "--provider", "--file")
        fails(run_cli("--config", config, "sync", "--provider", "aliyun", "--cycle", "2026-1"),
              2, "cycle")
    help_text = run_cli("sync", "--help")
    assert help_text.exit_code == 0
    assert "--provider" in help_text.stdout and "--cycle" in help_text.stdout
    assert "--account" in help_text.stdout


def test_a_balance_only_provider_and_a_cost_report(run_cli: Any, ok: Any,
                                                   tmp_path: Path) -> None:
    run_cli.env.update({"TEST_DS_KEY": SECRET, "TEST_ANT_KEY": SECRET})
    deepseek, anthropic = BY_PROVIDER["deepseek"].account(), BY_PROVIDER["anthropic"].account()
    deepseek.throttle_first = anthropic.throttle_first = False
    with serving(BY_PROVIDER["deepseek"], deepseek) as (ds_url, _), \
            serving(BY_PROVIDER["anthropic"], anthropic) as (ant_url, _):
        config = _config(tmp_path, f"""
[[bill_sources]]
provider = "deepseek"
api_key_env = "TEST_DS_KEY"
endpoint = "{ds_url}"

[[bill_sources]]
provider = "anthropic"
account = "research"
api_key_env = "TEST_ANT_KEY"
endpoint = "{ant_url}"
""")
        text = ok("--config", config, "sync", "--provider", "deepseek", "--cycle", "2026-10")
        found = ok("--config", config, "sync", "--provider", "anthropic", "--account",
                   "research", "--cycle", "2026-10", "--json")
    assert "0 rows" in text and "balance: " in text and "110.12" in text
    assert found["account"] == "research" and found["totals"] == {"USD": "11.30451"}
    assert found["balances"] == []


def test_each_sync_is_a_run_listed_by_history(run_cli: Any, ok: Any, tmp_path: Path) -> None:
    case = BY_PROVIDER["aliyun"]
    account = case.account()
    account.throttle_first = False
    assert ok("sync", "--history").strip() == "no syncs yet"
    assert ok("sync", "--history", "--json") == []
    with serving(case, account) as (url, _):
        config = _config(tmp_path, _aliyun(url))
        run_cli.env.update({"TEST_ALI_ID": KEY_ID, "TEST_ALI_SECRET": SECRET})
        found = ok("--config", config, "sync", "--provider", "aliyun", "--cycle", "2026-10",
                   "--json")
        run_cli.env["TEST_ALI_SECRET"] = "not-the-secret"
        assert run_cli("--config", config, "sync", "--provider", "aliyun", "--cycle",
                       "2026-10").exit_code == 1
    runs = ok("--config", config, "sync", "--history", "--json")
    assert [(r["id"], r["trigger"], r["status"], r["cycle"], r["lines"]) for r in runs] == [
        (found["run"] + 1, "cli", "failed", "2026-10", 0),
        (found["run"], "cli", "ok", "2026-10", 3)]
    assert "refused the credentials" in runs[0]["error"]
    assert "not-the-secret" not in runs[0]["error"]
    assert runs[1]["summary"]["totals"] == found["totals"]
    text = ok("--config", config, "sync", "--history", "--limit", "1")
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "aliyun:aliyun" in lines[0] and "failed" in lines[0]
    assert "refused the credentials" in lines[0]
    assert ok("--config", config, "sync", "--history", "--provider", "tencent",
              "--json") == []
    audit = ok("audit", "list", "--json")
    assert [(e["action"], e["actor"]) for e in reversed(audit)] == [
        ("bill_sync.start", "cli"), ("provider_bill.sync", "cli"), ("bill_sync.start", "cli")]
