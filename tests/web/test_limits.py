"""The dashboard's budgets, quotas and alerts page (meterline/web/limits.py) over real HTTP, on
SQLite and PostgreSQL: its figures are the admin API's (/api/budgets, /api/quotas, /api/alerts)
for the same data, and its forms change budgets and alerts through the services of the API,
audited with the session as the actor."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from markupsafe import escape

from tests.conftest import ADMIN
from tests.web.conftest import price_m1, report, sign_in

SCRIPT_USER = "<script>alert(1)</script>"


def api(client: httpx.Client, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def row(html: str, element_id: str) -> str:
    """The table row of ``id="element_id"``."""
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</tr>", start)]


def exact_of(found: str, field: str) -> Decimal:
    """The exact amount in the tooltip of the cell of class ``field`` of a row."""
    opening = f'<td class="n {field}"><span class="money" title="'
    start = found.index(opening) + len(opening)
    amount, currency = found[start:found.index('"', start)].split(" ")
    assert currency == "USD"
    return Decimal(amount)


def audited(client: httpx.Client, action: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api(client, "/api/audit", action=action)["entries"]
    return entries


def session_actor(client: httpx.Client) -> str:
    """``session:`` and the name of the admin token the test signed in with."""
    started = audited(client, "session.start")
    assert started, "nobody signed in"
    return f"session:{started[0]['actor']}"


def same_site(client: httpx.Client) -> dict[str, str]:
    """What a browser sends with a form of the dashboard's own pages."""
    return {"origin": str(client.base_url).rstrip("/")}


def _spend(client: httpx.Client, key: str) -> None:
    """Budgets on test/m1 of a day (0.001 USD), a month (0.0015) and all time (1) with alerts
    only, then a call of 0.00125 USD: 125 %, 83.3 % and 0.125 % of them."""
    price_m1(client)
    for period, amount in (("day", "0.001"), ("month", "0.0015"), ("total", "1")):
        made = client.post("/api/budgets", headers=ADMIN, json={
            "tenant": "acme", "model": "test/m1", "amount": amount, "currency": "USD",
            "period": period, "mode": "alert"})
        assert made.status_code == 201, made.text
    report(client, key, [{"id": "e1", "timestamp": datetime.now(UTC).isoformat(),
                          "model": "test/m1", "user": "alice",
                          "usage": {"input_tokens": 1000, "output_tokens": 500}}])


def test_budgets_quotas_and_alerts_are_the_api_s_in_both_languages(client: httpx.Client,
                                                                  tenant_key: str) -> None:
    _spend(client, tenant_key)
    granted = client.post("/api/quotas/grants", headers=ADMIN, json={
        "tenant": "acme", "type": "text_token", "amount": 5000, "reason": SCRIPT_USER})
    assert granted.status_code == 201, granted.text
    assert client.post("/api/tenants", json={"name": "other"}, headers=ADMIN).status_code == 201
    assert client.get("/limits", follow_redirects=False).headers["location"] == "/login"
    sign_in(client)
    alerts = api(client, "/api/alerts", tenant="acme", resolved="false")["alerts"]
    quotas = api(client, "/api/quotas/acme")["types"]
    assert alerts
    for lang, heading, used in (("en", "Budgets, quotas and alerts", "Used"),
                                ("zh_CN", "预算、配额与告警", "已用")):
        client.cookies.set("lang", lang)
        # A projection extrapolates to the period's end from the moment it is made: the
        # page's lies between the API's just before and just after it.
        budgets = api(client, "/api/budgets", tenant="acme")["budgets"]
        page = client.get("/limits", params={"tenant": "acme"})
        later = {b["id"]: b for b in api(client, "/api/budgets", tenant="acme")["budgets"]}
        assert len(budgets) == 3
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        html = page.text
        assert f"<h1>{heading}</h1>" in html and f"<th>{used}</th>" in html
        for budget in budgets:
            found = row(html, f"budget-{budget['id']}")
            for field in ("spent", "reserved", "remaining"):
                assert exact_of(found, field) == Decimal(budget[field]), field
            assert exact_of(found, "limit") == Decimal(budget["amount"])
            projected = sorted((Decimal(budget["projected"]),
                                Decimal(later[budget["id"]]["projected"])))
            assert projected[0] <= exact_of(found, "projected") <= projected[1]
        shares = {b["period"]: row(html, f"budget-{b['id']}") for b in budgets}
        # 0.00125 of 0.001, of 0.0015 and of 1: the bar's colour is the alert level's
        assert 'class="bar critical"' in shares["day"] and "125.0%" in shares["day"]
        assert 'class="bar warning"' in shares["month"] and "83.3%" in shares["month"]
        assert 'class="bar info"' in shares["total"] and "0.1%" in shares["total"]
        for alert in alerts:
            assert f'id="alert-{alert["id"]}"' in html
        for quota_type, balance in quotas.items():
            found = row(html, f"quota-{quota_type}")
            assert f'<td class="n available">{balance["available"]:,}</td>' in found
            assert f'<td class="n reserved">{balance["reserved"]:,}</td>' in found
        assert quotas["text_token"]["available"] == 5000
        assert SCRIPT_USER not in html
    client.cookies.set("lang", "en")
    other = client.get("/limits", params={"tenant": "other"}).text
    assert "No budgets." in other and "No open alerts." in other and "No quotas." in other
    everyone = client.get("/limits").text
    assert "Choose a tenant to see its quota balance." in everyone
    for budget in api(client, "/api/budgets")["budgets"]:
        assert f'id="budget-{budget["id"]}"' in everyone
    # A tenant naming none: the API's 404 and words, as a page.
    missing = client.get("/limits", params={"tenant": "nobody"})
    expected = client.get("/api/budgets", params={"tenant": "nobody"}, headers=ADMIN)
    assert missing.status_code == expected.status_code == 404
    assert str(escape(expected.json()["error"]["message"])) in missing.text


def test_a_budget_created_and_edited_on_the_page_is_the_api_s_and_audited(
        client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    sign_in(client)
    form = {"tenant": "acme", "user": SCRIPT_USER, "model": "test/m1", "amount": "2.5",
            "currency": "", "period": "month", "mode": "alert", "thresholds": "0.5, 0.9",
            "timezone": ""}
    made = client.post("/limits/budgets", data=form, headers=same_site(client),
                       follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/limits?tenant=acme"
    [budget] = api(client, "/api/budgets", tenant="acme")["budgets"]
    assert (budget["user"], budget["amount"], budget["currency"], budget["mode"],
            budget["thresholds"], budget["timezone"]) == (SCRIPT_USER, "2.5", "USD", "alert",
                                                          ["0.5", "0.9"], "UTC")
    actor = session_actor(client)
    [entry] = audited(client, "budget.create")
    assert (entry["actor"], entry["target"]) == (actor, budget["id"])
    page = client.get("/limits", params={"tenant": "acme"}).text
    assert SCRIPT_USER not in page and str(escape(SCRIPT_USER)) in page
    # Editing: the form holds the budget; its scope and period go back unchanged.
    edit = client.get("/limits", params={"tenant": "acme", "edit": budget["id"]}).text
    assert 'name="amount" type="text" value="2.5"' in edit
    assert 'name="period" value="month"' in edit and "readonly" in edit
    assert f'action="/limits/budgets?tenant=acme&amp;edit={budget["id"]}"' in edit
    # A refused edit shows the budget's form again, as it was typed.
    refused = client.post(f"/limits/budgets?tenant=acme&edit={budget['id']}",
                          data=dict(form, amount="0"), headers=same_site(client))
    assert refused.status_code == 400 and "<h2>Edit budget</h2>" in refused.text
    assert 'name="amount" type="text" value="0"' in refused.text
    changed = dict(form, amount="4", mode="block", thresholds="0.8")
    saved = client.post("/limits/budgets?tenant=acme", data=changed, headers=same_site(client),
                        follow_redirects=False)
    assert saved.status_code == 303
    [after] = api(client, "/api/budgets", tenant="acme")["budgets"]
    assert (after["id"], after["amount"], after["mode"], after["thresholds"]) == (
        budget["id"], "4", "block", ["0.8"])
    [update] = audited(client, "budget.update")
    assert update["actor"] == actor and update["details"]["amount"] == "4"
    assert client.get("/limits", params={"edit": "nobody"}).status_code == 404


def test_a_refused_budget_form_names_its_field_with_the_api_s_status(
        client: httpx.Client, tenant_key: str) -> None:
    price_m1(client)
    sign_in(client)
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        for body, field in (({"tenant": "acme", "model": "test/m1", "amount": "-1"}, "amount"),
                            ({"tenant": "acme", "model": "test/m1", "amount": "1",
                              "period": "week"}, "period"),
                            ({"tenant": "acme", "model": "test/m1", "amount": "1",
                              "thresholds": "2"}, "thresholds"),
                            ({"tenant": "nobody", "amount": "1"}, None)):
            expected = client.post("/api/budgets", json=body, headers=ADMIN)
            page = client.post("/limits/budgets", data=body, headers=same_site(client))
            assert page.status_code == expected.status_code >= 400, (body, expected.text)
            assert str(escape(expected.json()["error"]["message"])) in page.text
            if field:
                assert expected.json()["error"]["field"] == field
                label = page.text.index('<label class="invalid">')
                assert f'name="{field}"' in page.text[label:page.text.index("</label>", label)]
            # What was typed stays in the form.
            assert f'value="{body["amount"]}"' in page.text
    assert api(client, "/api/budgets")["budgets"] == []
    assert client.post("/limits/budgets", data={"amount": "1", "colour": "red"},
                       headers=same_site(client)).status_code == 400


def test_an_alert_resolved_on_the_page_is_resolved_in_the_api(client: httpx.Client,
                                                              tenant_key: str) -> None:
    _spend(client, tenant_key)
    sign_in(client)
    alerts = api(client, "/api/alerts", tenant="acme", resolved="false")["alerts"]
    chosen = alerts[0]["id"]
    done = client.post("/limits/alerts/resolve?tenant=acme", data={"id": chosen},
                       headers=same_site(client), follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/limits?tenant=acme"
    still = {a["id"] for a in api(client, "/api/alerts", tenant="acme", resolved="false")[
        "alerts"]}
    assert still == {a["id"] for a in alerts} - {chosen}
    [entry] = audited(client, "alert.resolve")
    assert entry["actor"] == session_actor(client)
    assert entry["details"] == {"ids": [chosen], "resolved": 1}
    assert f'id="alert-{chosen}"' not in client.get("/limits", params={"tenant": "acme"}).text


def test_forms_from_another_site_or_without_a_session_change_nothing(
        client: httpx.Client, tenant_key: str) -> None:
    _spend(client, tenant_key)
    alerts = api(client, "/api/alerts", resolved="false")["alerts"]
    budget = {"tenant": "acme", "model": "test/m1", "amount": "9", "period": "day"}
    assert client.post("/limits/budgets", data=budget, follow_redirects=False).headers[
        "location"] == "/login"
    sign_in(client)
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                    {"referer": "https://evil.example/page"}):
        refused = client.post("/limits/budgets", data=budget, headers=headers)
        assert refused.status_code == 403 and "cross-site form refused" in refused.text
        refused = client.post("/limits/alerts/resolve", data={"id": alerts[0]["id"]},
                              headers=headers)
        assert refused.status_code == 403
    assert {b["amount"] for b in api(client, "/api/budgets")["budgets"]} == {
        "0.001", "0.0015", "1"}
    assert len(api(client, "/api/alerts", resolved="false")["alerts"]) == len(alerts)
    # The page's own origin (or a referrer of this site) is let through.
    ok = client.post("/limits/budgets", data=budget,
                     headers={"referer": same_site(client)["origin"] + "/limits"},
                     follow_redirects=False)
    assert ok.status_code == 303
    assert "9" in {b["amount"] for b in api(client, "/api/budgets")["budgets"]}
