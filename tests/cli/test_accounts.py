"""``meterline tenants …``, ``keys …`` and ``fx …`` (meterline/cli/accounts.py)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

# -- tenants ------------------------------------------------------------------------------------


def test_tenants_create_defaults_to_usd_and_utc(ok, run_cli):
    tenant = ok("tenants", "create", "acme", "--json")
    assert tenant["id"] == "acme"
    assert tenant["currency"] == "USD"
    assert tenant["timezone"] == "UTC"
    assert [t["id"] for t in ok("tenants", "list", "--json")] == ["acme"]


def test_tenants_create_with_currency_and_timezone(ok):
    tenant = ok("tenants", "create", "shop-cn", "--currency", "CNY", "--timezone",
                "Asia/Shanghai", "--json")
    assert (tenant["id"], tenant["currency"], tenant["timezone"]) == (
        "shop-cn", "CNY", "Asia/Shanghai")
    listed = ok("tenants", "list", "--json")
    assert [(t["id"], t["currency"], t["timezone"]) for t in listed] == [
        ("shop-cn", "CNY", "Asia/Shanghai")]


def test_tenants_create_normalises_currency_case(ok):
    assert ok("tenants", "create", "lower", "--currency", "eur", "--json")["currency"] == "EUR"


def test_tenants_list_is_empty_then_sorted(ok):
    assert ok("tenants", "list", "--json") == []
    for name in ("zeta", "alpha", "mid"):
        ok("tenants", "create", name, "--json")
    assert [t["id"] for t in ok("tenants", "list", "--json")] == ["alpha", "mid", "zeta"]


def test_tenants_text_output(ok):
    out = ok("tenants", "create", "acme", "--currency", "CNY")
    assert "acme" in out and "CNY" in out
    listed = ok("tenants", "list")
    assert listed.splitlines() == ["acme\tCNY\tUTC"]


def test_tenants_create_unknown_currency(run_cli, ok, fails):
    fails(run_cli("tenants", "create", "acme", "--currency", "XXQ", "--json"), 2,
          "currency", "XXQ")
    assert ok("tenants", "list", "--json") == []


def test_tenants_create_unknown_timezone(run_cli, ok, fails):
    fails(run_cli("tenants", "create", "acme", "--timezone", "Mars/Olympus_Mons"), 2,
          "timezone", "Mars/Olympus_Mons")
    assert ok("tenants", "list", "--json") == []


def test_tenants_create_duplicate(run_cli, ok, fails):
    ok("tenants", "create", "acme", "--currency", "CNY", "--json")
    fails(run_cli("tenants", "create", "acme", "--json"), 1, "acme", "already exists")
    # the first one is untouched
    assert [(t["id"], t["currency"]) for t in ok("tenants", "list", "--json")] == [
        ("acme", "CNY")]


@pytest.mark.parametrize("name", ["has space", "a/b", "x" * 65])
def test_tenants_create_bad_name(run_cli, ok, fails, name):
    fails(run_cli("tenants", "create", name), 2, "name")
    assert ok("tenants", "list", "--json") == []


# -- keys ---------------------------------------------------------------------------------------


def test_keys_create_prints_key_and_id_once(ok):
    ok("tenants", "create", "acme", "--json")
    created = ok("keys", "create", "--tenant", "acme", "--user", "alice", "--models",
                 "openai/gpt-4o-mini, deepseek/deepseek-chat", "--json")
    secret, key_id = created["key"], created["id"]
    assert isinstance(secret, str) and len(secret) >= 32
    assert isinstance(key_id, str) and key_id and key_id != secret
    assert created["tenant"] == "acme"
    assert created["user"] == "alice"
    assert created["models"] == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]
    assert created["revoked_at"] is None

    listed = ok("keys", "list", "--json")
    assert [k["id"] for k in listed] == [key_id]
    assert listed[0]["models"] == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]
    assert listed[0]["user"] == "alice"


def test_keys_list_never_shows_the_secret(ok, run_cli):
    ok("tenants", "create", "acme", "--json")
    secrets = [ok("keys", "create", "--tenant", "acme", "--json")["key"] for _ in range(2)]
    for args in (("keys", "list", "--json"), ("keys", "list"),
                 ("keys", "list", "--tenant", "acme", "--json")):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        for secret in secrets:
            assert secret not in result.output
            assert hashlib.sha256(secret.encode()).hexdigest() not in result.output
    for key in ok("keys", "list", "--json"):
        assert "key" not in key
        assert not any("hash" in field for field in key)


def test_keys_create_text_output_shows_key_once(ok):
    ok("tenants", "create", "acme", "--json")
    out = ok("keys", "create", "--tenant", "acme")
    [key_id] = [k["id"] for k in ok("keys", "list", "--json")]
    assert key_id in out
    assert "shown once" in out


def test_keys_list_filters_by_tenant(ok, run_cli, fails):
    ok("tenants", "create", "acme", "--json")
    ok("tenants", "create", "other", "--json")
    mine = ok("keys", "create", "--tenant", "acme", "--json")["id"]
    theirs = ok("keys", "create", "--tenant", "other", "--json")["id"]
    assert [k["id"] for k in ok("keys", "list", "--tenant", "acme", "--json")] == [mine]
    assert [k["id"] for k in ok("keys", "list", "--tenant", "other", "--json")] == [theirs]
    assert {k["id"] for k in ok("keys", "list", "--json")} == {mine, theirs}
    fails(run_cli("keys", "list", "--tenant", "ghost", "--json"), 1, "ghost")


def test_keys_revoke(ok, run_cli, fails):
    ok("tenants", "create", "acme", "--json")
    kept = ok("keys", "create", "--tenant", "acme", "--json")["id"]
    gone = ok("keys", "create", "--tenant", "acme", "--json")["id"]
    out = ok("keys", "revoke", gone)
    assert gone in out and "revoked" in out
    state = {k["id"]: k["revoked_at"] for k in ok("keys", "list", "--json")}
    assert state[kept] is None
    assert state[gone] is not None
    # revoking again is harmless and keeps the first revocation time
    again = ok("keys", "revoke", gone, "--json")
    assert again["revoked_at"] == state[gone]
    fails(run_cli("keys", "revoke", "key_does_not_exist"), 1, "key_does_not_exist")


def test_keys_create_unknown_tenant(run_cli, ok, fails):
    fails(run_cli("keys", "create", "--tenant", "ghost", "--json"), 1, "ghost")
    assert ok("keys", "list", "--json") == []


def test_keys_create_bad_expiry(run_cli, ok, fails):
    ok("tenants", "create", "acme", "--json")
    fails(run_cli("keys", "create", "--tenant", "acme", "--expires", "next week"), 2,
          "--expires")
    assert ok("keys", "list", "--json") == []


def test_keys_create_with_expiry(ok):
    ok("tenants", "create", "acme", "--json")
    created = ok("keys", "create", "--tenant", "acme", "--expires", "2030-01-01T00:00:00Z",
                 "--name", "ci", "--json")
    assert created["name"] == "ci"
    assert created["expires_at"].startswith("2030-01-01T00:00:00")


def test_an_already_expired_key_is_created_with_a_warning_and_listed_expired(ok, run_cli):
    ok("tenants", "create", "acme", "--json")
    result = run_cli("keys", "create", "--tenant", "acme", "--expires", "2020-01-01T00:00:00Z",
                     "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: --expires 2020-01-01T00:00:00+00:00 is in the "
                                    "past: the key is created expired")
    expired = orjson.loads(result.stdout)["id"]
    later = run_cli("keys", "create", "--tenant", "acme", "--expires", "2999-01-01T00:00:00Z",
                    "--json")
    assert later.exit_code == 0 and later.stderr == ""
    active = orjson.loads(later.stdout)["id"]
    states = dict(line.split("\t")[::4] for line in ok("keys", "list").splitlines())
    assert states == {expired: "expired", active: "active"}


def test_keys_create_requires_tenant(run_cli):
    result = run_cli("keys", "create", "--json")
    assert result.exit_code == 2
    assert "--tenant" in result.stderr


# -- fx -----------------------------------------------------------------------------------------


def test_fx_set_and_list(ok):
    assert ok("fx", "list", "--json") == []
    added = ok("fx", "set", "USD", "CNY", "7.1", "--json")
    assert (added["base"], added["quote"], added["rate"]) == ("USD", "CNY", "7.1")
    listed = ok("fx", "list", "--json")
    assert [(r["base"], r["quote"], r["rate"], r["effective_from"]) for r in listed] == [
        ("USD", "CNY", "7.1", added["effective_from"])]


def test_fx_set_keeps_exact_rate_and_history(ok):
    ok("fx", "set", "USD", "CNY", "7.123456789012", "--from", "2020-01-01", "--json")
    ok("fx", "set", "usd", "cny", "7.2", "--from", "2025-06-01T00:00:00Z", "--json")
    listed = ok("fx", "list", "--json")
    got = sorted((r["effective_from"][:10], r["base"], r["quote"], r["rate"]) for r in listed)
    assert got == [("2020-01-01", "USD", "CNY", "7.123456789012"),
                   ("2025-06-01", "USD", "CNY", "7.2")]


def test_fx_set_text_output(ok):
    out = ok("fx", "set", "EUR", "USD", "1.08", "--from", "2024-01-01")
    assert "1 EUR = 1.08 USD" in out


@pytest.mark.parametrize("rate", ["0", "-1", "abc", "-0.5"])
def test_fx_set_bad_rate(run_cli, ok, fails, rate):
    fails(run_cli("fx", "set", "USD", "CNY", rate), 2, "rate")
    assert ok("fx", "list", "--json") == []


def test_fx_set_bad_currencies(run_cli, ok, fails):
    fails(run_cli("fx", "set", "USD", "USD", "1"), 2, "differ")
    fails(run_cli("fx", "set", "XXQ", "CNY", "7"), 2, "XXQ")
    assert ok("fx", "list", "--json") == []


def test_fx_set_same_moment_twice(run_cli, ok, fails):
    ok("fx", "set", "USD", "CNY", "7.1", "--from", "2024-01-01", "--json")
    fails(run_cli("fx", "set", "USD", "CNY", "7.3", "--from", "2024-01-01"), 1, "USD->CNY")
    assert [r["rate"] for r in ok("fx", "list", "--json")] == ["7.1"]


def test_fx_set_bad_from(run_cli, fails):
    fails(run_cli("fx", "set", "USD", "CNY", "7.1", "--from", "soon"), 2, "--from")


def test_fx_set_takes_effective_from_like_prices_add(run_cli, ok, fails):
    ok("fx", "set", "USD", "CNY", "7.1", "--effective-from", "2020-01-01", "--json")
    ok("fx", "set", "USD", "CNY", "7.2", "--from", "2021-01-01", "--json")  # the old name
    assert [r["effective_from"][:10] for r in ok("fx", "list", "--json")] == [
        "2020-01-01", "2021-01-01"]
    help_text = ok("fx", "set", "--help")
    assert "--effective-from" in help_text and "--from" not in help_text.replace(
        "--effective-from", "")
    fails(run_cli("fx", "set", "USD", "CNY", "7.3", "--from", "2022-01-01",
                  "--effective-from", "2022-01-01"), 2, "--from", "--effective-from")
    fails(run_cli("fx", "set", "USD", "CNY", "7.3", "--effective-from", "soon"), 2,
          "--effective-from")
