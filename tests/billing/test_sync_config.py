"""The ``[sync]`` section of the config file: the daily sync's time, timezone and sources, and
the reconciliation tolerance alerts use; every bad value refused naming its setting."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.config import SyncConfig, load_config
from meterline.errors import InvalidInput

SOURCES = """
[[bill_sources]]
provider = "aliyun"
access_key_id_env = "A"
access_key_secret_env = "B"

[[bill_sources]]
provider = "openai"
account = "research"
api_key_env = "C"

[[bill_sources]]
provider = "openai"
account = "prod"
api_key_env = "D"
"""


def _load(tmp_path: Path, sync: str) -> SyncConfig:
    path = tmp_path / "meterline.toml"
    path.write_text(SOURCES + "\n[sync]\n" + sync, encoding="utf-8")
    return load_config(path, env={}).sync


def test_the_defaults_and_a_full_section(tmp_path: Path) -> None:
    assert load_config(None, env={}).sync == SyncConfig()
    assert SyncConfig().at is None  # no daily sync unless asked for
    found = _load(tmp_path, 'at = "06:30"\ntimezone = "Asia/Shanghai"\n'
                            'sources = ["aliyun", "openai:prod"]\ntolerance = "0.05"\n')
    assert found == SyncConfig(at=time(6, 30), timezone="Asia/Shanghai",
                               sources=("aliyun", "openai:prod"), tolerance=Decimal("0.05"))
    config = load_config(tmp_path / "meterline.toml", env={})
    assert [(s.provider, s.account) for s in found.selected(config.bill_sources)] == [
        ("aliyun", "aliyun"), ("openai", "prod")]
    assert len(SyncConfig().selected(config.bill_sources)) == 3
    assert _load(tmp_path, "at = 23:59:00\n").at == time(23, 59)  # a TOML time


@pytest.mark.parametrize(("setting", "field", "needle"), [
    ('at = "6am"', "sync.at", "HH:MM"),
    ('at = "24:00"', "sync.at", "HH:MM"),
    ("at = 6", "sync.at", "HH:MM"),
    ('timezone = "Mars/Olympus"', "sync.timezone", "unknown timezone"),
    ('sources = ["tencent"]', "sync.sources", "no [[bill_sources]] entry"),
    ('sources = "aliyun"', "sync.sources", "a list"),
    ('tolerance = "2"', "sync.tolerance", "from 0 to 1"),
    ('when = "06:00"', "sync.when", "unknown setting"),
])
def test_bad_settings_are_refused_by_name(tmp_path: Path, setting: str, field: str,
                                          needle: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        _load(tmp_path, setting + "\n")
    assert raised.value.field == field and needle in raised.value.message
