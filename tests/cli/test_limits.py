"""``meterline budgets …``, ``alerts …``, ``quota …`` and ``plans …`` (meterline/cli/limits.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


@pytest.fixture
def acme(ok):
    ok("tenants", "create", "acme", "--json")
    ok("fx", "set", "CNY", "USD", "0.14")
    return ok("keys", "create", "--tenant", "acme", "--rpm", "60", "--tpm", "5000", "--json")


def test_budgets_set_then_change_then_list(ok, acme):
    made = ok("budgets", "set", "--tenant", "acme", "--amount", "10", "--period", "day",
              "--json")
    assert (made["scope"], made["amount"], made["currency"], made["mode"]) == (
        "tenant acme · day", "10", "USD", "block")
    assert made["thresholds"] == ["0.5", "0.8", "1"] and made["spent"] == "0"
    changed = ok("budgets", "set", "--tenant", "acme", "--amount", "12.5", "--period", "day",
                 "--mode", "alert", "--thresholds", "0.9", "--json")
    assert changed["id"] == made["id"] and changed["amount"] == "12.5"
    key_budget = ok("budgets", "set", "--key", acme["id"], "--amount", "1", "--json")
    assert key_budget["tenant"] == "acme" and key_budget["period"] == "month"
    listed = ok("budgets", "list", "--json")
    assert [(b["id"], b["mode"], b["thresholds"]) for b in listed] == [
        (made["id"], "alert", ["0.9"]), (key_budget["id"], "block", ["0.5", "0.8", "1"])]
    assert made["id"] in ok("budgets", "list")
    assert ok("budgets", "delete", made["id"]).strip() == f"budget {made['id']} deleted"
    assert [b["id"] for b in ok("budgets", "list", "--json")] == [key_budget["id"]]


@pytest.mark.parametrize("args, needle", [
    (("--amount", "0"), "amount must be greater than zero"),
    (("--amount", "ten"), "amount"),
    (("--amount", "5", "--thresholds", "0.5,2"), "(0, 1]"),
    (("--amount", "5", "--currency", "EUR"), "needs an FX rate"),
    (("--amount", "5", "--user", "bob"), "needs its tenant"),
])
def test_bad_budgets_fail_cleanly(run_cli, fails, acme, args, needle):
    fails(run_cli("budgets", "set", *args), 2, needle)


def test_budget_for_unknown_tenant_or_key(run_cli, fails, acme):
    fails(run_cli("budgets", "set", "--tenant", "nope", "--amount", "5"), 1, "nope")
    fails(run_cli("budgets", "set", "--key", "key_nope", "--amount", "5"), 1, "key_nope")


def test_usage_crossing_thresholds_alerts_once_and_resolves(ok, acme, tmp_path):
    ok("prices", "add", "--model", "test/m1", "--currency", "USD", "--unit", "1",
       "--input", "0.001", "--output", "0", "--effective-from", "2020-01-01")
    ok("budgets", "set", "--tenant", "acme", "--amount", "1", "--period", "total",
       "--mode", "alert", "--json")
    now = datetime.now(UTC).isoformat()
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(
        f'{{"id": "e{n}", "timestamp": "{now}", "model": "test/m1", '
        f'"usage": {{"input_tokens": 300}}}}' for n in range(4)))
    ok("usage", "ingest", str(events), "--tenant", "acme")
    spent = ok("budgets", "list", "--json")[0]
    assert spent["spent"] == "1.2" and spent["remaining"] == "0"
    found = ok("alerts", "list", "--json")
    assert sorted((a["threshold"], a["level"]) for a in found) == [
        ("0.5", "info"), ("0.8", "warning"), ("1", "critical")]
    ok("usage", "ingest", str(events), "--tenant", "acme")  # duplicates: nothing new
    assert len(ok("alerts", "list", "--json")) == 3
    first = found[0]["id"]
    assert ok("alerts", "resolve", first).strip() == "1 alert(s) resolved"
    assert first not in [a["id"] for a in ok("alerts", "list", "--open", "--json")]


def test_alerts_resolve_unknown_id(run_cli, fails, acme):
    fails(run_cli("alerts", "resolve", "alr_nope"), 1, "alr_nope")


def test_plans_quota_grant_and_show(ok, acme):
    ok("plans", "set", "starter", "--allow", "text_token=1000", "--allow", "image=5")
    assert ok("plans", "list", "--json") == [
        {"id": "starter", "allowances": {"image": 5, "text_token": 1000}}]
    ok("plans", "subscribe", "--tenant", "acme", "--plan", "starter")
    grant = ok("quota", "grant", "--tenant", "acme", "--type", "text_token", "--amount", "500",
               "--bonus", "50", "--source", "package", "--ref", "order-1", "--json")
    assert grant["credited"] == 550
    shown = ok("quota", "show", "--tenant", "acme", "--json")
    assert shown["types"]["text_token"]["by_source"] == {"plan": 1000, "package": 550,
                                                         "admin_grant": 0}
    assert shown["types"]["image"]["available"] == 5
    assert [e["kind"] for e in shown["history"]] == ["grant", "grant", "grant"]
    assert "text_token\tavailable 1550" in ok("quota", "show", "--tenant", "acme")


@pytest.mark.parametrize("args, needle", [
    (("--type", "text_token", "--amount", "0"), "amount"),
    (("--type", "text_token", "--amount", "-5"), "amount"),
    (("--type", "text_token", "--amount", "1.5"), "amount"),
    (("--type", "image", "--amount", "5", "--bonus", "1"), "bonus"),
])
def test_bad_grants_fail_cleanly(run_cli, fails, acme, args, needle):
    fails(run_cli("quota", "grant", "--tenant", "acme", *args), 2, needle)


def test_plans_set_refuses_bad_allowances(run_cli, fails, acme):
    fails(run_cli("plans", "set", "p", "--allow", "tokens=5"), 2, "allowances")
    fails(run_cli("plans", "set", "p", "--allow", "text_token"), 2, "TYPE=UNITS")


def test_keys_carry_rate_limits(acme):
    assert (acme["rpm"], acme["tpm"]) == (60, 5000)
