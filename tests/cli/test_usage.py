"""``meterline usage ingest|list`` (meterline/cli/usage.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

IN, OUT = Decimal("0.0000005"), Decimal("0.0000015")  # test/m1, per token


def _events(count, *, prefix="evt", model="test/m1"):
    start = datetime(2026, 10, 1, tzinfo=UTC)
    return [
        {"id": f"{prefix}-{i}", "timestamp": (start + timedelta(minutes=7 * i)).isoformat(),
         "user": f"user-{i % 3}", "model": model,
         "usage": {"input_tokens": 100 + i, "output_tokens": i % 50},
         "status": "success" if i % 10 else "error", "metadata": {"n": i}}
        for i in range(count)
    ]


def _expected_cost(event):
    usage = event["usage"]
    return usage["input_tokens"] * IN + usage["output_tokens"] * OUT


def _ledger(ok, tenant="acme"):
    return ok("usage", "list", "--tenant", tenant, "--limit", "100000", "--json")


@pytest.fixture
def acme(ok, m1):
    ok("tenants", "create", "acme", "--json")
    return "acme"


def test_ingest_a_large_file_once_and_only_once(ok, acme, write_jsonl, tmp_path):
    events = _events(2500)
    path = str(write_jsonl(tmp_path / "usage.jsonl", events))
    expected_total = sum((_expected_cost(e) for e in events), Decimal(0))

    first = ok("usage", "ingest", path, "--tenant", acme, "--json")
    assert first == {"events": 2500, "recorded": 2500, "duplicates": 0, "unpriced": 0,
                     "fx_missing": 0, "refused": 0}
    records = _ledger(ok)
    assert len(records) == 2500
    assert sum(Decimal(r["cost"]) for r in records) == expected_total
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {e["id"] for e in events}
    for event in (events[0], events[1], events[1234], events[-1]):
        record = by_id[event["id"]]
        assert Decimal(record["cost"]) == _expected_cost(event)
        assert record["currency"] == "USD"
        assert record["user"] == event["user"]
        assert record["status"] == event["status"]
    assert len({r["request_id"] for r in records}) == 2500

    second = ok("usage", "ingest", path, "--tenant", acme, "--json")
    assert second == {"events": 2500, "recorded": 0, "duplicates": 2500, "unpriced": 0,
                      "fx_missing": 0, "refused": 0}
    again = _ledger(ok)
    assert len(again) == 2500
    assert sum(Decimal(r["cost"]) for r in again) == expected_total
    assert {r["request_id"] for r in again} == {r["request_id"] for r in records}


def test_ingest_overlapping_files(ok, acme, write_jsonl, tmp_path):
    events = _events(20)
    ok("usage", "ingest", str(write_jsonl(tmp_path / "a.jsonl", events[:12])), "--tenant",
       acme, "--json")
    out = ok("usage", "ingest", str(write_jsonl(tmp_path / "b.jsonl", events[8:])), "--tenant",
             acme)
    assert "8 recorded" in out and "4 duplicates" in out
    records = _ledger(ok)
    assert len(records) == 20
    assert sum(Decimal(r["cost"]) for r in records) == sum(
        (_expected_cost(e) for e in events), Decimal(0))


def test_ingest_same_ids_for_two_tenants_are_separate(ok, acme, write_jsonl, tmp_path):
    ok("tenants", "create", "beta", "--json")
    path = str(write_jsonl(tmp_path / "e.jsonl", _events(5)))
    assert ok("usage", "ingest", path, "--tenant", acme, "--json")["recorded"] == 5
    assert ok("usage", "ingest", path, "--tenant", "beta", "--json")["recorded"] == 5
    assert len(_ledger(ok, "acme")) == len(_ledger(ok, "beta")) == 5


def test_ingest_skips_blank_lines(ok, acme, tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text('\n{"id": "a", "model": "test/m1", "usage": {"input_tokens": 2}}\n\n  \n'
                    '{"id": "b", "model": "test/m1", "usage": {"output_tokens": 2}}\n')
    assert ok("usage", "ingest", str(path), "--tenant", acme, "--json")["recorded"] == 2
    assert sorted(r["cost"] for r in _ledger(ok)) == ["0.000001", "0.000003"]


def test_ingest_negative_tokens_writes_nothing(run_cli, ok, acme, fails, write_jsonl,
                                               tmp_path):
    events = _events(10)
    events[6]["usage"]["output_tokens"] = -3  # line 7
    path = write_jsonl(tmp_path / "bad.jsonl", events)
    line = fails(run_cli("usage", "ingest", str(path), "--tenant", acme, "--json"), 2,
                 "output_tokens", "negative")
    assert ":7:" in line
    assert _ledger(ok) == []


def test_ingest_invalid_json_writes_nothing(run_cli, ok, acme, fails, write_jsonl, tmp_path):
    path = write_jsonl(tmp_path / "broken.jsonl", _events(10))
    lines = path.read_text().splitlines()
    lines[6] = lines[6][:-5]  # line 7 cut short
    path.write_text("\n".join(lines) + "\n")
    line = fails(run_cli("usage", "ingest", str(path), "--tenant", acme), 2, "JSON")
    assert ":7:" in line
    assert _ledger(ok) == []


@pytest.mark.parametrize(("change", "field"), [
    ({"id": ""}, "id"),
    ({"model": None}, "model"),
    ({"timestamp": "last tuesday"}, "timestamp"),
    ({"status": "great"}, "status"),
    ({"usage": {"input_tokens": "many"}}, "input_tokens"),
    ({"usage": {"widgets": 3}}, "widgets"),
])
def test_ingest_bad_field_names_line_and_field(run_cli, ok, acme, fails, write_jsonl, tmp_path,
                                               change, field):
    events = _events(5)
    events[2] = {k: v for k, v in {**events[2], **change}.items() if v is not None}
    path = write_jsonl(tmp_path / "bad.jsonl", events)
    line = fails(run_cli("usage", "ingest", str(path), "--tenant", acme), 2, field)
    assert ":3:" in line
    assert _ledger(ok) == []


def test_ingest_duplicate_ids_in_the_file(run_cli, ok, acme, fails, write_jsonl, tmp_path):
    events = _events(10)
    events[8]["id"] = events[2]["id"]
    path = write_jsonl(tmp_path / "dup.jsonl", events)
    line = fails(run_cli("usage", "ingest", str(path), "--tenant", acme), 2, "evt-2")
    assert ":9:" in line and "line 3" in line
    assert _ledger(ok) == []


def test_ingest_unknown_tenant(run_cli, ok, m1, fails, write_jsonl, tmp_path):
    ok("tenants", "create", "acme", "--json")
    path = write_jsonl(tmp_path / "e.jsonl", _events(3))
    fails(run_cli("usage", "ingest", str(path), "--tenant", "ghost", "--json"), 1, "ghost")
    assert ok("usage", "list", "--json") == []


def test_ingest_missing_file(run_cli, acme, fails, tmp_path):
    fails(run_cli("usage", "ingest", str(tmp_path / "nope.jsonl"), "--tenant", acme), 2,
          "nope.jsonl")


def test_ingest_unknown_model_is_recorded_unpriced(ok, acme, write_jsonl, tmp_path):
    events = _events(3)
    events[1]["model"] = "nowhere/model-x"
    summary = ok("usage", "ingest", str(write_jsonl(tmp_path / "e.jsonl", events)), "--tenant",
                 acme, "--json")
    assert summary == {"events": 3, "recorded": 3, "duplicates": 0, "unpriced": 1,
                       "fx_missing": 0, "refused": 0}
    record = {r["id"]: r for r in _ledger(ok)}["evt-1"]
    assert record["cost"] is None
    assert record["status"] == "success"
    assert record["model"] == "nowhere/model-x"


def test_ingest_converts_to_the_tenant_currency(ok, m1, write_jsonl, tmp_path):
    ok("tenants", "create", "shop", "--currency", "CNY", "--json")
    ok("fx", "set", "USD", "CNY", "7.1", "--from", "2026-01-01", "--json")
    event = {"id": "cn-1", "timestamp": "2026-11-01T10:00:00Z", "model": "test/m1",
             "usage": {"input_tokens": 1000, "output_tokens": 500}}
    ok("usage", "ingest", str(write_jsonl(tmp_path / "e.jsonl", [event])), "--tenant", "shop")
    [record] = _ledger(ok, "shop")
    assert (record["cost"], record["currency"]) == ("0.00125", "USD")
    assert (record["billed_cost"], record["billed_currency"]) == ("0.008875", "CNY")
    assert record["fx_rate"] == "7.1"


def test_ingest_lists_every_bad_line_then_refuses_the_file(run_cli, ok, acme, write_jsonl,
                                                          tmp_path):
    events = _events(10)
    events[1]["usage"]["output_tokens"] = -3                      # line 2
    events[4]["usage"] = {"input_tokens": 1e26}                   # line 5
    events[6]["id"] = events[0]["id"]                             # line 7
    events[8]["usgae"] = events[8].pop("usage")                   # line 9
    path = write_jsonl(tmp_path / "bad.jsonl", events)
    lines = path.read_text().splitlines()
    lines[9] = lines[9][:-5]                                      # line 10 cut short
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("usage", "ingest", str(path), "--tenant", acme, "--json")
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    *listed, last = result.stderr.strip().splitlines()
    assert len(listed) == 5, listed
    assert listed[1:4] == [
        f"{path}:5: usage.input_tokens: too large, must be below 1,000,000,000,000,000, "
        "got 1e+26",
        f"{path}:7: id 'evt-0' already used on line 1",
        f"{path}:9: usgae: unknown field; expected id, timestamp, user, model, usage, status, "
        "metadata, tags, attributes (anything else goes in metadata)",
    ]
    assert listed[0].startswith(f"{path}:2: usage.output_tokens: must not be negative")
    assert listed[4].startswith(f"{path}:10: not valid JSON")
    assert last == f"error: {path}: 5 bad lines (listed above); nothing was recorded"
    assert _ledger(ok) == []


def test_ingest_lists_at_most_fifty_bad_lines(run_cli, ok, acme, write_jsonl, tmp_path):
    events = _events(80)
    for event in events:
        event["usage"]["input_tokens"] = -1
    result = run_cli("usage", "ingest", str(write_jsonl(tmp_path / "bad.jsonl", events)),
                     "--tenant", acme)
    assert result.exit_code == 2, result.output
    *listed, last = result.stderr.strip().splitlines()
    assert len(listed) == 50 and listed[-1].startswith(f"{tmp_path / 'bad.jsonl'}:50: ")
    assert last.endswith("80 bad lines (the first 50 listed above); nothing was recorded")


def test_ingest_summary_counts_records_without_an_fx_rate(run_cli, ok, m1, write_jsonl,
                                                          tmp_path):
    ok("tenants", "create", "shop", "--currency", "CNY", "--json")
    events = [{"id": f"cn-{i}", "timestamp": "2026-11-01T10:00:00Z", "model": "test/m1",
               "usage": {"input_tokens": 1000}} for i in range(3)]
    path = str(write_jsonl(tmp_path / "e.jsonl", events))
    summary = ok("usage", "ingest", path, "--tenant", "shop", "--json")
    assert (summary["recorded"], summary["fx_missing"]) == (3, 3)
    ok("fx", "set", "USD", "CNY", "7.1", "--effective-from", "2026-01-01")
    more = [*({**e, "id": f"cn-later-{i}"} for i, e in enumerate(events)),
            {**events[0], "id": "cn-early", "timestamp": "2025-12-31T10:00:00Z"}]
    result = run_cli("usage", "ingest", str(write_jsonl(tmp_path / "f.jsonl", more)),
                     "--tenant", "shop")
    assert result.exit_code == 0, result.output
    assert "4 recorded (0 unpriced, 1 without an FX rate)" in result.stdout
    assert "meterline rerate" in result.stderr


def test_list_of_an_unknown_tenant_is_an_error(run_cli, history, fails):
    fails(run_cli("usage", "list", "--tenant", "nope", "--json"), 1, "unknown tenant 'nope'")


# -- usage list ---------------------------------------------------------------------------------


@pytest.fixture
def history(ok, acme, write_jsonl, tmp_path):
    """Two tenants; acme has 6 calls on 2026-10-01..06 at noon, alice and bob alternating."""
    ok("tenants", "create", "beta", "--json")
    events = [{"id": f"d{day}", "timestamp": f"2026-10-0{day}T12:00:00Z",
               "user": "alice" if day % 2 else "bob", "model": "test/m1",
               "usage": {"input_tokens": 1000 * day}} for day in range(1, 7)]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "acme.jsonl", events)), "--tenant", acme)
    other = [{"id": "b1", "timestamp": "2026-10-03T12:00:00Z", "user": "alice",
              "model": "test/m1", "usage": {"output_tokens": 10}}]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "beta.jsonl", other)), "--tenant", "beta")
    return events


def _ids(ok, *args):
    return [r["id"] for r in ok("usage", "list", *args, "--json")]


def test_list_record_shape(ok, history):
    records = ok("usage", "list", "--tenant", "acme", "--json")
    assert len(records) == 6
    for record in records:
        for field in ("request_id", "model", "status", "cost", "currency"):
            assert field in record, field
        assert record["model"] == "test/m1"
        assert record["status"] == "success"
        assert record["currency"] == "USD"
        assert isinstance(record["cost"], str)
    newest = records[0]
    assert newest["id"] == "d6"
    assert newest["cost"] == "0.003"  # 6000 × 0.0000005
    assert newest["tenant"] == "acme"
    assert newest["user"] == "bob"
    assert newest["timestamp"].startswith("2026-10-06T12:00:00")


def test_list_filters(ok, history):
    assert _ids(ok, "--tenant", "acme") == ["d6", "d5", "d4", "d3", "d2", "d1"]  # newest first
    assert _ids(ok, "--tenant", "beta") == ["b1"]
    assert sorted(_ids(ok)) == ["b1", "d1", "d2", "d3", "d4", "d5", "d6"]
    assert _ids(ok, "--tenant", "acme", "--user", "alice") == ["d5", "d3", "d1"]
    assert sorted(_ids(ok, "--user", "alice")) == ["b1", "d1", "d3", "d5"]
    assert _ids(ok, "--tenant", "acme", "--since", "2026-10-03") == ["d6", "d5", "d4", "d3"]
    assert _ids(ok, "--tenant", "acme", "--until", "2026-10-03") == ["d2", "d1"]
    assert _ids(ok, "--tenant", "acme", "--since", "2026-10-02", "--until", "2026-10-05") == [
        "d4", "d3", "d2"]
    # offsets are converted: 21:00+08:00 is 13:00Z, an hour after each call
    assert _ids(ok, "--tenant", "acme", "--since", "2026-10-03T21:00:00+08:00",
                "--until", "2026-10-04T21:00:00+08:00") == ["d4"]
    assert _ids(ok, "--tenant", "acme", "--limit", "2") == ["d6", "d5"]
    assert _ids(ok, "--tenant", "acme", "--since", "2027-01-01") == []


def test_list_since_is_inclusive_until_exclusive(ok, history):
    """A call at exactly the boundary belongs to the later period, on both backends (SQLite
    stores times as text: a whole-second time must be stored as queries bind it)."""
    assert _ids(ok, "--tenant", "acme", "--since", "2026-10-03T12:00:00Z") == ["d6", "d5", "d4",
                                                                               "d3"]
    assert _ids(ok, "--tenant", "acme", "--until", "2026-10-03T12:00:00Z") == ["d2", "d1"]
    assert _ids(ok, "--tenant", "acme", "--since", "2026-10-03T12:00:00Z",
                "--until", "2026-10-04T12:00:00Z") == ["d3"]


def test_list_text(ok, history):
    out = ok("usage", "list", "--tenant", "acme", "--limit", "1")
    [line] = out.splitlines()
    assert "test/m1" in line and "0.003 USD" in line and "success" in line


def test_list_until_before_since(run_cli, history, fails):
    fails(run_cli("usage", "list", "--since", "2026-10-05", "--until", "2026-10-01", "--json"),
          2, "--until", "--since")


@pytest.mark.parametrize(("args", "needle"), [
    (("--since", "yesterday"), "--since"),
    (("--until", "2026-13-01"), "--until"),
])
def test_list_bad_times(run_cli, history, fails, args, needle):
    fails(run_cli("usage", "list", *args, "--json"), 2, needle)


@pytest.mark.parametrize("limit", ["0", "-1", "100001", "many"])
def test_list_bad_limit(run_cli, limit):
    result = run_cli("usage", "list", "--limit", limit, "--json")
    assert result.exit_code == 2
    assert "--limit" in result.stderr
    assert result.stdout == ""
