"""The dashboard's reconciliation page (meterline/web/reconcile.py, reconcile.html) over real
HTTP, on SQLite and PostgreSQL, in both languages: the rows, statuses and likely causes of
``GET /api/reconcile``, the balances of ``GET /api/balances`` and the runs of ``GET /api/sync``;
the "sync cloud bills" button starting a run as ``POST /api/sync`` does, against a fake
provider on loopback; the file import when no bill source is configured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
from markupsafe import escape

from meterline.api.app import create_app
from meterline.config import Config
from meterline.simulator import serve_in_thread
from tests.billing.apps import Gate, fakes, finished
from tests.billing.conftest import source
from tests.billing.data import BY_PROVIDER, NOW
from tests.conftest import ADMIN, LiveServer
from tests.web.conftest import price_m1, report, sign_in

ZH = {"accept-language": "zh-CN"}
ALIYUN = BY_PROVIDER["aliyun"]
MONEY = re.compile(r'<span class="money" title="([^" ]+) ([A-Z]{3})">')
ROW = re.compile(r'<tr class="row row-(\w+)"><td>.*?</td><td>([^<]*)</td><td>([^<]*)</td>')


@contextmanager
def browser(config: Config) -> Iterator[httpx.Client]:
    """The app of ``config`` (its clock at NOW, 3 November 2026) and a client that holds
    cookies and no token, as a browser."""
    with LiveServer(create_app(config, clock=lambda: NOW)) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        yield http


def _with_source(config: Config, url: str) -> Config:
    """``config`` with the fake's account as its ``[[bill_sources]]`` (no throttle to wait)."""
    return replace(config, bill_sources=(source("aliyun", url, requests_per_second=1000),))


def _api(client: httpx.Client, path: str, **params: str) -> Any:
    answer = client.get(path, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _finished(http: httpx.Client, run_id: int) -> dict[str, Any]:
    with httpx.Client(base_url=str(http.base_url), headers=ADMIN, timeout=60) as admin:
        return finished(admin, run_id)


def _rows(html: str) -> list[tuple[str, str, str]]:
    return ROW.findall(html)


def _money(html: str) -> list[tuple[Decimal, str]]:
    return [(Decimal(value), code) for value, code in MONEY.findall(html)]


def _api_money(found: dict[str, Any]) -> list[tuple[Decimal, str]]:
    """The amounts a report's rows show, in the page's order (metered, billed, difference)."""
    return [(Decimal(row[name]), found["currency"]) for row in found["rows"]
            for name in ("metered", "billed", "difference") if row[name] is not None]


def _upload(client: httpx.Client, text: str, **fields: str) -> httpx.Response:
    return client.post("/reconcile/import", files={"file": ("bill.csv", text.encode())},
                       data=fields, follow_redirects=False)


FOCUS = ("ServiceProviderName,x_Model,BilledCost,BillingCurrency,ChargePeriodStart,"
         "ChargePeriodEnd\n")


def test_unauthenticated_pages_and_forms_go_to_login(client: httpx.Client) -> None:
    assert client.get("/reconcile", follow_redirects=False).headers["location"] == "/login"
    for path in ("/reconcile/sync", "/reconcile/import"):
        answer = client.post(path, data={"provider": "aliyun"}, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path
    assert _api(client, "/api/sync") == {"runs": []}


def test_the_report_its_causes_and_the_import_without_a_bill_source(
        client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    # 2.5 USD metered for test/m1 on 5 October, reported rather than passed through the gateway
    report(client, tenant_key, [{"id": "r1", "timestamp": "2026-10-05T10:00:00Z",
                                 "model": "test/m1",
                                 "usage": {"input_tokens": 2_000_000, "output_tokens": 1_000_000}}])
    sign_in(client)
    page = client.get("/reconcile", params={"cycle": "2026-10"})
    assert page.status_code == 200, page.text
    assert "No bill source is configured" in page.text and "docs/reconcile.md" in page.text
    assert 'action="/reconcile/import" enctype="multipart/form-data"' in page.text
    assert _rows(page.text) == [("only_metered", "test", "test/m1")]
    bill = FOCUS + ("test,m1,3.0000000001,USD,2026-10-05,2026-10-06\n"
                    "openai,<b>gpt-5</b>,2.5,USD,2026-10-01,2026-10-02\n")
    imported = _upload(client, bill)
    assert imported.status_code == 303, imported.text
    assert imported.headers["location"] == "/reconcile?cycle=2026-10&imported=2"
    page = client.get(imported.headers["location"])
    api = _api(client, "/api/reconcile", cycle="2026-10")
    assert "Imported 2 bill lines." in page.text
    assert _rows(page.text) == [(r["status"], str(escape(r["provider"])), str(escape(r["model"])))
                                for r in api["rows"]]
    assert [r["status"] for r in api["rows"]] == ["only_billed", "over"]
    assert _money(page.text) == _api_money(api)
    assert "<b>gpt-5</b>" not in page.text and "&lt;b&gt;gpt-5&lt;/b&gt;" in page.text
    # each differing row's likely causes, as the API names them
    for row in api["rows"]:
        assert row["causes"], row
        for cause in row["causes"]:
            assert f'<li class="cause cause-{cause["code"]}">' in page.text
            assert str(escape(cause["message"])) in page.text
    assert {c["code"] for c in api["rows"][1]["causes"]} >= {"reported"}
    assert "reported usage" in page.text and "billed more" in page.text
    zh = client.get("/reconcile", params={"cycle": "2026-10"}, headers=ZH)
    assert zh.status_code == 200 and "2026-10 对账" in zh.text and "账单偏多" in zh.text
    assert "上报的用量" in zh.text and "尚未配置账单来源" in zh.text
    assert _money(zh.text) == _money(page.text)
    one = client.get("/reconcile", params={"cycle": "2026-10", "provider": "test"})
    assert _rows(one.text) == [("over", "test", "test/m1")]
    assert '<option value="test" selected>' in one.text
    assert "No metered or billed" in client.get("/reconcile", params={"cycle": "2026-09"}).text


def test_bad_input_is_a_page_naming_the_field(client: httpx.Client) -> None:
    sign_in(client)
    for params, words in (({"cycle": "2026-99"}, "cycle"), ({"cycle": "October"}, "cycle"),
                          ({"cycle": "2026-10", "run": "x"}, "run")):
        answer = client.get("/reconcile", params=params)
        assert answer.status_code == 400 and words in answer.text, params
        assert answer.headers["content-type"].startswith("text/html")
    assert client.get("/reconcile", params={"cycle": "2026-10", "run": "42"}).status_code == 404
    bad = _upload(client, FOCUS + "openai,gpt-5,lots,USD,2026-10-01,2026-10-02\n")
    assert bad.status_code == 400 and "BilledCost" in bad.text
    assert 'class="error refusal"' in bad.text  # on the page, its forms still there
    assert "line 2" in bad.text
    empty = _upload(client, "")
    assert empty.status_code == 400 and "file" in empty.text
    unknown = _upload(client, FOCUS, format="excel")
    assert unknown.status_code == 400 and "format" in unknown.text
    plain = client.post("/reconcile/import", content=b"x,y", follow_redirects=False)
    assert plain.status_code == 400 and "multipart" in plain.text
    sync = client.post("/reconcile/sync", data={"provider": "aliyun", "cycle": "2026-10"})
    assert sync.status_code == 400 and "not configured" in sync.text
    assert _api(client, "/api/sync") == {"runs": []}
    assert _api(client, "/api/reconcile", cycle="2026-10")["rows"] == []


def test_the_sync_button_starts_a_run_the_page_shows_until_it_is_done(config: Config) -> None:
    account = ALIYUN.account()
    account.throttle_first = False  # the app's sleeps are real: no backoff to wait for
    with fakes((ALIYUN, account)) as [url], \
            browser(_with_source(config, url)) as http:
        assert http.get("/reconcile", follow_redirects=False).status_code == 303
        sign_in(http)
        page = http.get("/reconcile", params={"cycle": "2026-10"})
        assert "No bill source is configured" not in page.text
        form = re.search(r'<form method="post" action="/reconcile/sync" class="sync">(.*?)'
                         r'</form>', page.text, re.S)
        assert form is not None
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(1)))
        assert fields == {"provider": "aliyun", "account": "main", "cycle": "2026-10",
                          "shown": ""}
        assert "Sync cloud bills: aliyun (main)" in form.group(1)
        assert '<script src="/static/sync.js" defer></script>' in page.text
        pressed = http.post("/reconcile/sync", data=fields, follow_redirects=False)
        assert pressed.status_code == 303, pressed.text
        location = pressed.headers["location"]
        run_id = int(location.rsplit("run=", 1)[1])
        assert location == f"/reconcile?cycle=2026-10&run={run_id}"
        run = _finished(http, run_id)
        assert (run["status"], run["trigger"], run["lines"]) == ("ok", "api", 3)
        shown = http.get(location)
        assert f'data-run="{run_id}" data-status="ok"' in shown.text
        assert "ok: 3 lines stored" in shown.text
        api = _api(http, "/api/reconcile", cycle="2026-10")
        assert _rows(shown.text) == [(r["status"], r["provider"], r["model"])
                                     for r in api["rows"]]
        assert {r["status"] for r in api["rows"]} == {"only_billed"}
        balances = _api(http, "/api/balances")["balances"]
        assert [(b["provider"], b["amount"]) for b in balances] == [("aliyun", "10000.25")]
        assert (Decimal("10000.25"), "CNY") in _money(shown.text)
        assert _money(shown.text)[:len(_api_money(api))] == _api_money(api)
        history = re.findall(r'<tr class="run-(\w+)"><td>(\d+)</td>', shown.text)
        assert history == [("ok", str(r["id"])) for r in _api(http, "/api/sync")["runs"]]
        audit = _api(http, "/api/audit", action="bill_sync")["entries"]
        assert [(e["action"], e["target"], e["actor"][:8]) for e in audit] == [
            ("bill_sync.start", "aliyun:main", "session:")]
        zh = http.get(location, headers=ZH)
        assert "成功：已保存 3 条明细" in zh.text and "同步云账单：aliyun（main）" in zh.text
        cross = http.post("/reconcile/sync", data=fields,
                          headers={"origin": "https://evil.example"})
        assert cross.status_code == 403
        assert len(_api(http, "/api/sync")["runs"]) == 1


def test_a_running_sync_is_shown_running_and_a_second_press_is_refused(config: Config) -> None:
    account = ALIYUN.account()
    account.throttle_first = False
    gate = Gate(ALIYUN.app(account))
    with serve_in_thread(gate) as url, \
            browser(_with_source(config, url)) as http:
        sign_in(http)
        fields = {"provider": "aliyun", "account": "main", "cycle": "2026-10"}
        try:
            pressed = http.post("/reconcile/sync", data=fields, follow_redirects=False)
            assert pressed.status_code == 303, pressed.text
            assert gate.arrived.wait(60)
            running = http.get(pressed.headers["location"])
            assert 'data-status="running"' in running.text
            assert "running: fetching bill lines, 0 requests sent" in running.text
            # without script the page refreshes itself while the run goes on
            assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in running.text
            second = http.post("/reconcile/sync", data=fields)
            assert second.status_code == 409 and "being synced" in second.text
            assert 'class="error refusal"' in second.text
        finally:
            gate.open.set()
        run_id = int(pressed.headers["location"].rsplit("=", 1)[1])
        done = _finished(http, run_id)
        assert done["status"] == "ok"
        after = http.get(pressed.headers["location"]).text
        assert "noscript" not in after and "ok: 3 lines stored" in after


def test_a_failed_sync_shows_its_error(config: Config) -> None:
    with fakes((ALIYUN, ALIYUN.account())) as [url]:
        wrong = source("aliyun", url, secret="not-the-accounts-secret", requests_per_second=1000)
        with browser(replace(config, bill_sources=(wrong,))) as http:
            sign_in(http)
            pressed = http.post("/reconcile/sync", data={"provider": "aliyun",
                                                         "account": "main", "cycle": "2026-10"},
                                follow_redirects=False)
            assert pressed.status_code == 303, pressed.text
            run_id = int(pressed.headers["location"].rsplit("=", 1)[1])
            run = _finished(http, run_id)
            assert run["status"] == "failed" and run["error"]
            shown = http.get(pressed.headers["location"])
            assert 'data-status="failed"' in shown.text
            assert f"failed: {escape(run['error'])}" in shown.text
            assert "not-the-accounts-secret" not in shown.text
            assert "失败：" in http.get(pressed.headers["location"], headers=ZH).text
