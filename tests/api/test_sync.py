"""The sync button over HTTP (``POST /api/sync``, ``GET /api/sync``, ``GET /api/sync/{id}``,
``GET /api/balances``) and the server's daily sync, against fake providers on loopback, on
SQLite and PostgreSQL; the app's clock is fixed (tests/billing/apps.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from decimal import Decimal
from typing import Any

import httpx

from meterline.config import Config, Secret, SyncConfig, WebhookSetting
from meterline.simulator import serve_in_thread
from tests.billing.apps import Gate, Receiver, fakes, finished, meterline, wait_for
from tests.billing.conftest import source
from tests.billing.data import BY_PROVIDER, NOW, SECRET

ALIYUN = BY_PROVIDER["aliyun"]


def _account() -> Any:
    account = ALIYUN.account()
    account.throttle_first = False  # the app's sleeps are real: no backoff to wait for
    return account


def _with(config: Config, url: str, **settings: Any) -> Config:
    return replace(config, bill_sources=(source("aliyun", url, **settings),))


def _refused(answer: httpx.Response, status: int, field: str | None) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error.get("field") == field, error
    message: str = error["message"]
    return message


def test_the_sync_button_starts_a_run_that_ends_stored_and_twice_changes_nothing(
        config: Config) -> None:
    with fakes((ALIYUN, _account())) as [url], meterline(_with(config, url)) as http:
        started = http.post("/api/sync", json={"provider": "aliyun", "cycle": "2026-10"})
        assert started.status_code == 202, started.text
        run = started.json()
        assert (run["status"], run["trigger"], run["provider"], run["account"],
                run["cycle"]) == ("running", "api", "aliyun", "main", "2026-10")
        assert started.headers["location"] == f"/api/sync/{run['id']}"
        done = finished(http, run["id"])
        assert (done["status"], done["lines"], done["error"]) == ("ok", 3, None)
        assert done["progress"]["phase"] == "done"
        assert done["summary"]["totals"] == {"CNY": "1234570.290123456789000001"}
        report = http.get("/api/reconcile", params={"cycle": "2026-10", "provider": "qwen"})
        again = finished(http, http.post("/api/sync", json={"provider": "aliyun",
                                                            "cycle": "2026-10"}).json()["id"])
        assert again["status"] == "ok"
        assert http.get("/api/reconcile", params={"cycle": "2026-10",
                                                  "provider": "qwen"}).json() == report.json()
        listed = http.get("/api/sync").json()["runs"]
        assert [r["id"] for r in listed] == [again["id"], run["id"]]
        assert http.get("/api/sync", params={"provider": "tencent"}).json() == {"runs": []}
        assert http.get("/api/balances").json() == {"balances": [
            {"provider": "aliyun", "account": "main", "at": NOW.isoformat(),
             "amount": "10000.25", "currency": "CNY", "run": again["id"]}]}
        audit = http.get("/api/audit", params={"action": "bill_sync"}).json()["entries"]
        assert [(e["action"], e["target"], e["details"]["run"]) for e in audit] == [
            ("bill_sync.start", "aliyun:main", again["id"]),
            ("bill_sync.start", "aliyun:main", run["id"])]


def test_progress_is_readable_while_it_runs_and_a_second_press_waits(config: Config) -> None:
    gate = Gate(ALIYUN.app(_account()))
    with serve_in_thread(gate) as url, meterline(_with(config, url)) as http:
        try:
            run = http.post("/api/sync", json={"provider": "aliyun", "cycle": "2026-10"})
            assert run.status_code == 202, run.text
            run_id = run.json()["id"]
            assert gate.arrived.wait(60)
            seen = http.get(f"/api/sync/{run_id}").json()
            assert seen["status"] == "running"
            assert seen["progress"] == {"phase": "lines", "requests": 0}
            second = http.post("/api/sync", json={"provider": "aliyun"})
            assert f"run {run_id}" in _refused(second, 409, None)
        finally:
            gate.open.set()
        assert finished(http, run_id)["status"] == "ok"


def test_bad_requests_are_refused_naming_the_field(config: Config) -> None:
    unset = replace(source("aliyun", "http://127.0.0.1:9"), access_key_secret=None)
    with meterline(replace(config, bill_sources=(unset,))) as http:
        for body, field, needle in (
                ({}, "provider", "provider"), ({"provider": 5}, "provider", "provider"),
                ({"provider": "aliyun", "when": "now"}, "when", "unknown field"),
                ({"provider": "azure"}, "provider", "cannot sync 'azure'"),
                ({"provider": "tencent"}, "provider", "not configured"),
                ({"provider": "aliyun", "account": "other"}, "account", "no account"),
                ({"provider": "aliyun"}, "access_key_secret_env", "TEST_KEY_SECRET")):
            assert needle in _refused(http.post("/api/sync", json=body), 400, field), body
        assert http.post("/api/sync", content=b"{").status_code == 400
        assert http.get("/api/sync", params={"limit": 0}).status_code == 400
        assert "no sync run 42" in _refused(http.get("/api/sync/42"), 404, None)
        assert http.get("/api/sync/abc").status_code == 400
        anonymous = http.post("/api/sync", json={"provider": "aliyun"},
                              headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert http.get("/api/sync").json() == {"runs": []}  # nothing was started
    with fakes((ALIYUN, _account())) as [url], meterline(_with(config, url)) as http:
        for cycle in ("2026-13", "2026-12"):  # not a month; no billed day yet at NOW
            assert "cycle" in _refused(http.post("/api/sync", json={
                "provider": "aliyun", "cycle": cycle}), 400, "cycle")


def test_a_failed_sync_is_a_failed_run_that_says_why(config: Config) -> None:
    wrong = "wrong-secret-0123456789"
    with fakes((ALIYUN, _account())) as [url], \
            meterline(_with(config, url, secret=wrong)) as http:
        started = http.post("/api/sync", json={"provider": "aliyun", "cycle": "2026-10"})
        assert started.status_code == 202
        run = finished(http, started.json()["id"])
        listed = http.get("/api/sync")
    assert run["status"] == "failed" and run["lines"] == 0
    assert "refused the credentials" in run["error"] and "SignatureDoesNotMatch" in run["error"]
    assert wrong not in listed.text and SECRET not in listed.text


def test_the_daily_sync_runs_once_and_its_alerts_reach_the_webhook(config: Config) -> None:
    receiver = Receiver()
    with fakes((ALIYUN, _account())) as [url], serve_in_thread(receiver.app) as hooks:
        limits = replace(config.limits, webhooks=(WebhookSetting(Secret(f"{hooks}/hook")),))
        # NOW is 10:00 in Beijing: the 06:00 sync is due
        daily = replace(_with(config, url, low_balance=Decimal(20000)), limits=limits,
                        sync=SyncConfig(at=time(6, 0), timezone="Asia/Shanghai"))
        with meterline(daily, intervals={"bill_sync": 0.05, "alerts": 0.05}) as http:
            def two_done() -> list[dict[str, Any]] | None:
                runs: list[dict[str, Any]] = http.get("/api/sync").json()["runs"]
                return runs if len(runs) == 2 and all(r["status"] != "running"
                                                      for r in runs) else None
            runs = wait_for(two_done)
            passes = http.get("/readyz").json()["loops"]["bill_sync"]["last_success"]
            wait_for(lambda: http.get("/readyz").json()["loops"]["bill_sync"][
                "last_success"] != passes)
            assert len(http.get("/api/sync").json()["runs"]) == 2  # not run again that day
            wait_for(lambda: {"low_balance", "bill_difference"} <= receiver.kinds())
            alerts = http.get("/api/alerts").json()["alerts"]
    assert sorted((r["cycle"], r["trigger"], r["day"], r["status"]) for r in runs) == [
        ("2026-10", "schedule", "2026-11-03", "ok"), ("2026-11", "schedule", "2026-11-03", "ok")]
    low = next(b for b in receiver.bodies if b["kind"] == "low_balance")
    assert (low["event"], low["source"], low["amount"], low["limit"], low["currency"]) == (
        "account.alert", "aliyun:main", "10000.25", "20000", "CNY")
    difference = next(b for b in receiver.bodies if b["kind"] == "bill_difference")
    assert difference["period"] == "2026-10" and "3 rows" in difference["message"]
    assert sorted((a["kind"], a["source"], a["budget_id"]) for a in alerts) == [
        ("bill_difference", "aliyun:main", None), ("low_balance", "aliyun:main", None)]
