"""The dashboard in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against the app served by uvicorn on loopback, with a bill source pointed at the
fake Alibaba Cloud billing API of tests/billing/ on loopback too.

One served app and one browser for the module; each test opens its own signed-in context.
The tests cover (issue 15, Tests):

- sign-in, the overview's ECharts chart drawn (a canvas inside ``#trend-chart``), the language
  switch, and the reconciliation page's "sync cloud bills" button: while the fake holds its
  answers the page's script (static/sync.js) shows the run running by polling
  ``GET /api/sync/{id}``; once the fake answers, the same page — never reloaded — shows the run
  finished with its lines, and the reconciliation rows appear;
- every page in both languages loads with no console error (a CSP violation is one), no failed
  request and no asset answered >= 400, with a text of the page in Chinese checked against the
  zh_CN catalog; a screenshot of each is saved (``METERLINE_SCREENSHOTS`` names the folder,
  else one under pytest's tmp path; its path is printed at the end);
- the overview's cards are the admin API's ``/api/summary`` (the exact values of the tooltips);
- a filter that matches nothing, a malformed date in the URL, a signed-out session and a
  session cookie no longer valid each give a clear page;
- a key created (shown once) and revoked through the pages, a bill issued with its
  confirmation step, and each export (CSV, XLSX, FOCUS) downloaded, in Chinese too for CSV.

Every wait is for a page state, with a generous deadline; nothing sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
    sync_playwright,
)

from meterline.api.app import create_app
from meterline.config import Config, Secret
from meterline.simulator import serve_in_thread
from tests.billing.apps import Gate
from tests.billing.conftest import source
from tests.billing.data import BY_PROVIDER, NOW
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, fresh_database
from tests.web.conftest import price_m1, report

CHROMIUM = os.environ.get("METERLINE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Deadlines of the waits (ms): they only bound a broken run, a working one meets them at once.
WAIT = 60_000
COOKIE = "meterline_session"


@dataclass
class Served:
    base: str
    gate: Gate
    shots: Path
    browser: Browser


@dataclass
class Watch:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests and
    the page's own assets (not the document itself) answered with status >= 400.

    A document's own status is each test's to check (a malformed filter is a 400 page on
    purpose): the console's "Failed to load resource" for such a document is left to it, as is
    the "aborted" navigation of a download (Chromium ends it so)."""

    base: str
    problems: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    downloads: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)

    def console(self, message: ConsoleMessage) -> None:
        # (the browser asks for /favicon.ico on its own; the dashboard has none)
        where = message.location.get("url", "")
        if message.type != "error" or where.endswith("/favicon.ico"):
            return
        if where in self.documents and message.text.startswith("Failed to load resource"):
            return
        self.problems.append(f"console: {message.text} ({where})")

    def failed(self, request: Request) -> None:
        if request.url.endswith("/favicon.ico"):
            return
        if request.failure == "net::ERR_ABORTED" and request.is_navigation_request():
            self.aborted.append(request.url)  # a download's? (its event comes after)
        else:
            self.problems.append(f"failed: {request.url} {request.failure}")

    def response(self, answer: Response) -> None:
        if answer.status < 400 or not answer.url.startswith(self.base):
            return
        if answer.request.resource_type == "document":
            self.documents.add(answer.url)
        elif not answer.url.endswith("/favicon.ico"):
            self.problems.append(f"status {answer.status}: {answer.url}")

    def found(self) -> list[str]:
        return self.problems + [f"failed: {url} net::ERR_ABORTED" for url in self.aborted
                                if url not in self.downloads]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    expect.set_options(timeout=WAIT)
    tmp = tmp_path_factory.mktemp("browser")
    shots = Path(os.environ.get("METERLINE_SCREENSHOTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    account = BY_PROVIDER["aliyun"].account()
    account.throttle_first = False  # no backoff to wait for
    gate = Gate(BY_PROVIDER["aliyun"].app(account))
    with fresh_database("sqlite", tmp) as url, serve_in_thread(gate) as fake:
        config = Config(database_url=url, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp / "journal"),
                        bill_sources=(source("aliyun", fake, requests_per_second=1000),))
        with LiveServer(create_app(config, clock=lambda: NOW)) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                _use(base)
                yield Served(base, gate, shots, browser)
            finally:
                gate.open.set()
                browser.close()


@pytest.fixture
def context(served: Served) -> Iterator[BrowserContext]:
    context = served.browser.new_context(locale="en-US", accept_downloads=True)
    context.set_default_timeout(WAIT)
    yield context
    context.close()


@pytest.fixture
def watch(served: Served) -> Watch:
    return Watch(served.base)


@pytest.fixture
def page(context: BrowserContext, watch: Watch) -> Page:
    page = context.new_page()
    page.on("console", watch.console)
    page.on("pageerror", lambda exc: watch.problems.append(f"pageerror: {exc}"))
    page.on("requestfailed", watch.failed)
    page.on("response", watch.response)
    page.on("download", lambda download: watch.downloads.add(download.url))
    return page


def _use(base: str) -> None:
    """Some metered spend in October 2026 (USD), for the chart, the bill and the
    reconciliation, and a budget for the limits page's bar."""
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/api/tenants", json={"name": "acme"}, headers=ADMIN).status_code == 201
        key = http.post("/api/keys", json={"tenant": "acme"}, headers=ADMIN).json()["key"]
        price_m1(http)
        # the report is in USD (the metered side's): the CNY bill converts at this rate
        rate = http.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                          "effective_from": "2026-01-01T00:00:00Z"},
                         headers=ADMIN)
        assert rate.status_code == 201, rate.text
        report(http, key, [{"id": f"e{day}", "timestamp": f"2026-10-{day:02d}T10:00:00Z",
                            "model": "test/m1",
                            "usage": {"input_tokens": 1000 * day, "output_tokens": 100}}
                           for day in range(1, 31)])
        budget = http.post("/api/budgets", headers=ADMIN, json={
            "tenant": "acme", "amount": "1", "currency": "USD", "period": "total",
            "mode": "alert"})
        assert budget.status_code == 201, budget.text


def _sign_in(page: Page, base: str, path: str = "/") -> None:
    page.goto(base + path)
    expect(page).to_have_url(base + "/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.locator("form button, form input[type=submit]").first.click()
    expect(page).to_have_url(base + "/")
    _loaded(page)


def _loaded(page: Page) -> None:
    """Once a click's page is shown, its assets loaded too: a navigation that follows before
    then would abort them (a failed request, which the tests count)."""
    page.wait_for_load_state("load")


def _language(page: Page, base: str, code: str) -> None:
    page.goto(f"{base}/lang/{code}?next=/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if code == "zh_CN" else "en")


def test_sign_in_overview_languages_and_the_sync_button(served: Served, page: Page,
                                                       watch: Watch) -> None:
    base, gate = served.base, served.gate
    _sign_in(page, base)
    _overview_and_languages(page)
    _sync(page, base, gate)
    assert watch.found() == []


def _overview_and_languages(page: Page) -> None:
    expect(page.locator("#trend-chart canvas").first).to_be_attached()
    expect(page.locator("nav")).to_contain_text("Overview")
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("nav")).to_contain_text("概览")
    expect(page.locator("#trend-chart canvas").first).to_be_attached()
    _loaded(page)
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("nav")).to_contain_text("Overview")
    _loaded(page)


def _sync(page: Page, base: str, gate: Gate) -> None:
    page.goto(base + "/reconcile?cycle=2026-10")
    expect(page.locator("h1")).to_have_text("Reconciliation of 2026-10")
    # what was metered only, before any bill
    expect(page.locator("tr.row-only_metered")).to_have_count(30)
    page.get_by_role("button", name="Sync cloud bills: aliyun (main)").click()
    state = page.locator("#sync-run .run-state")
    expect(state).to_contain_text("running")
    assert gate.arrived.wait(WAIT / 1000)
    # the script polls the run: its phase while the fake holds the answers
    expect(state).to_have_text("running: fetching bill lines, 0 requests sent")
    page.evaluate("window.stillThisPage = true")
    gate.open.set()
    expect(state).to_have_text("ok: 3 lines stored")
    assert page.evaluate("window.stillThisPage === true")  # shown by the script, no reload
    expect(page.locator("#sync-run")).to_have_attribute("data-status", "ok")
    # the bill's rows appear (Qwen's lines are only billed: nothing was metered for them)
    expect(page.locator("tr.row-only_billed")).to_have_count(3)
    expect(page.locator("table.balances")).to_contain_text("10,000.25")
    expect(page.locator("table.runs tr.run-ok")).to_have_count(1)


#: Each page, a text of it in English and in Chinese (the zh_CN catalog's msgstr).
PAGES = [
    ("overview", "/", "Spend: all tenants", "支出：全部租户"),
    ("usage", "/usage", "Usage", "用量"),
    ("record", "/usage/{id}", "Usage record", "用量记录"),
    ("limits", "/limits", "Budgets, quotas and alerts", "预算、配额与告警"),
    ("keys", "/keys", "API keys", "API 密钥"),
    ("prices", "/prices", "Prices", "价格"),
    ("bills", "/bills?cycle=2026-10", "Bills of 2026-10", "2026-10 账单"),
    ("bill", "/bills/acme/2026-10", "Bill of acme, 2026-10", "acme 的账单，2026-10"),
    ("reconcile", "/reconcile?cycle=2026-10", "Reconciliation of 2026-10", "2026-10 对账"),
]


def test_every_page_in_both_languages_loads_cleanly(served: Served, page: Page, watch: Watch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = served.base
    _sign_in(page, base)
    page.goto(base + "/usage")
    record = page.locator("table a[href^='/usage/']").first.get_attribute("href")
    assert record
    for code, lang in (("en", "en"), ("zh_CN", "zh-CN")):
        _language(page, base, code)
        for name, path, english, chinese in PAGES:
            url = record if name == "record" else path
            answer = page.goto(base + url)
            assert answer is not None and answer.status == 200, (url, code)
            expect(page.locator("html")).to_have_attribute("lang", lang)
            expect(page.locator("h1")).to_contain_text(english if code == "en" else chinese)
            page.wait_for_load_state("load")
            if name == "overview":
                expect(page.locator("#trend-chart canvas").first).to_be_attached()
            if name == "limits":
                expect(page.locator("td.used").first).to_be_visible()
            if name == "record":
                expect(page.locator("h1 code")).to_have_text(record.removeprefix("/usage/"))
            shot = served.shots / f"{name}-{code}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0, shot
            assert watch.found() == [], (url, code)
    with capsys.disabled():  # for a person to look at them
        print(f"\nbrowser screenshots: {served.shots}")


def test_the_overview_cards_are_the_admin_api_summary(served: Served, page: Page,
                                                      watch: Watch) -> None:
    base = served.base
    _sign_in(page, base)
    with httpx.Client(base_url=base, timeout=60) as http:
        answer = http.get("/api/summary", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        summary = answer.json()
    currency = summary["currency"]
    cards = page.locator(".cards .card")
    for label, key in (("Total", "total"), ("This month", "month"), ("Today", "today")):
        money = cards.filter(has=page.locator("span", has_text=label)).locator(".money").first
        expect(money).to_have_attribute("title", f"{summary[key]} {currency}")
    calls = cards.filter(has=page.get_by_text("Calls", exact=True)).locator("b")
    expect(calls).to_have_text(f"{summary['calls']:,}")
    rate = cards.filter(has=page.get_by_text("Success rate", exact=True)).locator("b")
    expect(rate).to_have_text(f"{Decimal(str(summary['success_rate'])) * 100:.1f}%")
    assert summary["calls"] == 30 and summary["total"] != "0"
    assert watch.found() == []


def test_no_match_bad_date_and_ended_sessions_give_clear_pages(
        served: Served, context: BrowserContext, page: Page, watch: Watch) -> None:
    base = served.base
    _sign_in(page, base)
    page.goto(base + "/usage?tenant=acme&user=nobody-at-all")
    expect(page.locator("main p.empty")).to_have_text("No records.")
    expect(page.locator("input[name=user]")).to_have_value("nobody-at-all")  # what was asked
    # an unknown tenant is said as the API says it
    answer = page.goto(base + "/usage?tenant=nobody-at-all")
    assert answer is not None and answer.status == 404
    expect(page.locator("main")).to_contain_text("unknown tenant 'nobody-at-all'")
    answer = page.goto(base + "/usage?start=notadate")
    assert answer is not None and answer.status == 400
    expect(page.locator("main p.error")).to_contain_text("start")
    expect(page.locator("input[name=start]")).to_have_count(0)  # the error page, not a table
    page.screenshot(path=str(served.shots / "usage-bad-date-en.png"), full_page=True)
    _language(page, base, "zh_CN")
    page.goto(base + "/usage?tenant=acme&user=nobody-at-all")
    expect(page.locator("main p.empty")).to_have_text("没有记录。")
    _language(page, base, "en")
    # signing out ends the session: a page goes to the login page, and so does the old cookie
    old = next(c for c in context.cookies() if c["name"] == COOKIE)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(base + "/login")
    _loaded(page)
    page.goto(base + "/keys")
    expect(page).to_have_url(base + "/login")
    expect(page.locator("input[name=token]")).to_be_visible()
    page.screenshot(path=str(served.shots / "login-after-sign-out-en.png"), full_page=True)
    context.add_cookies([old])
    page.goto(base + "/bills")
    expect(page).to_have_url(base + "/login")
    # a cookie that was never a session's
    context.add_cookies([{**old, "value": "not-a-session"}])
    page.goto(base + "/usage")
    expect(page).to_have_url(base + "/login")
    assert watch.found() == []


def test_a_key_is_created_shown_once_and_revoked(served: Served, page: Page,
                                                 watch: Watch) -> None:
    base = served.base
    _sign_in(page, base)
    page.goto(base + "/keys")
    form = page.locator("#key-form form")
    form.locator("input[name=tenant]").fill("acme")
    form.locator("input[name=name]").fill("browser-key")
    form.get_by_role("button", name="Create key").click()
    created = page.locator("#created-key")
    expect(created).to_contain_text("Key created")
    _loaded(page)
    secret = created.locator("input.secret").input_value()
    assert len(secret) > 16
    row = page.locator("table.keys tr", has_text="browser-key")
    expect(row).to_have_count(1)
    key_id = row.locator("td").first.inner_text()
    page.goto(base + "/keys")  # shown once: never on a later page
    expect(page.locator("#created-key")).to_have_count(0)
    assert secret not in page.content()
    row = page.locator(f"tr#key-{key_id}")
    expect(row.locator("td.status")).to_have_text("active")
    row.get_by_role("link", name="Revoke…").click()
    expect(page.locator("#confirm-revoke")).to_contain_text(f"Revoke key {key_id}?")
    _loaded(page)
    page.locator("#confirm-revoke").get_by_role("button", name="Revoke").click()
    row = page.locator(f"tr#key-{key_id}")
    expect(row.locator("td.status")).to_have_text("revoked")
    expect(row.get_by_role("link", name="Revoke…")).to_have_count(0)
    _loaded(page)
    with httpx.Client(base_url=base, timeout=60) as http:
        refused = http.post("/v1/usage", headers={"Authorization": f"Bearer {secret}"},
                            json={"events": []})
        assert refused.status_code == 401, refused.text
    assert watch.found() == []


def test_a_bill_is_issued_after_confirming_and_exported(served: Served, page: Page,
                                                        watch: Watch) -> None:
    base = served.base
    _sign_in(page, base)
    page.goto(base + "/bills/acme/2026-10")
    expect(page.locator(".cards")).to_contain_text("open")
    page.locator("form.action").get_by_role("button", name="Issue").click()
    confirm = page.locator("form.confirm")
    expect(confirm).to_contain_text("Issue this bill for")
    _loaded(page)
    expect(page.locator(".cards")).to_contain_text("open")  # asked, not yet done
    confirm.get_by_role("button", name="Issue").click()
    expect(page.locator("p.notice")).to_contain_text("The bill is now issued.")
    expect(page.locator(".cards .status")).to_have_text("issued")
    _loaded(page)
    with httpx.Client(base_url=base, timeout=60) as http:
        api = http.get("/api/bills/acme/2026-10", headers=ADMIN).json()
        assert api["status"] == "issued", api
        for code in ("en", "zh_CN"):
            _language(page, base, code)
            page.goto(base + "/bills/acme/2026-10")
            links = page.locator("a.export")
            expect(links).to_have_count(3)
            kinds = links.all_inner_texts() if code == "en" else ["CSV"]
            for kind in kinds:
                link = links.filter(has_text=kind)
                href = link.get_attribute("href")
                assert href
                with page.expect_download() as download:
                    link.click()
                path = download.value.path()
                data = Path(path).read_bytes()
                assert data, (kind, code)
                assert data == http.get(href, headers=ADMIN).content, (kind, code)
                if kind == "CSV":
                    header = data.decode("utf-8-sig").splitlines()[0]
                    assert "," in header, header
                    if code == "zh_CN":
                        assert href.endswith("lang=zh")
                        assert any("\u4e00" <= c <= "\u9fff" for c in header), header
                    else:
                        assert header.isascii(), header
                if kind == "XLSX":
                    assert data[:2] == b"PK"
            assert sorted(links.all_inner_texts()) == ["CSV", "FOCUS", "XLSX"]
    assert watch.found() == []
