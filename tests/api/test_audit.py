"""The audit log over HTTP, on SQLite and PostgreSQL (issue 12.11): every admin action done
through the admin API — bills issued, paid and voided, keys, prices, FX rates, budgets, quotas,
plans, tenants, admin tokens, refunds — is an entry naming who did it (the admin token's name,
``session:<name>`` for a dashboard session), read back with ``GET /api/audit`` with filters and
pages; no secret is ever in it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.web.conftest import sign_in


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert body["error"].get("field") == field, body


def audit(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(client.get("/api/audit", headers=ADMIN,
                                                params={"limit": 1000, **params}))["entries"]
    return found


def at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def acted(client: httpx.Client) -> dict[str, Any]:
    """A day of admin work through the API; returns the secrets it was shown."""
    ok(client.post("/api/tenants", headers=ADMIN, json={"name": "acme", "currency": "USD"}),
       201)
    key = ok(client.post("/api/keys", headers=ADMIN, json={"tenant": "acme", "user": "ann",
                                                           "name": "ci", "rpm": 60}), 201)
    revoked = client.post(f"/api/keys/{key['id']}/revoke", headers=ADMIN)
    ok(revoked)
    ok(client.post(f"/api/keys/{key['id']}/revoke", headers=ADMIN))  # no change: no entry
    spare = ok(client.post("/api/keys", headers=ADMIN, json={"tenant": "acme"}), 201)
    ok(client.post("/api/prices", headers=ADMIN, json={
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}), 201)
    ok(client.post("/api/fx", headers=ADMIN, json={"base": "USD", "quote": "CNY",
                                                   "rate": "7.1"}), 201)
    budget = ok(client.post("/api/budgets", headers=ADMIN, json={"tenant": "acme",
                                                                 "amount": "10"}), 201)
    ok(client.post("/api/budgets", headers=ADMIN, json={"tenant": "acme", "amount": "20",
                                                        "mode": "alert"}), 201)
    ok(client.post("/api/quotas/grants", headers=ADMIN, json={
        "tenant": "acme", "type": "image", "amount": 5, "reason": "trial"}), 201)
    ok(client.post("/api/plans", headers=ADMIN, json={"id": "basic",
                                                      "allowances": {"image": 10}}), 201)
    ok(client.put("/api/tenants/acme/plan", headers=ADMIN, json={"plan": "basic"}))
    # Usage to refund and bills to issue, pay and void.
    results = ok(client.post("/v1/usage", headers=bearer(spare["key"]), json={"events": [
        {"id": "e1", "timestamp": "2026-10-05T10:00:00Z", "model": "test/m1",
         "usage": {"input_tokens": 1000, "output_tokens": 100}}]}))["results"]
    request_id = results[0]["request_id"]
    ok(client.post(f"/api/usage/{request_id}/refund", headers=ADMIN,
                   json={"reason": "goodwill"}), 201)
    ok(client.post(f"/api/usage/{request_id}/refund", headers=ADMIN))  # a duplicate: no entry
    ok(client.post("/api/bills/acme/2026-10/status", headers=ADMIN, json={"status": "issued"}))
    ok(client.post("/api/bills/acme/2026-10/status", headers=ADMIN, json={"status": "paid"}))
    ok(client.post("/api/bills/status", headers=ADMIN, json={"status": "void", "bills": [
        {"tenant": "acme", "cycle": "2026-08"}, {"tenant": "acme", "cycle": "2026-09"}]}))
    ok(client.delete(f"/api/budgets/{budget['id']}", headers=ADMIN))
    # Another admin, by token and by a dashboard session.
    alice = ok(client.post("/api/admin-tokens", headers=ADMIN, json={"name": "alice"}), 201)
    ok(client.post("/api/tenants", headers=bearer(alice["token"]), json={"name": "beta"}),
       201)
    with httpx.Client(base_url=client.base_url, timeout=60) as browser:
        session = sign_in(browser, alice["token"])
        ok(browser.post("/api/fx", json={"base": "EUR", "quote": "USD", "rate": "1.1"}), 201)
        assert browser.post("/logout", follow_redirects=False).status_code == 303
    ok(client.post("/api/admin-tokens/alice/revoke", headers=ADMIN))
    answered = revoked.headers["x-meterline-request-id"]
    return {"keys": [key["key"], spare["key"]], "admin_token": alice["token"],
            "revoke_request_id": answered,
            "alice_id": alice["id"], "session": session, "key_id": key["id"],
            "budget_id": budget["id"], "request_id": request_id}


def test_every_admin_action_is_an_entry_naming_who_did_it(
        client: httpx.Client, acted: dict[str, Any]) -> None:
    entries = audit(client)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert [(e["actor"], e["action"]) for e in reversed(entries)] == [
        ("config", "tenant.create"), ("config", "key.create"), ("config", "key.revoke"),
        ("config", "key.create"), ("config", "price.set"), ("config", "fx.set"),
        ("config", "budget.create"), ("config", "budget.update"), ("config", "quota.grant"),
        ("config", "plan.set"), ("config", "plan.subscribe"), ("config", "usage.refund"),
        ("config", "bill.issue"), ("config", "bill.pay"), ("config", "bill.void"),
        ("config", "bill.void"), ("config", "budget.delete"),
        ("config", "admin_token.create"), ("alice", "tenant.create"),
        ("alice", "session.start"), ("session:alice", "fx.set"),
        ("session:alice", "session.end"), ("config", "admin_token.revoke")]
    by = {(e["action"], e["target"]): e for e in entries}

    created = by[("key.create", acted["key_id"])]
    assert created["tenant"] == "acme"
    assert created["details"] == {"user": "ann", "name": "ci", "models": None,
                                  "expires_at": None, "rpm": 60, "tpm": None}
    assert by[("key.revoke", acted["key_id"])]["details"] == {"user": "ann", "name": "ci"}
    price = by[("price.set", "test/m1@2020-01-01T00:00:00+00:00")]["details"]
    assert (price["model"], price["currency"], price["prices"]) == (
        "test/m1", "USD", {"input_tokens": "0.0000005", "output_tokens": "0.0000015"})
    assert by[("fx.set", "USD/CNY")]["details"]["rate"] == "7.1"
    assert by[("fx.set", "EUR/USD")]["actor"] == "session:alice"
    first = by[("budget.create", acted["budget_id"])]["details"]
    second = by[("budget.update", acted["budget_id"])]["details"]
    assert (first["amount"], first["mode"], second["amount"], second["mode"]) == (
        "10", "block", "20", "alert")
    assert by[("budget.delete", acted["budget_id"])]["tenant"] == "acme"
    grant = next(e for e in entries if e["action"] == "quota.grant")
    assert (grant["tenant"], grant["details"]["amount"], grant["details"]["reason"]) == (
        "acme", 5, "trial")
    assert by[("plan.set", "basic")]["details"] == {"allowances": {"image": 10}}
    refund = by[("usage.refund", acted["request_id"])]
    assert refund["tenant"] == "acme" and refund["details"]["reason"] == "goodwill"
    assert refund["details"]["cost"].startswith("-")
    issued = by[("bill.issue", "acme/2026-10")]["details"]
    assert (issued["from"], issued["to"], issued["currency"]) == ("open", "issued", "USD")
    assert by[("bill.pay", "acme/2026-10")]["details"]["from"] == "issued"
    voided = [e for e in entries if e["action"] == "bill.void"]
    assert sorted(e["target"] for e in voided) == ["acme/2026-08", "acme/2026-09"]
    # the two bills of one batch: one request, as the batch's size says
    assert voided[0]["request_id"] == voided[1]["request_id"] is not None
    assert {e["details"]["batch"] for e in voided} == {2}
    assert by[("bill.issue", "acme/2026-10")]["request_id"] != voided[0]["request_id"]
    token = by[("admin_token.create", str(acted["alice_id"]))]
    assert token["details"] == {"name": "alice"}
    assert by[("admin_token.revoke", str(acted["alice_id"]))]["actor"] == "config"
    # an entry names the request that made it, as its answer did
    (revoke,) = [e for e in entries if e["action"] == "key.revoke"]
    assert revoke["request_id"] == acted["revoke_request_id"]
    # one request id per admin API request; signing in and out are no API requests
    signing = {"session.start", "session.end"}
    assert all(e["request_id"] is None if e["action"] in signing
               else e["request_id"].startswith("req_") for e in entries)


def test_no_secret_is_ever_in_the_log(client: httpx.Client, acted: dict[str, Any]) -> None:
    text = client.get("/api/audit", headers=ADMIN, params={"limit": 1000}).text
    session_id = acted["session"].partition(".")[0]
    for secret in (*acted["keys"], acted["admin_token"], ADMIN_TOKEN, acted["session"],
                   session_id):
        assert secret not in text
    # the key's prefix (its first characters) is not kept either
    for key in acted["keys"]:
        assert key[:10] not in text


def test_filters_and_pages(client: httpx.Client, acted: dict[str, Any]) -> None:
    everything = audit(client)
    bills = audit(client, action="bill")
    assert [e["action"] for e in bills] == ["bill.void", "bill.void", "bill.pay", "bill.issue"]
    assert audit(client, action="bill.") == bills
    assert [e["action"] for e in audit(client, action="bill.pay")] == ["bill.pay"]
    assert {e["action"] for e in audit(client, action="admin_token")} == {
        "admin_token.create", "admin_token.revoke"}
    assert {e["actor"] for e in audit(client, actor="session:alice")} == {"session:alice"}
    assert [e["action"] for e in audit(client, actor="alice")] == ["session.start",
                                                                    "tenant.create"]
    assert [e["action"] for e in audit(client, tenant="beta")] == ["tenant.create"]
    assert len(audit(client, tenant="acme")) == len(everything) - 9
    middle = everything[5]["at"]
    since = audit(client, since=middle)
    assert since == [e for e in everything if at(e) >= at(everything[5])]
    assert audit(client, until=middle) == [e for e in everything if at(e) < at(everything[5])]
    assert audit(client, since="2999-01-01T00:00:00Z") == []
    # pages of 5, following next_before, give every entry once, newest first
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = ok(client.get("/api/audit", headers=ADMIN, params=params))
        seen += page["entries"]
        if page["next_before"] is None:
            break
        assert len(page["entries"]) == 5
        params["before"] = page["next_before"]
    assert seen == everything


def test_bad_filters_and_callers_who_are_not_admins(client: httpx.Client,
                                                    acted: dict[str, Any]) -> None:
    for params, field in (({"since": "yesterday"}, "since"), ({"until": "2026-99-01"}, "until"),
                          ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
                          ({"action": "DROP TABLE"}, "action"), ({"actor": ""}, "actor"),
                          ({"limit": 0}, "limit"), ({"limit": 5000}, "limit"),
                          ({"limit": "many"}, "limit"), ({"before": "x"}, "before"),
                          ({"before": 0}, "before")):
        refused(client.get("/api/audit", headers=ADMIN, params=params), 400, "invalid_request",
                field)
    unknown = client.get("/api/audit", headers=ADMIN, params={"tenant": "nobody"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "tenant_not_found"
    for headers in ({}, bearer(acted["keys"][1]), bearer(acted["admin_token"]),  # revoked
                    bearer("mla-guess")):
        answer = client.get("/api/audit", headers=headers)
        assert answer.status_code in (401, 403), answer.text
        assert "entries" not in answer.text
    # a refused caller leaves no entry either
    before = audit(client)
    assert client.post("/api/tenants", json={"name": "gamma"}).status_code == 401
    assert client.post("/api/tenants", headers=ADMIN, json={"name": "b@d"}).status_code == 400
    assert audit(client) == before
    assert orjson.loads(client.get("/openapi.json").content)["paths"]["/api/audit"]["get"]
