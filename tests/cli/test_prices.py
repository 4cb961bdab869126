"""``meterline prices …``, ``quote`` and ``rerate`` (meterline/cli/prices.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

# -- prices list --------------------------------------------------------------------------------


def test_prices_list_shows_the_shipped_catalog(ok):
    versions = ok("prices", "list", "--json")
    assert len(versions) >= 60
    ids = [v["id"] for v in versions]
    assert len(set(ids)) == len(ids)
    providers = {v["model"].split("/", 1)[0] for v in versions}
    assert {"openai", "anthropic", "deepseek", "qwen"} <= providers
    for v in versions:
        assert "/" in v["model"]
        assert v["currency"] in ("USD", "CNY")
        assert v["prices"], v
        for price in v["prices"].values():
            assert isinstance(price, str)  # money as strings
            assert Decimal(price) >= 0


def test_prices_list_one_model_and_one_provider(ok, m1):
    [version] = ok("prices", "list", "--model", m1, "--json")
    assert version["model"] == "test/m1"
    assert version["currency"] == "USD"
    assert version["effective_from"].startswith("2020-01-01T00:00:00")
    assert version["prices"] == {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}

    anthropic = ok("prices", "list", "--provider", "anthropic", "--json")
    assert anthropic
    assert all(v["model"].startswith("anthropic/") for v in anthropic)
    assert [v["model"] for v in ok("prices", "list", "--provider", "test", "--json")] == [
        "test/m1"]


def test_prices_list_text(ok, m1):
    out = ok("prices", "list", "--model", m1)
    [line] = out.splitlines()
    assert line.startswith("test/m1\t2020-01-01\tUSD\t")
    assert "0.0000005" in line and "0.0000015" in line


def test_prices_list_unknown_model_names_close_ones(run_cli, m1, fails):
    fails(run_cli("prices", "list", "--model", "test/m2", "--json"), 1, "test/m2", "test/m1")


# -- prices add ---------------------------------------------------------------------------------


def test_prices_add_twice_at_the_same_moment_is_refused(run_cli, ok, m1, fails):
    result = run_cli("prices", "add", "--model", m1, "--currency", "USD", "--unit", "1",
                     "--input", "0.000001", "--effective-from", "2020-01-01")
    fails(result, 1, "test/m1", "2020-01-01")
    [version] = ok("prices", "list", "--model", m1, "--json")
    assert version["prices"]["input_tokens"] == "0.0000005"  # never rewritten


def test_prices_add_later_version_keeps_history(ok, m1):
    ok("prices", "add", "--model", m1, "--currency", "USD", "--input", "2", "--output", "4",
       "--effective-from", "2024-01-01T00:00:00Z", "--json")
    versions = ok("prices", "list", "--model", m1, "--json")
    assert [v["effective_from"][:10] for v in versions] == ["2020-01-01", "2024-01-01"]

    def cost(at):
        return ok("quote", "--model", m1, "--input-tokens", "1000", "--output-tokens", "500",
                  "--at", at, "--json")["cost"]

    assert cost("2023-12-31T23:59:59Z") == "0.00125"
    assert cost("2024-01-01T00:00:00Z") == "0.004"  # 1000×2/1M + 500×4/1M, inclusive start


def test_prices_add_one_hour_cache_writes(ok):
    ok("prices", "add", "--model", "test/cached", "--currency", "USD", "--input", "3",
       "--cache-write", "3.75", "--cache-write-1h", "6", "--output", "15",
       "--effective-from", "2024-01-01", "--json")
    [version] = ok("prices", "list", "--model", "test/cached", "--json")
    assert version["prices"] == {"input_tokens": "3", "cache_write_tokens": "3.75",
                                 "cache_write_1h_tokens": "6", "output_tokens": "15"}


def test_prices_add_per_one_meters(ok):
    """--unit is for tokens and characters; an image, a second or a request is priced per one."""
    ok("prices", "add", "--model", "test/img", "--currency", "USD", "--images", "0.04",
       "--effective-from", "2024-01-01", "--json")
    ok("prices", "add", "--model", "test/vid", "--currency", "USD", "--seconds", "0.1",
       "--effective-from", "2024-01-01", "--json")
    ok("prices", "add", "--model", "test/tts", "--currency", "USD", "--characters", "15",
       "--effective-from", "2024-01-01", "--json")
    assert ok("quote", "--model", "test/img", "--images", "3", "--json")["cost"] == "0.12"
    assert ok("quote", "--model", "test/vid", "--seconds", "2.5", "--json")["cost"] == "0.25"
    assert ok("quote", "--model", "test/tts", "--characters", "1000", "--json")["cost"] == "0.015"


def test_prices_add_from_file(ok, tmp_path):
    path = tmp_path / "version.json"
    path.write_text(orjson.dumps({
        "currency": "CNY", "unit": "1M", "effective_from": "2024-05-01",
        "prices": {"input_tokens": "0.8", "output_tokens": "2"}}).decode())
    ok("prices", "add", "--model", "test/cny", "--currency", "CNY", "--file", str(path),
       "--json")
    quoted = ok("quote", "--model", "test/cny", "--input-tokens", "1000000",
                "--output-tokens", "1000", "--json")
    assert (quoted["cost"], quoted["currency"]) == ("0.802", "CNY")


@pytest.mark.parametrize(("args", "needles"), [
    (("--input", "abc"), ("input_tokens", "abc")),
    (("--input", "-1"), ("input_tokens", "negative")),
    ((), ("price",)),
    (("--input", "1", "--effective-from", "tomorrow"), ("--effective-from",)),
])
def test_prices_add_bad_input(run_cli, ok, fails, args, needles):
    fails(run_cli("prices", "add", "--model", "test/x", "--currency", "USD", *args), 2,
          *needles)
    assert ok("prices", "list", "--provider", "test", "--json") == []


def test_prices_add_bad_model_and_currency(run_cli, ok, fails):
    fails(run_cli("prices", "add", "--model", "nomodel", "--currency", "USD", "--input", "1"),
          2, "model", "provider/model")
    fails(run_cli("prices", "add", "--model", "test/x", "--currency", "XXQ", "--input", "1"),
          2, "currency", "XXQ")
    assert ok("prices", "list", "--provider", "test", "--json") == []


# -- quote --------------------------------------------------------------------------------------


def test_quote(ok, m1):
    quoted = ok("quote", "--model", m1, "--input-tokens", "1000", "--output-tokens", "500",
                "--json")
    assert quoted["model"] == "test/m1"
    assert quoted["cost"] == "0.00125"
    assert quoted["currency"] == "USD"
    assert quoted["price_version"]
    lines = {line["meter"]: line for line in quoted["lines"]}
    assert set(lines) == {"input_tokens", "output_tokens"}
    assert lines["input_tokens"]["quantity"] == "1000"
    assert lines["input_tokens"]["unit_price"] == "0.0000005"
    assert lines["input_tokens"]["amount"] == "0.0005"
    assert lines["output_tokens"]["amount"] == "0.00075"
    assert sum(Decimal(line["amount"]) for line in quoted["lines"]) == Decimal(quoted["cost"])


def test_quote_text(ok, m1):
    out = ok("quote", "--model", m1, "--input-tokens", "1000", "--output-tokens", "500")
    assert "total 0.00125" in out
    assert "1000 × 0.0000005/token = 0.0005" in out  # plain notation, never 5E-7
    assert "500 × 0.0000015/token = 0.00075" in out


def test_quote_records_nothing(ok, m1):
    ok("tenants", "create", "acme", "--json")
    ok("quote", "--model", m1, "--input-tokens", "1000", "--json")
    assert ok("usage", "list", "--json") == []


def test_quote_before_the_first_version(run_cli, m1, fails):
    fails(run_cli("quote", "--model", m1, "--input-tokens", "1000", "--at", "2019-12-31",
                  "--json"), 1, "test/m1", "2020-01-01")


def test_quote_unknown_model_names_close_models(run_cli, m1, fails):
    fails(run_cli("quote", "--model", "test/m2", "--input-tokens", "1000", "--json"), 1,
          "test/m2", "test/m1")


@pytest.mark.parametrize("option", ["--input-tokens", "--output-tokens", "--images",
                                    "--cached-input-tokens", "--characters"])
def test_quote_negative_quantity(run_cli, m1, option):
    result = run_cli("quote", "--model", m1, option, "-1", "--json")
    assert result.exit_code == 2
    assert option in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "needle"), [
    (("--seconds", "abc"), "seconds"),
    (("--seconds", "-1"), "seconds"),
    (("--seconds", "NaN"), "seconds"),
    (("--at", "yesterday"), "--at"),
    (("--attribute", "size"), "--attribute"),
])
def test_quote_bad_input(run_cli, m1, fails, args, needle):
    fails(run_cli("quote", "--model", m1, "--input-tokens", "1", *args, "--json"), 2, needle)


# -- prices import ------------------------------------------------------------------------------

LITELLM = {
    "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "one of the providers"},
    "cli-test-mini": {"litellm_provider": "openai", "mode": "chat",
                      "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07},
    "clitest/big": {"litellm_provider": "clitest", "mode": "chat",
                    "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                    "cache_read_input_token_cost": 3e-07},
}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(orjson.dumps(data).decode())
    return str(path)


def test_prices_import_litellm_is_exact(ok, tmp_path):
    before = len(ok("prices", "list", "--json"))
    summary = ok("prices", "import", _write(tmp_path, "litellm.json", LITELLM), "--format",
                 "litellm", "--json")
    assert summary["added"] == 2
    assert len(ok("prices", "list", "--json")) == before + 2

    def cost(model, **usage):
        args = [f"--{k.replace('_', '-')}" for k in usage]
        flat = [x for pair in zip(args, map(str, usage.values()), strict=True) for x in pair]
        return ok("quote", "--model", model, *flat, "--json")["cost"]

    assert cost("openai/cli-test-mini", input_tokens=1000) == "0.00015"
    assert cost("openai/cli-test-mini", output_tokens=1000) == "0.0006"
    assert cost("openai/cli-test-mini", input_tokens=1, output_tokens=1) == "0.00000075"
    assert cost("clitest/big", input_tokens=1_000_000, output_tokens=1_000_000) == "18"
    assert cost("clitest/big", input_tokens=1000, cached_input_tokens=1000) == "0.0003"
    [version] = ok("prices", "list", "--model", "openai/cli-test-mini", "--json")
    assert version["currency"] == "USD"


def test_prices_import_bad_row_imports_nothing(run_cli, ok, fails, tmp_path):
    bad = {**LITELLM,
           "cli-test-broken": {"litellm_provider": "openai", "mode": "chat",
                               "input_cost_per_token": 1e-07,
                               "output_cost_per_token": -6e-07}}
    before = ok("prices", "list", "--json")
    fails(run_cli("prices", "import", _write(tmp_path, "bad.json", bad), "--format", "litellm",
                  "--json"), 2, "cli-test-broken", "output_cost_per_token")
    assert ok("prices", "list", "--json") == before
    fails(run_cli("prices", "list", "--model", "openai/cli-test-mini"), 1, "cli-test-mini")


def test_prices_import_not_a_number(run_cli, ok, fails, tmp_path):
    bad = {**LITELLM,
           "cli-test-text": {"litellm_provider": "openai", "input_cost_per_token": "cheap"}}
    before = ok("prices", "list", "--json")
    fails(run_cli("prices", "import", _write(tmp_path, "bad.json", bad)), 2,
          "cli-test-text", "input_cost_per_token")
    assert ok("prices", "list", "--json") == before


def test_prices_import_unreadable_files(run_cli, fails, tmp_path):
    fails(run_cli("prices", "import", str(tmp_path / "missing.json")), 2, "missing.json")
    junk = tmp_path / "junk.json"
    junk.write_text("this is not json")
    fails(run_cli("prices", "import", str(junk)), 2, "JSON")


def test_prices_import_meterline_format(ok, tmp_path):
    document = {"provider": "clitest", "models": [{
        "model": "cat", "currency": "CNY", "unit": "1K", "effective_from": "2024-01-01",
        "prices": {"input_tokens": "0.0008", "output_tokens": "0.002"}}]}
    summary = ok("prices", "import", _write(tmp_path, "cat.json", document), "--format",
                 "meterline", "--json")
    assert summary["added"] == 1
    again = ok("prices", "import", _write(tmp_path, "cat.json", document), "--format",
               "meterline", "--json")
    assert (again["added"], again["already_present"]) == (0, 1)
    quoted = ok("quote", "--model", "clitest/cat", "--input-tokens", "1500", "--output-tokens",
                "10", "--json")
    assert (quoted["cost"], quoted["currency"]) == ("0.00122", "CNY")


# -- prices update ------------------------------------------------------------------------------


def test_prices_update_adds_a_version_now_and_keeps_the_past(ok, m1, tmp_path):
    # The operator's own price file (meterline's format): the operator's layer moves on.
    changed = [{"model": "test/m1", "currency": "USD", "unit": "1M",
                "prices": {"input_tokens": "1", "output_tokens": "1.5"}}]
    started = datetime.now(UTC)
    result = ok("prices", "update", "--from", _write(tmp_path, "new.json", changed), "--json")
    assert (result["layer"], result["changed_models"]) == ("operator", ["test/m1"])
    assert result["added_versions"] == 1

    versions = ok("prices", "list", "--model", m1, "--json")
    assert len(versions) == 2
    old, new = versions
    assert old["effective_from"].startswith("2020-01-01")
    assert old["prices"] == {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}
    assert datetime.fromisoformat(new["effective_from"]) >= started  # now, not back-dated
    assert new["prices"] == {"input_tokens": "1", "output_tokens": "1.5"}  # per 1M tokens
    assert {v["layer"] for v in versions} == {"operator"}

    def cost(*at):
        return ok("quote", "--model", m1, "--input-tokens", "1000", "--output-tokens", "500",
                  *at, "--json")["cost"]

    assert cost() == "0.00175"
    assert cost("--at", "2025-06-01T00:00:00Z") == "0.00125"

    # the same file again changes nothing
    again = ok("prices", "update", "--from", _write(tmp_path, "new.json", changed), "--json")
    assert (again["added_versions"], again["unchanged"]) == (0, 1)
    assert len(ok("prices", "list", "--model", m1, "--json")) == 2


def test_a_litellm_update_never_overrides_a_higher_layer(ok, m1, tmp_path):
    stale = {"m1": {"litellm_provider": "test", "mode": "chat",
                    "input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06},
             "deepseek-chat": {"litellm_provider": "deepseek", "mode": "chat",
                               "input_cost_per_token": 1.4e-06, "output_cost_per_token": 2.8e-06}}
    curated_before = ok("quote", "--model", "deepseek/deepseek-chat", "--input-tokens", "1000",
                        "--json")
    result = ok("prices", "update", "--from", _write(tmp_path, "stale.json", stale), "--json")
    assert result["layer"] == "litellm"
    assert sorted(result["new_models"]) == ["deepseek/deepseek-chat", "test/m1"]
    listed = ok("prices", "list", "--model", m1, "--json")
    assert [v["layer"] for v in listed] == ["operator", "litellm"]
    # The operator's m1 and the curated deepseek-chat still price every call.
    assert ok("quote", "--model", m1, "--input-tokens", "1000", "--json")["cost"] == "0.0005"
    assert ok("quote", "--model", "deepseek/deepseek-chat", "--input-tokens", "1000",
              "--json") == curated_before
    [row] = ok("prices", "sources", "--model", m1, "--json")
    assert row["priced_by"] == ["operator USD"]
    assert row["disagree"] is True
    assert [(layer["layer"], layer["in_force"], layer["agrees"]) for layer in row["layers"]] == [
        ("operator", True, True), ("litellm", False, False)]
    text = ok("prices", "sources", "--model", m1)
    assert "priced by operator USD" in text and "layers DISAGREE" in text


def test_prices_update_reads_the_installed_genai_prices(ok, tmp_path):
    dry = ok("prices", "update", "--dry-run", "--json")
    assert dry["layer"] == "genai-prices" and dry["dry_run"] is True
    assert dry["source"].startswith("genai-prices ") and dry["source"].endswith("(installed)")
    # Start already translated the installed package: nothing is new, nothing changed.
    assert (dry["added_versions"], dry["new_models"], dry["changed_models"]) == (0, [], [])
    assert dry["unchanged"] > 2000
    assert any(model.startswith("mistral/mistral-ocr") for model in
               (s.split(":")[0] for s in dry["skipped"]))
    assert "web_searches_kcount" in dry["not_modelled"]["openai/gpt-5"]
    gpt5 = ok("prices", "sources", "--model", "gpt-5", "--json")
    assert gpt5[0]["model"] == "openai/gpt-5"


def test_prices_update_from_genai_data_json_dry_run_writes_nothing(ok, tmp_path):
    data = [{"id": "acmeai", "name": "Acme AI", "api_pattern": "x", "models": [
        {"id": "acme-1", "match": {"starts_with": "acme-1"},
         "prices": {"input_mtok": 0.25, "output_mtok": 1.25}}]}]
    path = _write(tmp_path, "data.json", data)
    dry = ok("prices", "update", "--from", path, "--dry-run", "--json")
    assert (dry["layer"], dry["new_models"], dry["added_versions"]) == (
        "genai-prices", ["acmeai/acme-1"], 1)
    assert dry["versions"][0]["prices"] == {"input_tokens": "0.25", "output_tokens": "1.25"}
    listed = ok("prices", "list", "--provider", "acmeai", "--json")
    assert listed == []
    done = ok("prices", "update", "--from", path, "--json")
    assert done["added_versions"] == 1
    # Its name rule came with it: a dated snapshot resolves.
    quoted = ok("quote", "--model", "acmeai/acme-1-20261201", "--input-tokens", "4000", "--json")
    assert quoted["cost"] == "0.001"
    assert quoted["price_version"] == "acmeai/acme-1@1970-01-01T00:00:00+00:00#genai-prices"


def test_prices_update_same_prices_in_another_unit_is_unchanged(ok, m1, tmp_path):
    same = [{"model": "test/m1", "currency": "USD", "unit": "1M",
             "prices": {"input_tokens": "0.5", "output_tokens": "1.5"}},
            {"model": "test/fresh", "currency": "USD", "unit": "1M",
             "prices": {"input_tokens": "1"}}]
    result = ok("prices", "update", "--from", _write(tmp_path, "same.json", same), "--json")
    assert result["unchanged"] == 1
    assert result["new_models"] == ["test/fresh"]
    assert result["changed_models"] == []
    assert len(ok("prices", "list", "--model", m1, "--json")) == 1
    assert ok("quote", "--model", "test/fresh", "--input-tokens", "1000", "--json")["cost"] == (
        "0.001")


def test_prices_update_bad_files(run_cli, ok, m1, fails, tmp_path):
    bad = {"m1": {"litellm_provider": "test", "input_cost_per_token": -1e-06}}
    fails(run_cli("prices", "update", "--from", _write(tmp_path, "bad.json", bad)), 2,
          "m1", "input_cost_per_token")
    fails(run_cli("prices", "update", "--from", str(tmp_path / "nope.json")), 2, "nope.json")
    assert len(ok("prices", "list", "--model", m1, "--json")) == 1


# -- rerate -------------------------------------------------------------------------------------


def _rerate(ok):
    done = ok("rerate", "--json")
    return done["priced"], done["still_unpriced"]


def test_rerate_prices_unpriced_records(ok, write_jsonl, tmp_path):
    ok("tenants", "create", "acme", "--json")
    events = [
        {"id": "u-1", "timestamp": "2026-11-01T10:00:00Z", "model": "newprov/new-model",
         "usage": {"input_tokens": 1000, "output_tokens": 200}},
        {"id": "u-2", "timestamp": "2026-11-01T11:00:00Z", "model": "newprov/still-unknown",
         "usage": {"input_tokens": 5}},
    ]
    summary = ok("usage", "ingest", str(write_jsonl(tmp_path / "u.jsonl", events)), "--tenant",
                 "acme", "--json")
    assert (summary["recorded"], summary["unpriced"]) == (2, 2)
    records = {r["id"]: r for r in ok("usage", "list", "--tenant", "acme", "--json")}
    assert records["u-1"]["cost"] is None
    assert records["u-1"]["pricing"] == "unpriced"
    assert "newprov/new-model" in records["u-1"]["warning"]

    assert _rerate(ok) == (0, 2)
    ok("prices", "add", "--model", "newprov/new-model", "--currency", "USD", "--input", "2",
       "--output", "8", "--effective-from", "2026-01-01", "--json")
    assert _rerate(ok) == (1, 1)

    records = {r["id"]: r for r in ok("usage", "list", "--tenant", "acme", "--json")}
    assert records["u-1"]["cost"] == "0.0036"  # 1000×2/1M + 200×8/1M
    assert records["u-1"]["currency"] == "USD"
    assert records["u-1"]["pricing"] == "priced"
    assert records["u-2"]["cost"] is None
    # a second run prices nothing twice
    assert _rerate(ok) == (0, 1)
    records = {r["id"]: r for r in ok("usage", "list", "--tenant", "acme", "--json")}
    assert records["u-1"]["cost"] == "0.0036"


def test_rerate_record_before_the_first_price(ok, write_jsonl, tmp_path):
    """A known model with no price at the call's time is unpriced until an earlier one exists."""
    ok("tenants", "create", "acme", "--json")
    ok(*("prices", "add", "--model", "test/late", "--currency", "USD", "--input", "1",
         "--effective-from", "2026-06-01"))
    events = [{"id": "early", "timestamp": "2026-01-15T00:00:00Z", "model": "test/late",
               "usage": {"input_tokens": 1000}}]
    ok("usage", "ingest", str(write_jsonl(tmp_path / "e.jsonl", events)), "--tenant", "acme")
    assert ok("usage", "list", "--json")[0]["cost"] is None
    ok("prices", "add", "--model", "test/late", "--currency", "USD", "--input", "3",
       "--effective-from", "2026-01-01")
    out = ok("rerate")
    assert "1 records priced, 0 still without a price" in out
    assert ok("usage", "list", "--json")[0]["cost"] == "0.003"


def test_rerate_converts_records_stored_without_an_fx_rate(ok, m1, write_jsonl, tmp_path):
    ok("tenants", "create", "shop", "--currency", "CNY", "--json")
    event = {"id": "cn-1", "timestamp": "2026-11-01T10:00:00Z", "model": m1,
             "usage": {"input_tokens": 1000, "output_tokens": 500}}
    ok("usage", "ingest", str(write_jsonl(tmp_path / "e.jsonl", [event])), "--tenant", "shop")
    [record] = ok("usage", "list", "--json")
    assert (record["cost"], record["currency"]) == ("0.00125", "USD")
    assert record["fx_missing"] is True
    assert record["billed_cost"] is None

    ok("fx", "set", "USD", "CNY", "7.1", "--from", "2026-01-01", "--json")
    done = ok("rerate", "--json")
    assert (done["converted"], done["still_fx_missing"]) == (1, 0)
    [record] = ok("usage", "list", "--json")
    assert (record["billed_cost"], record["billed_currency"]) == ("0.008875", "CNY")
    assert record["fx_rate"] == "7.1"
    assert record["fx_missing"] is False
    assert ok("rerate", "--json")["converted"] == 0
