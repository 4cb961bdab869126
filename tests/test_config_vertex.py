"""Config of the providers that authenticate with OAuth tokens: Vertex AI (``kind = "vertex"``:
project, location, a service account key file named by ``credentials_env``) and Azure OpenAI
with Entra ID (``entra_*``). A bad setting or key file is an InvalidInput naming the setting."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meterline.config import ENTRA_AUTHORITY, ProviderConfig, Secret, load_config
from meterline.errors import InvalidInput
from tests.service_accounts import service_account

TOKEN_URI = "http://127.0.0.1:9/token"


def provider(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> ProviderConfig:
    config = tmp_path / "meterline.toml"
    config.write_text('[[providers]]\nname = "p"\n' + body)
    (found,) = load_config(config, env=env or {}).providers
    return found


def refused(tmp_path: Path, body: str, field: str, match: str,
            env: dict[str, str] | None = None) -> None:
    with pytest.raises(InvalidInput, match=match) as caught:
        provider(tmp_path, body, env)
    assert caught.value.context["field"] == f"providers[0].{field}"


VERTEX = 'kind = "vertex"\nproject = "proj-1"\nlocation = "us-central1"\ncredentials_env = "SA"\n'


def test_a_vertex_provider(tmp_path: Path) -> None:
    account = service_account(tmp_path, TOKEN_URI)
    found = provider(tmp_path, VERTEX, {"SA": str(account.path)})
    assert found.vertex is not None and found.api_key is None
    assert (found.kind, found.wire, found.base_url) == (
        "vertex", "gemini", "https://us-central1-aiplatform.googleapis.com")
    assert (found.vertex.project, found.vertex.location, found.vertex.credentials_env) == (
        "proj-1", "us-central1", "SA")
    assert isinstance(found.vertex.service_account, Secret)
    assert json.loads(found.vertex.service_account.reveal())["client_email"] == account.email
    assert "PRIVATE KEY" not in repr(found)
    # The global endpoint, a base URL of one's own, and a variable left unset.
    other = provider(tmp_path, VERTEX.replace("us-central1", "global")
                     + 'base_url = "http://127.0.0.1:8/"\n')
    assert other.base_url == "http://127.0.0.1:8" and other.vertex is not None
    assert other.vertex.service_account is None
    assert provider(tmp_path, VERTEX.replace("us-central1", "global")).base_url == \
        "https://aiplatform.googleapis.com"


def test_a_vertex_provider_serves_anthropic_models_in_their_wire_format() -> None:
    vertex = ProviderConfig("v", "vertex", "http://h")
    assert (vertex.wire, replace(vertex, publisher="anthropic").wire,
            replace(vertex, publisher="google").wire) == ("gemini", "anthropic", "gemini")


@pytest.mark.parametrize(("body", "field", "match"), [
    (VERTEX.replace('project = "proj-1"\n', ""), "project", "project is missing"),
    (VERTEX.replace('location = "us-central1"\n', ""), "location", "location is missing"),
    (VERTEX.replace("us-central1", "us central1"), "location", "Vertex AI location"),
    (VERTEX.replace('credentials_env = "SA"\n', ""), "credentials_env", "credentials_env is"),
    (VERTEX + 'api_key_env = "KEY"\n', "api_key_env", "service account"),
    ('kind = "gemini"\nbase_url = "http://h"\nproject = "p"\n', "project",
     'for kind = "vertex"'),
    ('kind = "openai"\nbase_url = "http://h"\nentra_client_id = "c"\n', "entra_client_id",
     'for kind = "azure"'),
])
def test_vertex_settings_refused(tmp_path: Path, body: str, field: str, match: str) -> None:
    refused(tmp_path, body, field, match)


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_a_bad_service_account_file_is_named(tmp_path: Path) -> None:
    good = json.loads(service_account(tmp_path, TOKEN_URI).path.read_text())
    cases = {
        str(tmp_path / "missing.json"): "cannot be read",
        write(tmp_path, "text.json", "not json"): "is not JSON",
        write(tmp_path, "user.json", {**good, "type": "authorized_user"}): "not a service "
                                                                             "account",
        write(tmp_path, "partial.json", {k: v for k, v in good.items()
                                         if k != "client_email"}): "lacks client_email",
        write(tmp_path, "badkey.json", {**good, "private_key": "-----BEGIN PRIVATE KEY-----\n"
                                        "AAAA\n-----END PRIVATE KEY-----\n"}): "private key",
    }
    for path, match in cases.items():
        with pytest.raises(InvalidInput, match=match) as caught:
            provider(tmp_path, VERTEX, {"SA": path})
        assert caught.value.context["field"] == "providers[0].credentials_env"
        assert f"SA={path}" in caught.value.message


ENTRA = ('kind = "azure"\nbase_url = "https://r.openai.azure.com"\n'
         'entra_tenant_id = "t"\nentra_client_id = "c"\nentra_client_secret_env = "SECRET"\n')


def test_an_azure_provider_with_entra_id(tmp_path: Path) -> None:
    found = provider(tmp_path, ENTRA, {"SECRET": "s3cret"})
    assert found.entra is not None and found.api_key is None and found.wire == "openai"
    assert (found.entra.tenant_id, found.entra.client_id, found.entra.authority) == (
        "t", "c", ENTRA_AUTHORITY)
    assert found.entra.client_secret == Secret("s3cret") and "s3cret" not in repr(found)
    assert found.entra.token_url == f"{ENTRA_AUTHORITY}/t/oauth2/v2.0/token"
    loopback = provider(tmp_path, ENTRA + 'entra_authority = "http://127.0.0.1:7/"\n')
    assert loopback.entra is not None and loopback.entra.client_secret is None
    assert loopback.entra.token_url == "http://127.0.0.1:7/t/oauth2/v2.0/token"


@pytest.mark.parametrize(("body", "field", "match"), [
    (ENTRA + 'api_key_env = "KEY"\n', "api_key_env", "both given"),
    (ENTRA.replace('entra_client_id = "c"\n', ""), "entra_client_id",
     "entra_client_id is missing"),
    ('kind = "azure"\nbase_url = "http://h"\nentra_tenant_id = "t"\n', "entra_client_id",
     "Entra ID needs"),
    (ENTRA + 'entra_authority = "http://login.example.com"\n', "entra_authority", "https://"),
    (ENTRA + 'entra_authority = "http://127.0.0.1.example.com"\n', "entra_authority",
     "https://"),
])
def test_entra_settings_refused(tmp_path: Path, body: str, field: str, match: str) -> None:
    refused(tmp_path, body, field, match)
