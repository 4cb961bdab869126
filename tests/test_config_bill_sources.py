"""[[bill_sources]] (meterline/config/bill_sources.py): the provider accounts ``meterline sync
--provider`` fetches, with their credentials read from the environment variables they name."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meterline.config import load_config
from meterline.errors import InvalidInput

TOML = """
[[bill_sources]]
provider = "aliyun"
access_key_id_env = "ALI_ID"
access_key_secret_env = "ALI_SECRET"
endpoint = "http://127.0.0.1:9/"
low_balance = "100.5"
requests_per_second = 2

[[bill_sources]]
provider = "openai"
account = "prod"
name = "openai-prod"
currency = "usd"
api_key_env = "OPENAI_ADMIN_KEY"
"""


def test_entries_and_their_credentials(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(TOML)
    config = load_config(path, env={"ALI_ID": "LTAI-id", "ALI_SECRET": "ali-secret",
                                    "OPENAI_ADMIN_KEY": "sk-admin-1"})
    aliyun, openai = config.bill_sources
    assert (aliyun.provider, aliyun.account, aliyun.endpoint, aliyun.requests_per_second) == (
        "aliyun", "aliyun", "http://127.0.0.1:9", 2.0)
    assert aliyun.low_balance == Decimal("100.5") and aliyun.timeout_seconds == 60.0
    assert aliyun.access_key_secret is not None
    assert aliyun.access_key_secret.reveal() == "ali-secret"
    assert aliyun.credential_env == {"access_key_id": "ALI_ID",
                                     "access_key_secret": "ALI_SECRET"}
    assert (openai.account, openai.name, openai.currency, openai.endpoint) == (
        "prod", "openai-prod", "USD", None)
    assert openai.api_key is not None and openai.api_key.reveal() == "sk-admin-1"
    assert "ali-secret" not in repr(config) and "sk-admin-1" not in repr(config)
    # an unset variable leaves the credential None: refused, by name, only when synced
    unset = load_config(path, env={})
    assert unset.bill_sources[0].access_key_id is None


@pytest.mark.parametrize(("snippet", "field"), [
    ("provider = 'azure'\napi_key_env = 'K'", "bill_sources[0].provider"),
    ("provider = 'tencent'\naccess_key_id_env = 'I'", "bill_sources[0].access_key_secret_env"),
    ("provider = 'deepseek'", "bill_sources[0].api_key_env"),
    ("provider = 'deepseek'\napi_key_env = 'K'\nendpoint = 'ftp://x'",
     "bill_sources[0].endpoint"),
    ("provider = 'deepseek'\napi_key_env = 'K'\nlow_balance = 1.5",
     "bill_sources[0].low_balance"),
    ("provider = 'deepseek'\napi_key_env = 'K'\nrequests_per_second = 0",
     "bill_sources[0].requests_per_second"),
    ("provider = 'deepseek'\napi_key_env = 'K'\napi_key = 'sk-1'", "bill_sources[0].api_key"),
    ("provider = 'deepseek'\napi_key_env = 'K'\n[[bill_sources]]\nprovider = 'deepseek'\n"
     "api_key_env = 'L'", "bill_sources[1].account"),
])
def test_bad_entries_name_the_field(tmp_path: Path, snippet: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[[bill_sources]]\n{snippet}\n")
    with pytest.raises(InvalidInput) as raised:
        load_config(path, env={"K": "sk-secret-value"})
    assert raised.value.field == field
    assert "sk-secret-value" not in raised.value.message
