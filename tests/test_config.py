"""Config from TOML and the environment; secrets never print themselves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.api.app import create_app
from meterline.config import load_config
from meterline.errors import InvalidInput

TOML = """
admin_token = "adm-secret"
[database]
url = "sqlite:///./x.db"
[gateway]
journal_dir = "/tmp/j"
key_cache_seconds = 2.5
[ingest]
concurrency = 3
[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1/"
api_key_env = "UPSTREAM_KEY"
timeout_seconds = 30
allow_unknown_models = true
"""


def test_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "meterline.toml"
    path.write_text(TOML)
    config = load_config(path, env={"UPSTREAM_KEY": "sk-upstream",
                                    "METERLINE_DATABASE_URL": "sqlite:///./y.db"})
    assert config.database_url == "sqlite:///./y.db"  # the environment wins
    assert (config.journal_dir, config.key_cache_seconds) == ("/tmp/j", 2.5)
    assert config.ingest_concurrency == 3
    assert load_config(path, env={"METERLINE_INGEST_CONCURRENCY": "1"}).ingest_concurrency == 1
    [provider] = config.providers
    assert (provider.base_url, provider.timeout_seconds, provider.allow_unknown_models) == (
        "http://127.0.0.1:9/v1", 30.0, True)
    assert provider.api_key is not None and provider.api_key.reveal() == "sk-upstream"
    assert "sk-upstream" not in repr(config) and "adm-secret" not in repr(config)


@pytest.mark.parametrize(("snippet", "field"), [
    ("[gateway]\nkey_cache_seconds = 0", "gateway.key_cache_seconds"),
    ("[gateway]\nkey_cache_seconds = 'soon'", "gateway.key_cache_seconds"),
    ("[[providers]]\nname = 'x'\nkind = 'grpc'\nbase_url = 'http://h'", "providers[0].kind"),
    ("[[providers]]\nname = 'x'\nkind = 'openai'", "providers[0].base_url"),
    ("reporting_currency = 'XYZ'", "reporting_currency"),
    ("[ingest]\nconcurrency = -1", "ingest.concurrency"),
    ("[ingest]\nconcurrency = 1.5", "ingest.concurrency"),
])
def test_bad_config_names_the_field(tmp_path: Path, snippet: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(snippet)
    with pytest.raises(InvalidInput) as raised:
        load_config(path, env={})
    assert raised.value.field == field


def test_ingest_concurrency_defaults_to_the_cores_each_worker_has(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cores = os.cpu_count() or 1
    for workers, configured, expected in ((1, 0, cores), (cores * 2, 0, 1), (2, 5, 5)):
        config = load_config(env={}, database_url=url, journal_dir=str(tmp_path / "j"),
                             ingest_concurrency=configured)
        app = create_app(config, workers=workers)
        assert app.state.meterline.ingest_limiter.total_tokens == expected
        app.state.meterline.engine.dispose()


def _readme_config() -> str:
    """The TOML block of the README's configuration section, as a user would copy it."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1]
    return block.split("```", 1)[0]


def test_the_readme_sample_is_read_once_its_token_is_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "meterline.toml"
    path.write_text(_readme_config().replace('admin_token = "…"', 'admin_token = "adm-1"')
                    .replace('metrics_token = "…"', 'metrics_token = "scrape-1"'),
                    encoding="utf-8")
    config = load_config(path, env={})
    assert config.admin_token is not None and config.admin_token.reveal() == "adm-1"
    assert config.metrics_token is not None and config.metrics_token.reveal() == "scrape-1"
    assert [(p.name, p.wire) for p in config.providers] == [("openai", "openai"),
                                                            ("azure", "openai")]
    assert config.providers[1].api_version == "2024-10-21"
    assert config.limits.redis_url == "redis://127.0.0.1:6379/0"


def test_a_non_ascii_admin_token_is_refused_at_start(tmp_path: Path) -> None:
    """The README's placeholder, taken literally, was accepted and then failed every login
    with a 500 (an HTTP cookie cannot carry it)."""
    path = tmp_path / "meterline.toml"
    path.write_text(_readme_config(), encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        load_config(path, env={})
    assert raised.value.field == "admin_token"
    assert "admin_token must be printable ASCII" in raised.value.message
    with pytest.raises(InvalidInput) as raised:
        load_config(env={"METERLINE_ADMIN_TOKEN": "two words"})
    assert "METERLINE_ADMIN_TOKEN must be printable ASCII" in raised.value.message
    assert "two words" not in raised.value.message  # a secret is never echoed


@pytest.mark.parametrize(("snippet", "field", "named"), [
    ("[databse]\nurl = 'sqlite:///./x.db'", "databse", "[databse]"),
    ("admin_tokn = 'x'", "admin_tokn", "admin_tokn"),
    ("[limits]\nhold_second = 60", "limits.hold_second", "limits.hold_second"),
    ("[gateway]\njournal = '/tmp/j'", "gateway.journal", "gateway.journal"),
    ("[[providers]]\nname = 'x'\nbase_url = 'http://h'\napi_key = 'sk-1'",
     "providers[0].api_key", "providers[0].api_key"),
    ("[[routes]]\nmodel = 'fast'\ntarget = 'a/b'\nweight = 2", "routes[0].weight",
     "routes[0].weight"),
    ("[[alerts.webhooks]]\nurl = 'https://h'\nsecret = 's'", "alerts.webhooks[0].secret",
     "alerts.webhooks[0].secret"),
])
def test_unknown_settings_are_refused_by_name(tmp_path: Path, snippet: str, field: str,
                                              named: str) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(snippet)
    with pytest.raises(InvalidInput) as raised:
        load_config(path, env={})
    assert raised.value.field == field
    assert f"unknown setting {named} " in raised.value.message
    assert "known" in raised.value.message


@pytest.mark.parametrize(("setting", "records_unpriced"), [
    ("", False),
    ('unknown_models = "refuse"', False),
    ('unknown_models = "record_unpriced"', True),
    ("allow_unknown_models = true", True),
])
def test_unknown_models_policy(tmp_path: Path, setting: str, records_unpriced: bool) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[[providers]]\nname = 'p'\nbase_url = 'http://h'\n{setting}\n")
    [provider] = load_config(path, env={}).providers
    assert provider.allow_unknown_models is records_unpriced


def test_unknown_models_policy_must_be_known(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[[providers]]\nname = 'p'\nbase_url = 'http://h'\nunknown_models = 'allow'\n")
    with pytest.raises(InvalidInput, match=r"providers\[0\]\.unknown_models must be one of "
                                           r"refuse, record_unpriced"):
        load_config(path, env={})


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


_VALUES = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=10),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.lists(st.integers(-5, 5), max_size=3))
_SECTIONS = st.sampled_from(["", "database", "gateway", "ingest", "limits", "sync", "alerts",
                             "nonsense"])
_KEYS = st.sampled_from(["url", "journal_dir", "key_cache_seconds", "concurrency",
                         "hold_seconds", "lease_calls", "redis_url", "at", "timezone",
                         "admin_token", "log_format", "reporting_currency", "typo"])


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(_SECTIONS, st.dictionaries(_KEYS, _VALUES, max_size=4), max_size=4))
def test_any_config_file_is_read_or_refused_as_bad_input(
        tmp_path_factory: pytest.TempPathFactory, sections: dict[str, dict[str, object]]) -> None:
    text = "".join(("" if name == "" else f"[{name}]\n")
                   + "".join(f"{k} = {_toml_value(v)}\n" for k, v in items.items())
                   for name, items in sorted(sections.items()))
    path = tmp_path_factory.mktemp("config") / "meterline.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, env={})
    except InvalidInput as exc:
        assert exc.message
