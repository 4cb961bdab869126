"""The dashboard's usage explorer and call detail (meterline/web/usage.py) over real HTTP, on
SQLite and PostgreSQL: the filters give what the admin API's ``GET /api/usage`` gives, and keyset
paging walks a ledger bigger than a page with no record twice and none missed."""

from __future__ import annotations

import re
from typing import Any

import httpx
from markupsafe import escape

from meterline.web.usage import PAGE_SIZE
from tests.conftest import ADMIN
from tests.web.conftest import price_m1, report, sign_in

RECORD_LINK = re.compile(r'<a href="/usage/([^"]+)">')
NEXT_LINK = re.compile(r'<a class="swap next" href="([^"]+)">')


def _ids(html: str) -> list[str]:
    return RECORD_LINK.findall(html)


def _api_ids(client: httpx.Client, **params: Any) -> list[str]:
    answer = client.get("/api/usage", params={"limit": 10_000, **params}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return [r["request_id"] for r in answer.json()["records"]]


def test_filters_give_the_api_records(client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    events = [{"id": f"e{n}", "timestamp": f"2026-10-0{n}T10:00:00Z", "model": "test/m1",
               "user": user, "status": status, "metadata": {"team": team},
               "usage": {"input_tokens": 1000 * n, "output_tokens": 10}}
              for n, user, status, team in ((1, "alice", "success", "search"),
                                            (2, "bob", "error", "ads"),
                                            (3, "alice", "success", "ads"))]
    report(client, tenant_key, events)
    assert client.get("/usage", follow_redirects=False).status_code == 303
    sign_in(client)
    page = client.get("/usage").text
    assert "3 records on this page." in page
    assert _ids(page) == _api_ids(client)  # newest first
    assert page.index("Oct 3, 2026") < page.index("Oct 2, 2026") < page.index("Oct 1, 2026")
    for params in ({"user": "alice", "tenant": "acme"}, {"status": "error"},
                   {"model": "test/m1", "provider": "test"}, {"start": "2026-10-02"},
                   {"end": "2026-10-02"}, {"start": "2026-10-02T00:00:00Z",
                                           "end": "2026-10-02T23:00:00Z"}):
        shown = client.get("/usage", params=params).text
        api = dict(params)
        if api.get("end") == "2026-10-02":
            api["end"] = "2026-10-03"  # a date on the page is its whole day
        assert _ids(shown) == _api_ids(client, **api), params
        assert _ids(shown), params
    alice = client.get("/usage", params={"user": "alice"}).text
    assert "2 records on this page." in alice and "<td>bob</td>" not in alice
    assert 'name="user" value="alice"' in alice  # the filter stays in the form
    ads = client.get("/usage", params={"tag": "team=ads"}).text
    assert len(_ids(ads)) == 2 and "<td>bob</td>" in ads
    assert "No records." in client.get("/usage", params={"tag": "team=none"}).text
    assert "No records." in client.get("/usage", params={"status": "timeout"}).text


def test_bad_filters_are_the_api_answers(client: httpx.Client) -> None:
    sign_in(client)
    for params, words in (({"tag": "team"}, "key=value"), ({"tag": 'te"am=x'}, "key=value"),
                          ({"start": "yesterday"}, "start"),
                          ({"start": "2026-10-02", "end": "2026-10-01"}, "after start"),
                          ({"after": "not-a-cursor"}, "first page"),
                          ({"after": "!!!"}, "first page")):
        answer = client.get("/usage", params=params)
        assert answer.status_code == 400 and words in answer.text, params
        assert answer.headers["content-type"].startswith("text/html")
    missing = client.get("/usage", params={"tenant": "<b>nobody</b>"})
    assert missing.status_code == 404 and "<b>nobody</b>" not in missing.text
    assert str(escape("<b>nobody</b>")) in missing.text


def test_keyset_pages_walk_the_whole_ledger_once(client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    count = PAGE_SIZE * 2 + 17
    # Four records share each time, so pages end inside a run of equal times.
    events = [{"id": f"e{n:04d}", "timestamp": f"2026-10-{1 + n // 40:02d}T10:{n // 4 % 6}0:00Z",
               "model": "test/m1", "user": f"u{n % 3}", "usage": {"input_tokens": n + 1}}
              for n in range(count)]
    report(client, tenant_key, events)
    sign_in(client)
    expected = _api_ids(client, tenant="acme")
    assert len(expected) == count
    for params in ({}, {"tenant": "acme"}):
        seen: list[str] = []
        url: str | None = "/usage"
        answer = client.get(url, params=params)
        pages = 0
        while True:
            pages += 1
            assert answer.status_code == 200
            ids = _ids(answer.text)
            assert len(ids) == (PAGE_SIZE if pages < 3 else count - 2 * PAGE_SIZE)
            seen += ids
            found = NEXT_LINK.search(answer.text)
            if found is None:
                break
            url = found.group(1).replace("&amp;", "&")
            assert "tenant=acme" in url or not params  # the filters go on
            answer = client.get(url)
            assert "First page" in answer.text
        assert pages == 3 and seen == expected and len(set(seen)) == count


def test_a_call_with_its_charge_lines_price_version_fx_rate_and_metadata(
        client: httpx.Client) -> None:
    created = client.post("/api/tenants", json={"name": "yuan", "currency": "CNY"},
                          headers=ADMIN)
    assert created.status_code == 201, created.text
    key = client.post("/api/keys", json={"tenant": "yuan"}, headers=ADMIN).json()["key"]
    price_m1(client)
    fx = client.post("/api/fx", headers=ADMIN, json={
        "base": "USD", "quote": "CNY", "rate": "7.1234", "effective_from": "2020-01-01T00:00:00Z"})
    assert fx.status_code == 201, fx.text
    report(client, key, [{"id": "call-1", "timestamp": "2026-10-05T10:00:00Z",
                          "model": "test/m1", "user": "<i>li</i>", "tags": ["beta"],
                          "metadata": {"team": "<img src=x onerror=alert(1)>", "n": 3},
                          "usage": {"input_tokens": 1000, "output_tokens": 500}}])
    sign_in(client)
    record = client.get("/api/usage", params={"tenant": "yuan"},
                        headers=ADMIN).json()["records"][0]
    listing = client.get("/usage", params={"tenant": "yuan"}).text
    assert _ids(listing) == [record["request_id"]]
    page = client.get(f"/usage/{record['request_id']}")
    assert page.status_code == 200
    html = page.text
    assert f'<dd class="price-version">{escape(record["price_version"])}</dd>' in html
    assert record["price_version"]
    assert f'1 USD = {record["fx_rate"]} CNY' in html and record["fx_rate"] == "7.1234"
    assert (f'<span class="money" title="{record["billed_cost"]} CNY">' in html)
    for line in record["lines"]:
        assert f"<td>{line['meter']}</td>" in html
        assert f'title="{line["amount"]} USD"' in html
        assert f"{line['unit_price']} USD</td>" in html
    assert "<dt>team</dt><dd>&lt;img src=x onerror=alert(1)&gt;</dd>" in html
    assert "<dt>n</dt><dd>3</dd>" in html and "beta" in html
    assert "<i>li</i>" not in html and "&lt;i&gt;li&lt;/i&gt;" in html
    missing = client.get("/usage/nothing-here")
    assert missing.status_code == 404 and "nothing-here" in missing.text
