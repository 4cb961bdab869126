"""The dashboard's bill pages (meterline/web/bills.py, bills.html, bill.html) over real HTTP, on
SQLite and PostgreSQL, in both languages: each tenant's bill of a cycle, a bill's lines and
total as ``GET /api/bills/{tenant}/{cycle}`` gives them, its exports in the page's language,
and status changes made on the page — confirmed first, seen by the API and in its audit log
with the session as the actor, refusals shown on the page."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
from markupsafe import escape

from meterline.web.formats import Formatter
from tests.conftest import ADMIN
from tests.web.conftest import price_m1, report, sign_in

ZH = {"accept-language": "zh-CN"}
MONEY = re.compile(r'<span class="money" title="([^" ]+) ([A-Z]{3})">')
ROW = re.compile(r'<tr class="bill"><td><a href="([^"]+)">([^<]+)</a></td>'
                 r'<td><span class="status status-(\w+)">')


def _usage(client: httpx.Client, key: str) -> None:
    """acme: October 1.2500005 + 2.5 USD (alice's call), 3.75 once issued; November 1.25."""
    price_m1(client)
    report(client, key, [
        {"id": "e1", "timestamp": "2026-10-05T10:00:00Z", "model": "test/m1",
         "usage": {"input_tokens": 1_000_001, "output_tokens": 500_000}},
        {"id": "e2", "timestamp": "2026-10-06T10:00:00Z", "model": "test/m1", "user": "alice",
         "usage": {"input_tokens": 2_000_000, "output_tokens": 1_000_000}},
        {"id": "e3", "timestamp": "2026-11-01T10:00:00Z", "model": "test/m1",
         "usage": {"input_tokens": 1_000_000, "output_tokens": 500_000}}])


def _money(html: str) -> list[tuple[Decimal, str]]:
    """The exact amounts of a page's money (their tooltips), in order."""
    return [(Decimal(value), currency) for value, currency in MONEY.findall(html)]


def _pair(value: str, currency: str) -> tuple[Decimal, str]:
    return Decimal(value), currency


def _api_bill(client: httpx.Client, tenant: str, cycle: str, **params: str) -> Any:
    answer = client.get(f"/api/bills/{tenant}/{cycle}", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_unauthenticated_pages_and_forms_go_to_login(client: httpx.Client,
                                                     tenant_key: str) -> None:
    for path in ("/bills", "/bills/acme/2026-10"):
        answer = client.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path
    posted = client.post("/bills/acme/2026-10/status",
                         data={"status": "issued", "confirm": "yes"}, follow_redirects=False)
    assert (posted.status_code, posted.headers["location"]) == (303, "/login")
    assert _api_bill(client, "acme", "2026-10")["status"] == "open"


def test_the_cycle_lists_each_tenants_bill_as_the_api_gives_it(client: httpx.Client,
                                                               tenant_key: str) -> None:
    _usage(client, tenant_key)
    created = client.post("/api/tenants", json={"name": "beta", "currency": "CNY"},
                          headers=ADMIN)
    assert created.status_code == 201, created.text
    sign_in(client)
    page = client.get("/bills", params={"cycle": "2026-10"})
    assert page.status_code == 200, page.text
    rows = ROW.findall(page.text)
    assert [(url, name, status) for url, name, status in rows] == [
        ("/bills/acme/2026-10", "acme", "open"), ("/bills/beta/2026-10", "beta", "open")]
    totals = _money(page.text)
    assert totals == [_pair(_api_bill(client, t, "2026-10")["total"],
                            _api_bill(client, t, "2026-10")["currency"]) for t in ("acme", "beta")]
    assert totals[0] == _pair("3.7500005", "USD")
    assert 'type="month" name="cycle" value="2026-10"' in page.text
    one = client.get("/bills", params={"cycle": "2026-11", "tenant": "acme"})
    assert [name for _, name, _ in ROW.findall(one.text)] == ["acme"]
    assert _money(one.text) == [_pair("1.25", "USD")]
    zh = client.get("/bills", params={"cycle": "2026-10"}, headers=ZH)
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text
    assert "2026-10 账单" in zh.text and "未出账" in zh.text
    assert _money(zh.text) == totals
    issued = client.post("/api/bills/acme/2026-10/status", json={"status": "issued"},
                         headers=ADMIN)
    assert issued.status_code == 200, issued.text
    after = client.get("/bills", params={"cycle": "2026-10"})
    assert [status for _, _, status in ROW.findall(after.text)] == ["issued", "open"]
    assert _money(after.text)[0] == _pair(issued.json()["total"], "USD") == _pair("3.75", "USD")


def test_a_bill_shows_the_api_lines_and_total_and_exports_in_the_page_language(
        client: httpx.Client, tenant_key: str) -> None:
    _usage(client, tenant_key)
    sign_in(client)
    api = _api_bill(client, "acme", "2026-10")
    page = client.get("/bills/acme/2026-10")
    assert page.status_code == 200, page.text
    for line in api["lines"]:
        quantity = Formatter("en").number(Decimal(line["quantity"]))
        assert (f"<td>{line['model']}</td><td>{line['meter']}</td>"
                f"<td class=\"n\">{quantity}</td><td>{line['unit']}</td>") in page.text
    amounts = _money(page.text)
    # the total's card, then per line its unit price and amount, then the total row
    assert amounts[0] == _pair(api["total"], "USD") == amounts[-1]
    assert amounts[1:-1] == [pair for line in api["lines"]
                             for pair in (_pair(line["unit_price"], line["price_currency"]),
                                          _pair(line["amount"], "USD"))]
    assert api["total"] == "3.7500005" and len(api["lines"]) == 2
    exports = re.findall(r'<a class="export" href="([^"]+)">', page.text)
    assert [str(escape(u)) for u in (
        "/api/bills/acme/2026-10/export?format=csv&lang=en",
        "/api/bills/acme/2026-10/export?format=xlsx&lang=en",
        "/api/bills/acme/2026-10/export?format=focus&lang=en")] == exports
    csv = client.get(exports[0].replace("&amp;", "&"))  # the page's session alone
    assert csv.status_code == 200 and csv.text.startswith("date,model,meter")
    assert csv.headers["x-meterline-bill-total"] == api["total"]
    zh = client.get("/bills/acme/2026-10", headers=ZH)
    zh_exports = re.findall(r'<a class="export" href="([^"]+)">', zh.text)
    assert all(u.endswith("lang=zh") for u in zh_exports) and len(zh_exports) == 3
    chinese = client.get(zh_exports[0].replace("&amp;", "&"))
    assert chinese.status_code == 200 and "模型" in chinese.text
    assert _money(zh.text) == amounts and "总计" in zh.text and "导出" in zh.text
    # one user's bill
    alice = _api_bill(client, "acme", "2026-10", user="alice")
    user_page = client.get("/bills/acme/2026-10", params={"user": "alice"})
    assert _money(user_page.text)[0] == _pair(alice["total"], "USD") == _pair("2.5", "USD")
    assert "user=alice" in user_page.text


def _audit(client: httpx.Client, action: str) -> list[dict[str, Any]]:
    answer = client.get("/api/audit", params={"action": action}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


@pytest.mark.parametrize("headers", [{}, ZH])
def test_status_changes_are_confirmed_then_made_by_the_apis_service(
        client: httpx.Client, tenant_key: str, headers: dict[str, str]) -> None:
    _usage(client, tenant_key)
    sign_in(client)
    url = "/bills/acme/2026-10/status"
    page = client.get("/bills/acme/2026-10", headers=headers).text
    assert f'action="{url}"' in page
    assert re.findall(r'name="status" value="(\w+)"', page) == ["issued", "void"]
    asked = client.post(url, data={"status": "issued"}, headers=headers)
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert _api_bill(client, "acme", "2026-10")["status"] == "open"  # only asked
    done = client.post(url, data={"status": "issued", "confirm": "yes"}, headers=headers,
                       follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/bills/acme/2026-10?changed=issued"
    shown = client.get(done.headers["location"], headers=headers)
    api = _api_bill(client, "acme", "2026-10")
    assert api["status"] == "issued" and api["total"] == "3.75"
    assert _money(shown.text)[0] == _pair(api["total"], "USD")
    assert re.findall(r'name="status" value="(\w+)"', shown.text) == ["paid", "void"]
    entries = _audit(client, "bill.issue")
    assert [(e["action"], e["target"], e["actor"][:8]) for e in entries] == [
        ("bill.issue", "acme/2026-10", "session:")]
    # a refusal of the life cycle is shown on the bill's page, with the API's status
    refused = client.post("/bills/acme/2026-11/status",
                          data={"status": "paid", "confirm": "yes"}, headers=headers)
    assert refused.status_code == 400, refused.text
    assert 'class="error refusal"' in refused.text and "allowed from open" in refused.text
    assert _api_bill(client, "acme", "2026-11")["status"] == "open"
    assert _audit(client, "bill.pay") == []
    paid = client.post(url, data={"status": "paid", "confirm": "yes"}, headers=headers,
                       follow_redirects=True)
    assert paid.status_code == 200  # followed to the bill's page
    assert _api_bill(client, "acme", "2026-10")["status"] == "paid"
    assert "name=\"status\"" not in paid.text  # nothing is left to change
    again = client.post(url, data={"status": "void", "confirm": "yes"}, headers=headers)
    assert again.status_code == 400 and "allowed from paid: none" in again.text
    # a user's bill is its own
    user = client.post(url, data={"status": "void", "user": "alice", "confirm": "yes"},
                       follow_redirects=False)
    assert user.headers["location"] == "/bills/acme/2026-10?user=alice&changed=void"
    assert _api_bill(client, "acme", "2026-10", user="alice")["status"] == "void"
    assert _api_bill(client, "acme", "2026-10")["status"] == "paid"


def test_bad_input_is_the_apis_answer_as_a_page(client: httpx.Client, tenant_key: str) -> None:
    sign_in(client)
    for path, params, status, words in (
            ("/bills", {"cycle": "October"}, 400, "cycle"),
            ("/bills/acme/October", {}, 400, "cycle"),
            ("/bills", {"cycle": "2026-10", "tenant": "nobody"}, 404, "nobody"),
            ("/bills/acme/2026-10", {"user": "nobody"}, 404, "nobody")):
        answer = client.get(path, params=params)
        assert answer.status_code == status and words in answer.text, (path, params)
        assert answer.headers["content-type"].startswith("text/html")
    bogus = client.post("/bills/acme/2026-10/status", data={"status": "closed"})
    assert bogus.status_code == 400 and "status" in bogus.text
    unknown = client.post("/bills/acme/2026-10/status", data={"status": "paid", "x": "1"})
    assert unknown.status_code == 400 and "x: unknown field" in unknown.text
    assert _api_bill(client, "acme", "2026-10")["status"] == "open"


def test_names_are_escaped_and_other_sites_forms_refused(client: httpx.Client,
                                                         tenant_key: str) -> None:
    price_m1(client)
    user = "<script>alert(1)</script>"
    report(client, tenant_key, [{"id": "x1", "timestamp": "2026-10-05T10:00:00Z",
                                 "model": "test/m1", "user": user,
                                 "usage": {"input_tokens": 1000, "output_tokens": 1}}])
    sign_in(client)
    page = client.get("/bills/acme/2026-10", params={"user": user})
    assert page.status_code == 200, page.text
    assert user not in page.text and str(escape(user)) in page.text
    missing = client.get("/bills", params={"cycle": "2026-10", "tenant": "<b>x</b>"})
    assert "<b>x</b>" not in missing.text and missing.status_code in (400, 404)
    cross = client.post("/bills/acme/2026-10/status", data={"status": "void", "confirm": "yes"},
                        headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    assert _api_bill(client, "acme", "2026-10")["status"] == "open"
