"""Who may call what: tenant keys (missing, bad, revoked, expired), the admin token, isolation."""

from __future__ import annotations

import re
from typing import Any

import httpx

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN
EVENT = {"id": "evt-1", "timestamp": "2026-11-01T10:00:00Z", "model": "openai/gpt-5-nano",
         "usage": {"input_tokens": 1000, "output_tokens": 500}}
QUOTE = {"model": "openai/gpt-5-nano", "usage": {"input_tokens": 1000}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_unauthorized(answer: httpx.Response, says: str) -> None:
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "code"}, error
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert says in error["message"], error


def new_key(client: httpx.Client, tenant: str, **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/keys", json={"tenant": tenant, **fields}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def usage_ids(client: httpx.Client, tenant: str) -> list[str]:
    answer = client.get("/api/usage", params={"tenant": tenant}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return sorted(r["id"] for r in answer.json()["records"])


def test_tenant_endpoints_need_a_usable_key(client: httpx.Client, tenant_key: str) -> None:
    for path, body in (("/v1/usage", {"events": [EVENT]}), ("/v1/billing/quote", QUOTE)):
        assert_unauthorized(client.post(path, json=body), "missing API key")
        assert_unauthorized(client.post(path, json=body, headers={"Authorization": "Bearer"}),
                            "missing API key")
        assert_unauthorized(client.post(path, json=body, headers=bearer("ml-not-a-key")),
                            "invalid API key")
        assert_unauthorized(client.post(path, json=body, headers={"x-api-key": "ml-nope"}),
                            "invalid API key")
        # A key given in the wrong scheme is not a key.
        assert_unauthorized(client.post(path, json=body,
                                        headers={"Authorization": f"Basic {tenant_key}"}),
                            "missing API key")
        # Garbage bodies are refused for being unauthenticated, not parsed first.
        assert_unauthorized(client.post(path, content=b"\x00garbage"), "missing API key")
    # The admin token is not a tenant key: it cannot report usage for nobody.
    assert_unauthorized(client.post("/v1/usage", json={"events": [EVENT]}, headers=ADMIN),
                        "invalid API key")

    # The good key works with either header.
    for headers in (bearer(tenant_key), {"x-api-key": tenant_key},
                    {"Authorization": f"bearer {tenant_key}"}):
        answer = client.post("/v1/billing/quote", json=QUOTE, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["cost"] == "0.00005"
    answer = client.post("/v1/usage", json={"events": [EVENT]}, headers={"x-api-key": tenant_key})
    assert answer.status_code == 200, answer.text
    assert usage_ids(client, "acme") == ["evt-1"]


def test_revoked_and_expired_keys_are_refused(client: httpx.Client, tenant_key: str) -> None:
    doomed = new_key(client, "acme", name="doomed")
    headers = bearer(doomed["key"])
    assert client.post("/v1/billing/quote", json=QUOTE, headers=headers).status_code == 200

    revoked = client.post(f"/api/keys/{doomed['id']}/revoke", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == doomed["id"]
    assert revoked.json()["revoked_at"] is not None
    assert_unauthorized(client.post("/v1/billing/quote", json=QUOTE, headers=headers), "revoked")
    assert_unauthorized(client.post("/v1/usage", json={"events": [EVENT]}, headers=headers),
                        "revoked")
    # Revoking again changes nothing; revoking a key that does not exist is a 404.
    again = client.post(f"/api/keys/{doomed['id']}/revoke", headers=ADMIN)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    missing = client.post("/api/keys/key_0000000000000000/revoke", headers=ADMIN)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "not_found"

    expired = new_key(client, "acme", expires_at="2020-01-01T00:00:00Z")
    assert expired["expires_at"] == "2020-01-01T00:00:00+00:00"
    assert_unauthorized(client.post("/v1/usage", json={"events": [EVENT]},
                                    headers=bearer(expired["key"])), "expired")
    future = new_key(client, "acme", expires_at="2999-01-01T00:00:00+08:00")
    answer = client.post("/v1/usage", json={"events": [EVENT]}, headers=bearer(future["key"]))
    assert answer.status_code == 200, answer.text

    # The other keys of the tenant keep working, and nothing the refused keys sent was recorded.
    assert client.post("/v1/billing/quote", json=QUOTE,
                       headers=bearer(tenant_key)).status_code == 200
    assert usage_ids(client, "acme") == ["evt-1"]


def test_admin_endpoints_need_the_admin_token(client: httpx.Client, tenant_key: str) -> None:
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/api/tenants", None), ("POST", "/api/tenants", {"name": "evil"}),
        ("GET", "/api/tenants/acme/users", None),
        ("GET", "/api/keys", None), ("POST", "/api/keys", {"tenant": "acme"}),
        ("POST", "/api/keys/key_x/revoke", None),
        ("GET", "/api/prices", None),
        ("POST", "/api/prices", {"model": "evil/m", "currency": "USD", "prices": {},
                                 "effective_from": "2020-01-01"}),
        ("POST", "/api/prices/import?format=litellm", {}),
        ("GET", "/api/fx", None), ("POST", "/api/fx", {"base": "USD", "quote": "CNY",
                                                        "rate": "7"}),
        ("GET", "/api/usage", None), ("POST", "/api/rerate", None),
        ("GET", "/api/admin-tokens", None), ("POST", "/api/admin-tokens", {"name": "evil"}),
        ("POST", "/api/admin-tokens/1/revoke", None),
    ]
    for method, path, body in calls:
        for headers, says in (({}, "missing admin token"),
                              (bearer("wrong-token"), "invalid admin token"),
                              (bearer(tenant_key), "invalid admin token"),
                              ({"x-api-key": "test-admin-tokenX"}, "invalid admin token"),
                              ({"Cookie": "meterline_session=forged"}, "sign in again"),
                              # the token itself is no session (the cookie once held it)
                              ({"Cookie": "meterline_session=test-admin-token"},
                               "sign in again")):
            answer = client.request(method, path, json=body, headers=headers)
            assert_unauthorized(answer, says)
    # Nothing was changed by the refused calls.
    tenants = client.get("/api/tenants", headers=ADMIN).json()["tenants"]
    assert [t["id"] for t in tenants] == ["acme"]
    assert len(client.get("/api/keys", headers=ADMIN).json()["keys"]) == 1
    assert client.get("/api/prices", params={"model": "evil/m"},
                      headers=ADMIN).status_code == 404
    assert client.get("/api/fx", headers=ADMIN).json() == {"rates": []}
    # The token works as a bearer token and as x-api-key (the dashboard's session cookie is
    # tests/web/test_login.py's).
    for headers in (ADMIN, {"x-api-key": "test-admin-token"}):
        answer = client.get("/api/tenants", headers=headers)
        assert answer.status_code == 200, answer.text


def test_tenants_are_isolated(client: httpx.Client, tenant_key: str) -> None:
    client.post("/api/tenants", json={"name": "globex"}, headers=ADMIN).raise_for_status()
    other = bearer(new_key(client, "globex")["key"])
    mine = bearer(tenant_key)

    a = client.post("/v1/usage", json={"events": [EVENT]}, headers=mine).json()["results"][0]
    b = client.post("/v1/usage", json={"events": [EVENT]}, headers=other).json()["results"][0]
    # The same event id under another tenant is another event, charged to that tenant.
    assert (a["duplicate"], b["duplicate"]) == (False, False)
    assert a["request_id"] != b["request_id"]
    assert a["cost"] == b["cost"] == "0.00025"
    # Sent again by B with other quantities, it is B's duplicate and leaves A's record alone.
    changed = EVENT | {"usage": {"input_tokens": 7, "output_tokens": 0}}
    b2 = client.post("/v1/usage", json={"events": [changed]}, headers=other).json()["results"][0]
    assert (b2["duplicate"], b2["request_id"], b2["cost"]) == (True, b["request_id"], "0.00025")

    only_a = client.get("/api/usage", params={"tenant": "acme"}, headers=ADMIN).json()["records"]
    only_b = client.get("/api/usage", params={"tenant": "globex"}, headers=ADMIN).json()["records"]
    assert [(r["request_id"], r["tenant"]) for r in only_a] == [(a["request_id"], "acme")]
    assert [(r["request_id"], r["tenant"]) for r in only_b] == [(b["request_id"], "globex")]
    assert only_a[0]["usage"] == {"input_tokens": 1000, "output_tokens": 500}

    # B's key opens no admin view of A's data.
    for path in ("/api/usage?tenant=acme", "/api/keys?tenant=acme", "/api/tenants/acme/users"):
        assert client.get(path, headers=other).status_code == 401
    # And B cannot revoke A's key.
    key_a = client.get("/api/keys", params={"tenant": "acme"}, headers=ADMIN).json()["keys"][0]
    assert client.post(f"/api/keys/{key_a['id']}/revoke", headers=other).status_code == 401
    assert client.post("/v1/billing/quote", json=QUOTE, headers=mine).status_code == 200


def _admin_operations(client: httpx.Client) -> list[tuple[str, str]]:
    """Every admin API operation in the app's own OpenAPI schema, path parameters filled."""
    schema = client.get("/openapi.json").json()
    operations = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        operations += [(method.upper(), concrete) for method in methods
                       if method in ("get", "post", "put", "patch", "delete")]
    return operations


def test_every_admin_operation_refuses_every_wrong_credential(client: httpx.Client,
                                                              tenant_key: str) -> None:
    # A revoked admin token, and a dashboard session that was signed out.
    made = client.post("/api/admin-tokens", json={"name": "leaver"}, headers=ADMIN).json()
    assert client.post(f"/api/admin-tokens/{made['id']}/revoke",
                       headers=ADMIN).status_code == 200
    client.post("/login", data={"token": "test-admin-token"}, follow_redirects=False)
    session = client.cookies.get("meterline_session")
    assert session
    client.post("/logout", follow_redirects=False)
    client.cookies.clear()
    credentials = [({}, "missing admin token"),
                   (bearer("wrong-token"), "invalid admin token"),
                   (bearer(tenant_key), "invalid admin token"),
                   (bearer(made["token"]), "revoked"),
                   ({"Cookie": f"meterline_session={session}"}, "sign in again")]
    operations = _admin_operations(client)
    assert len(operations) >= 40, operations  # the whole admin API, not a sample
    for method, path in operations:
        for headers, says in credentials:
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert says in answer.json()["error"]["message"], (method, path, answer.text)
    assert [t["id"] for t in client.get("/api/tenants", headers=ADMIN).json()["tenants"]] == [
        "acme"]
