"""``meterline admin-tokens create|list|revoke`` (meterline/cli/admin_tokens.py), with the
tokens used over real HTTP against the same database (issue 12.6: admin tokens could not be
revoked — after rotating the configured one, both the old and the new worked)."""

from __future__ import annotations

from dataclasses import replace

import httpx

from meterline.api.app import create_app
from meterline.config import Config, Secret
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_use_list_and_revoke(client: httpx.Client, ok, run_cli, fails) -> None:
    made = ok("admin-tokens", "create", "ci", "--json")
    token = made["token"]
    assert made["name"] == "ci" and made["last_used_at"] is None and made["revoked_at"] is None
    assert token.startswith("mla-") and len(token) > 40
    text = run_cli("admin-tokens", "create", "ops")
    assert text.exit_code == 0 and "shown once" in text.stdout and "mla-" in text.stdout

    listed = {t["name"]: t for t in ok("admin-tokens", "list", "--json")}
    assert set(listed) == {"config", "ci", "ops"}  # "config": the server's configured token
    assert listed["ci"]["last_used_at"] is None

    assert client.get("/api/tenants", headers=bearer(token)).status_code == 200
    used = {t["name"]: t for t in ok("admin-tokens", "list", "--json")}
    assert used["ci"]["last_used_at"] is not None
    # Never the tokens, in either form.
    for out in (run_cli("admin-tokens", "list").stdout,
                run_cli("admin-tokens", "list", "--json").stdout):
        assert token not in out and ADMIN_TOKEN not in out and "mla-" not in out
    lines = run_cli("admin-tokens", "list").stdout.splitlines()
    assert any("\tci\tactive\t" in line and "last used: 20" in line for line in lines), lines

    revoked = ok("admin-tokens", "revoke", "ci", "--json")
    assert revoked["id"] == made["id"] and revoked["revoked_at"] is not None
    refused = client.get("/api/tenants", headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert client.get("/api/tenants", headers=ADMIN).status_code == 200  # the others work
    # Revoking again says so calmly; the name is free for a new token.
    assert ok("admin-tokens", "revoke", str(made["id"]), "--json")["revoked_at"]
    assert ok("admin-tokens", "create", "ci", "--json")["id"] != made["id"]


def test_refusals(client: httpx.Client, ok, run_cli, fails) -> None:
    ok("admin-tokens", "create", "ci")
    fails(run_cli("admin-tokens", "create", "ci"), 1, "named 'ci' already")
    fails(run_cli("admin-tokens", "create", "no spaces"), 2, "name")
    fails(run_cli("admin-tokens", "revoke", "nobody"), 1, "no admin token", "nobody")
    fails(run_cli("admin-tokens", "revoke", "999"), 1, "no admin token")


def test_the_last_active_token_is_not_revoked(client: httpx.Client, ok, run_cli, fails) -> None:
    # Revoking it would lock every admin out of the API and the dashboard.
    fails(run_cli("admin-tokens", "revoke", "config"), 1, "last active", "admin-tokens create")
    answer = client.post("/api/admin-tokens/config/revoke", headers=ADMIN)
    assert answer.status_code == 409 and "last active" in answer.json()["error"]["message"]
    ok("admin-tokens", "create", "spare")
    assert ok("admin-tokens", "revoke", "config", "--json")["revoked_at"]


def test_a_rotated_configured_token_is_revoked_for_good(config: Config, client: httpx.Client,
                                                        ok, fails, run_cli) -> None:
    """The operator rotates ``admin_token``: the new one is stored at start beside the old;
    the old one is revoked by id, and a restart with it configured again does not revive it."""
    rotated = replace(config, admin_token=Secret("the-new-admin-token"))
    with LiveServer(create_app(rotated)) as url, httpx.Client(base_url=url) as new:
        assert new.get("/api/tenants", headers=bearer("the-new-admin-token")).status_code == 200
        old, current = sorted((t for t in ok("admin-tokens", "list", "--json")
                               if t["name"] == "config"), key=lambda t: t["id"])
        fails(run_cli("admin-tokens", "revoke", "config"), 2, "several", str(old["id"]))
        ok("admin-tokens", "revoke", str(old["id"]))
        for http in (client, new):  # every process, at once
            assert http.get("/api/tenants", headers=ADMIN).status_code == 401
            assert http.get("/api/tenants",
                            headers=bearer("the-new-admin-token")).status_code == 200
    with LiveServer(create_app(config)) as url, httpx.Client(base_url=url) as restarted:
        assert restarted.get("/api/tenants", headers=ADMIN).status_code == 401
    assert [t["id"] for t in ok("admin-tokens", "list", "--json")
            if t["revoked_at"] is None] == [current["id"]]
