"""The audit log from the command line (issue 12.11): what the CLI changes is recorded with actor
``cli`` (one request id per run), and ``meterline audit list`` reads the log back, filtered and
paged. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.cli.conftest import M1_ADD, Fails, Ok


def test_cli_actions_are_logged_as_cli_and_listed(
        ok: Ok, run_cli: Callable[..., Result], tmp_path: Path,
        write_jsonl: Callable[[Path, list[Any]], Path]) -> None:
    ok("tenants", "create", "acme")
    key = ok("keys", "create", "--tenant", "acme", "--user", "ann", "--json")
    ok("keys", "revoke", key["id"])
    ok(*M1_ADD)
    ok("fx", "set", "USD", "CNY", "7.1")
    budget = ok("budgets", "set", "--tenant", "acme", "--amount", "10", "--json")
    ok("budgets", "delete", budget["id"])
    ok("quota", "grant", "--tenant", "acme", "--type", "image", "--amount", "3")
    ok("plans", "set", "basic", "--allow", "image=10")
    ok("plans", "subscribe", "--tenant", "acme", "--plan", "basic")
    events = write_jsonl(tmp_path / "calls.jsonl", [
        {"id": "e1", "timestamp": "2026-10-05T10:00:00Z", "model": "test/m1",
         "usage": {"input_tokens": 1000, "output_tokens": 10}}])
    ok("usage", "ingest", str(events), "--tenant", "acme")
    request_id = ok("usage", "list", "--tenant", "acme", "--json")[0]["request_id"]
    ok("refund", request_id, "--reason", "test")
    ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--issue")
    ok("bill", "--tenant", "acme", "--cycle", "2026-10", "--pay")
    ok("bill", "--tenant", "acme", "--cycle", "2026-11", "--void")
    token = ok("admin-tokens", "create", "ops", "--json")
    ok("admin-tokens", "create", "spare")  # the last active token cannot be revoked
    ok("admin-tokens", "revoke", "ops")

    entries = ok("audit", "list", "--json")
    assert [e["action"] for e in reversed(entries)] == [
        "tenant.create", "key.create", "key.revoke", "price.set", "fx.set", "budget.create",
        "budget.delete", "quota.grant", "plan.set", "plan.subscribe", "usage.ingest",
        "usage.refund", "bill.issue", "bill.pay", "bill.void", "admin_token.create",
        "admin_token.create", "admin_token.revoke"]
    assert {e["actor"] for e in entries} == {"cli"}
    # one request id per run of the command
    request_ids = [e["request_id"] for e in entries]
    assert all(r and r.startswith("req_") for r in request_ids)
    assert len(set(request_ids)) == len(entries)
    by = {e["action"]: e for e in entries}
    assert by["key.create"]["target"] == key["id"] and by["key.create"]["tenant"] == "acme"
    assert by["usage.ingest"]["details"]["recorded"] == 1
    assert by["usage.refund"]["target"] == request_id
    assert by["bill.void"]["target"] == "acme/2026-11"
    assert by["admin_token.create"]["details"] == {"name": "ops"}
    everything = run_cli("audit", "list", "--json").stdout
    for secret in (key["key"], token["token"]):
        assert secret not in everything

    text = ok("audit", "list", "--action", "bill")
    lines = text.splitlines()
    assert [line.split("\t")[3] for line in lines] == ["bill.void", "bill.pay", "bill.issue"]
    assert lines[0].split("\t")[2:6] == ["cli", "bill.void", "acme", "acme/2026-11"]
    assert [e["action"] for e in ok("audit", "list", "--tenant", "acme", "--action", "key",
                                    "--json")] == ["key.revoke", "key.create"]
    assert ok("audit", "list", "--actor", "alice", "--json") == []
    assert ok("audit", "list", "--since", "2999-01-01", "--json") == []
    assert len(ok("audit", "list", "--until", "2999-01-01", "--json")) == len(entries)

    # pages: the next one is named on stderr
    first = run_cli("audit", "list", "--limit", "10", "--json")
    assert first.exit_code == 0
    assert f"--before {entries[9]['id']}" in first.stderr
    rest = ok("audit", "list", "--before", str(entries[9]["id"]), "--json")
    assert rest == entries[10:]


def test_listing_refuses_bad_filters(ok: Ok, run_cli: Callable[..., Result],
                                     fails: Fails) -> None:
    assert "--since" in ok("audit", "list", "--help")
    assert "list" in ok("audit", "--help")
    fails(run_cli("audit", "list", "--since", "last week"), 2, "since")
    fails(run_cli("audit", "list", "--since", "2026-12-02", "--until", "2026-12-01"), 2,
          "until")
    fails(run_cli("audit", "list", "--action", "Bill Issue"), 2, "action")
    fails(run_cli("audit", "list", "--tenant", "nobody"), 1, "nobody")
    refused = run_cli("audit", "list", "--limit", "0")
    assert refused.exit_code == 2 and "--limit" in refused.stderr
