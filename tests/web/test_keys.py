"""The dashboard's API keys page (meterline/web/keys.py) over real HTTP, on SQLite and
PostgreSQL: the keys are the admin API's (/api/keys); a key created on the page is the API's,
audited with the session as the actor, its secret shown on that answer only; revoking asks
first."""

from __future__ import annotations

from typing import Any

import httpx
from markupsafe import escape

from tests.conftest import ADMIN
from tests.web.conftest import sign_in
from tests.web.test_limits import api, audited, row, same_site, session_actor

SCRIPT_NAME = "<script>alert(1)</script>"


def _keys(client: httpx.Client) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = api(client, "/api/keys")["keys"]
    return keys


def test_the_keys_are_the_api_s_with_their_status_in_both_languages(
        client: httpx.Client, tenant_key: str) -> None:
    made = [client.post("/api/keys", headers=ADMIN, json=body) for body in (
        {"tenant": "acme", "name": SCRIPT_NAME, "user": "alice", "models": ["test/m1"],
         "rpm": 60, "tpm": 100000},
        {"tenant": "acme", "name": "old", "expires_at": "2001-01-01T00:00:00Z"},
        {"tenant": "acme", "name": "gone"})]
    assert all(answer.status_code == 201 for answer in made)
    gone = made[2].json()["id"]
    assert client.post(f"/api/keys/{gone}/revoke", headers=ADMIN).status_code == 200
    assert client.get("/keys", follow_redirects=False).headers["location"] == "/login"
    sign_in(client)
    keys = {key["id"]: key for key in _keys(client)}
    assert len(keys) == 4
    expected_status = {made[0].json()["id"]: ("active", "有效"),
                       made[1].json()["id"]: ("expired", "已过期"), gone: ("revoked", "已吊销")}
    for lang, heading in (("en", "API keys"), ("zh_CN", "API 密钥")):
        client.cookies.set("lang", lang)
        page = client.get("/keys", params={"tenant": "acme"})
        assert page.status_code == 200 and f"<h1>{heading}</h1>" in page.text
        html = page.text
        for key_id, key in keys.items():
            found = row(html, f"key-{key_id}")
            assert f"<td>{key['tenant']}</td>" in found
            assert f"<code>{key['prefix']}…</code>" in found
            if key_id in expected_status:
                status = expected_status[key_id][0 if lang == "en" else 1]
                assert f'<td class="status">{status}</td>' in found, found
        first = row(html, f"key-{made[0].json()['id']}")
        assert "<td>alice</td>" in first and "<td>test/m1</td>" in first
        assert '<td class="n">60</td>' in first and '<td class="n">100,000</td>' in first
        assert SCRIPT_NAME not in html and str(escape(SCRIPT_NAME)) in first
        # A revoked key has no revoke link; the others do.
        assert "/revoke" not in row(html, f"key-{gone}")
        assert f'href="/keys/{made[0].json()["id"]}/revoke"' in first
    client.cookies.set("lang", "en")
    missing = client.get("/keys", params={"tenant": "nobody"})
    expected = client.get("/api/keys", params={"tenant": "nobody"}, headers=ADMIN)
    assert missing.status_code == expected.status_code == 404
    assert str(escape(expected.json()["error"]["message"])) in missing.text


def test_a_key_created_on_the_page_is_shown_once_and_audited(client: httpx.Client,
                                                             tenant_key: str) -> None:
    sign_in(client)
    before = {key["id"] for key in _keys(client)}
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        answer = client.post("/keys", headers=same_site(client), data={
            "tenant": "acme", "name": f"web {lang}", "user": "bob",
            "models": "test/m1, test/m2", "expires_at": "2099-12-31T23:30", "rpm": "5",
            "tpm": ""})
        assert answer.status_code == 201, answer.text
        [new] = [key for key in _keys(client) if key["id"] not in before]
        before.add(new["id"])
        assert (new["tenant"], new["name"], new["user"], new["models"], new["expires_at"],
                new["rpm"], new["tpm"]) == ("acme", f"web {lang}", "bob",
                                           ["test/m1", "test/m2"],
                                           "2099-12-31T23:30:00+00:00", 5, None)
        start = answer.text.index('<input class="secret" readonly value="') + 38
        secret = answer.text[start:answer.text.index('"', start)]
        assert secret.startswith(new["prefix"]) and len(secret) > len(new["prefix"]) + 16
        copy_hint = "Copy the key now" if lang == "en" else "请立即复制密钥"
        assert copy_hint in answer.text
        assert f'id="key-{new["id"]}"' in answer.text
        # The secret works, and no later page shows it.
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}
                          ).status_code == 200
        for path in ("/keys", "/keys?tenant=acme", f"/keys/{new['id']}/revoke"):
            later = client.get(path)
            assert later.status_code == 200 and secret not in later.text
        [entry] = [e for e in audited(client, "key.create") if e["target"] == new["id"]]
        assert entry["actor"] == session_actor(client) and entry["tenant"] == "acme"
        assert secret not in str(entry)


def test_a_refused_key_form_names_its_field_with_the_api_s_status(
        client: httpx.Client, tenant_key: str) -> None:
    sign_in(client)
    count = len(_keys(client))
    for lang in ("en", "zh_CN"):
        client.cookies.set("lang", lang)
        for form, body, field in (
                ({"tenant": "acme", "rpm": "0"}, {"tenant": "acme", "rpm": 0}, "rpm"),
                ({"tenant": "acme", "tpm": "many"}, {"tenant": "acme", "tpm": "many"}, "tpm"),
                ({"tenant": "acme", "expires_at": "soon"},
                 {"tenant": "acme", "expires_at": "soon"}, "expires_at"),
                ({"name": "x"}, {"name": "x"}, "tenant"),
                ({"tenant": "nobody"}, {"tenant": "nobody"}, None)):
            expected = client.post("/api/keys", json=body, headers=ADMIN)
            page = client.post("/keys", data=form, headers=same_site(client))
            assert page.status_code == expected.status_code >= 400, (form, expected.text)
            assert str(escape(expected.json()["error"]["message"])) in page.text
            assert expected.json()["error"].get("field") == field
            if field:
                label = page.text.index('<label class="invalid">')
                assert f'name="{field}"' in page.text[label:page.text.index("</label>", label)]
            assert 'class="secret"' not in page.text
    assert len(_keys(client)) == count


def test_revoking_asks_first_then_revokes_through_the_api_s_service(
        client: httpx.Client, tenant_key: str) -> None:
    key = client.post("/api/keys", headers=ADMIN, json={"tenant": "acme", "name": "doomed"})
    key_id, secret = key.json()["id"], key.json()["key"]
    assert client.post(f"/keys/{key_id}/revoke", follow_redirects=False).headers[
        "location"] == "/login"
    sign_in(client)
    for lang, question in (("en", f"Revoke key {key_id}?"), ("zh_CN", f"吊销密钥 {key_id}？")):
        client.cookies.set("lang", lang)
        confirm = client.get(f"/keys/{key_id}/revoke")
        assert confirm.status_code == 200 and question in confirm.text
        assert f'<form method="post" action="/keys/{key_id}/revoke"' in confirm.text
    # Asking changed nothing; a form from another site changes nothing either.
    assert client.post(f"/keys/{key_id}/revoke",
                       headers={"origin": "https://evil.example"}).status_code == 403
    assert [k["revoked_at"] for k in _keys(client) if k["id"] == key_id] == [None]
    done = client.post(f"/keys/{key_id}/revoke", headers=same_site(client),
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/keys?tenant=acme"
    assert [k["revoked_at"] is not None for k in _keys(client) if k["id"] == key_id] == [True]
    [entry] = audited(client, "key.revoke")
    assert (entry["actor"], entry["target"]) == (session_actor(client), key_id)
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}
                      ).status_code == 401
    missing = client.post("/keys/nokey/revoke", headers=same_site(client))
    expected = client.post("/api/keys/nokey/revoke", headers=ADMIN)
    assert missing.status_code == expected.status_code == 404
    assert client.get("/keys/nokey/revoke").status_code == 404
