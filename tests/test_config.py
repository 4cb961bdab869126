"""Config from TOML and the environment; secrets never print themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
