"""``[[providers]]``: the upstreams the gateway calls, their wire format (``kind``), keys, and
the cloud identities of Vertex AI and Azure OpenAI with Entra ID (docs/providers.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meterline.config.parsing import Secret, check_known
from meterline.domain.money import currency_code
from meterline.errors import InvalidInput

PROVIDER_KINDS = ("openai", "anthropic", "gemini", "azure", "vertex")


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str
    api_key: Secret | None = None
    timeout_seconds: float = 600.0
    #: Serve models the price catalog does not know (recorded as unpriced until priced).
    allow_unknown_models: bool = False
    #: Azure OpenAI: the ``api-version`` of the deployments API; none: Azure's v1 API.
    api_version: str | None = None
    #: Where the provider's answers carry the call's own cost, as a dotted path from the
    #: answer's (or stream event's) top; "" when they carry none (docs/providers.md).
    cost_field: str = "usage.cost"
    #: The currency of that cost; None: the currency of meterline's price of the call.
    cost_currency: str | None = None
    #: Vertex AI: the project, location and service account calls are made with.
    vertex: VertexAccount | None = None
    #: Azure OpenAI authenticated with Entra ID (a bearer token) instead of ``api-key``.
    entra: EntraApp | None = None
    #: Vertex AI: the publisher of the model a call names ("google", "anthropic"), set per
    #: call by the router; it decides the wire format (None: the provider as configured).
    publisher: str | None = None

    @property
    def cost_path(self) -> tuple[str, ...]:
        return tuple(self.cost_field.split(".")) if self.cost_field else ()

    @property
    def wire(self) -> str:
        """The wire format the provider speaks (Azure OpenAI speaks OpenAI's; Vertex AI
        Gemini's, or Anthropic's for Anthropic's models)."""
        if self.kind == "vertex":
            return "anthropic" if self.publisher == "anthropic" else "gemini"
        return "openai" if self.kind == "azure" else self.kind


#: The OAuth scope of Vertex AI's tokens, and of Azure OpenAI's (Cognitive Services).
VERTEX_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
#: A Vertex AI location goes into a host name: "us-central1", "europe-west4", "global".
_LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class VertexAccount:
    """``kind = "vertex"``: where calls are made, and the service account (a JSON key file
    named by ``credentials_env``) whose OAuth tokens authorise them."""

    project: str
    location: str
    credentials_env: str
    #: The key file's JSON, read and checked at load; None when the variable is unset (calls
    #: then fail, saying so, as with an unset ``api_key_env``).
    service_account: Secret | None = None

    @property
    def default_base_url(self) -> str:
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"


@dataclass(frozen=True)
class EntraApp:
    """An Entra ID application (client credentials) whose tokens authorise Azure OpenAI."""

    tenant_id: str
    client_id: str
    client_secret_env: str
    #: None when the variable is unset (calls then fail, saying so).
    client_secret: Secret | None = None
    authority: str = ENTRA_AUTHORITY

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"


def parse_providers(raw: object, env: Mapping[str, str]) -> tuple[ProviderConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: providers must be an array of tables", field="providers")
    out = []
    for index, item in enumerate(raw):
        where = f"providers[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"config: {where} must be a table", field=where)
        check_known(item, "providers", where)
        name, kind, base = item.get("name"), item.get("kind", "openai"), item.get("base_url")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"config: {where}.name is missing", field=f"{where}.name")
        if kind not in PROVIDER_KINDS:
            raise InvalidInput(f"config: {where}.kind must be one of {', '.join(PROVIDER_KINDS)}",
                               field=f"{where}.kind")
        vertex, entra = _cloud_auth(item, where, kind, env)
        if vertex is not None and base is None:
            base = vertex.default_base_url
        if not isinstance(base, str) or not base:
            raise InvalidInput(f"config: {where}.base_url is missing", field=f"{where}.base_url")
        key_env = item.get("api_key_env")
        key = env.get(key_env) if isinstance(key_env, str) else None
        timeout = item.get("timeout_seconds", 600)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInput(f"config: {where}.timeout_seconds must be positive",
                               field=f"{where}.timeout_seconds")
        version = item.get("api_version")
        if version is not None and (kind != "azure" or not isinstance(version, str)
                                    or not version):
            raise InvalidInput(f"config: {where}.api_version is for kind = \"azure\" (a "
                               "string such as \"2024-10-21\")", field=f"{where}.api_version")
        out.append(ProviderConfig(name, kind, base.rstrip("/"), Secret(key) if key else None,
                                  float(timeout), _unknown_models(item, where), version,
                                  *_cost_source(item, where), vertex=vertex, entra=entra))
    return tuple(out)


_VERTEX_SETTINGS = ("project", "location", "credentials_env")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ENTRA_SETTINGS = ("entra_tenant_id", "entra_client_id", "entra_client_secret_env")


def _setting(item: Mapping[str, Any], name: str, where: str, why: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"config: {where}.{name} is missing ({why})", field=f"{where}.{name}")
    return value.strip()


def _cloud_auth(item: Mapping[str, Any], where: str, kind: str, env: Mapping[str, str]
                ) -> tuple[VertexAccount | None, EntraApp | None]:
    """A provider's cloud credentials: Vertex AI's project, location and service account, or
    Azure OpenAI's Entra ID application; settings of the other kinds are refused."""
    stray = [n for n in (*_VERTEX_SETTINGS, *_ENTRA_SETTINGS, "entra_authority") if n in item
             and not (kind == "vertex" and n in _VERTEX_SETTINGS)
             and not (kind == "azure" and n.startswith("entra_"))]
    if stray:
        owner = "azure" if stray[0].startswith("entra_") else "vertex"
        raise InvalidInput(f"config: {where}.{stray[0]} is for kind = \"{owner}\"",
                           field=f"{where}.{stray[0]}")
    if kind == "vertex":
        if "api_key_env" in item:
            raise InvalidInput(f"config: {where}.api_key_env: Vertex AI authenticates with a "
                               "service account; name its key file's variable in "
                               "credentials_env", field=f"{where}.api_key_env")
        project = _setting(item, "project", where, "the Google Cloud project id")
        location = _setting(item, "location", where, 'such as "us-central1" or "global"')
        if not _LOCATION.match(location):
            raise InvalidInput(f'config: {where}.location must be a Vertex AI location such as '
                               f'"us-central1" or "global", not {location!r}',
                               field=f"{where}.location")
        variable = _setting(item, "credentials_env", where, "the environment variable holding "
                            "the path of the service account's JSON key file")
        path = env.get(variable)
        account = _service_account(path, f"{where}.credentials_env", variable) if path else None
        return VertexAccount(project, location, variable, account), None
    named = [n for n in (*_ENTRA_SETTINGS, "entra_authority") if n in item]
    if not named:
        return None, None
    if "api_key_env" in item:
        raise InvalidInput(f"config: {where}: api_key_env and Entra ID settings ({named[0]}) "
                           "both given; an Azure provider authenticates with one of them",
                           field=f"{where}.api_key_env")
    why = "Entra ID needs entra_tenant_id, entra_client_id and entra_client_secret_env"
    tenant, client, secret_env = (_setting(item, n, where, why) for n in _ENTRA_SETTINGS)
    authority = item.get("entra_authority", ENTRA_AUTHORITY)
    # The client secret travels in the request: plain http only to this host (a test's fake).
    try:
        url = urlsplit(authority) if isinstance(authority, str) else None
    except ValueError:  # "http://[::1" and such
        url = None
    if url is None or not url.hostname or not (
            url.scheme == "https" or (url.scheme == "http" and url.hostname in _LOOPBACK)):
        raise InvalidInput(f"config: {where}.entra_authority must be an https:// URL such as "
                           f"{ENTRA_AUTHORITY}", field=f"{where}.entra_authority")
    secret = env.get(secret_env)
    return None, EntraApp(tenant, client, secret_env, Secret(secret) if secret else None,
                          authority.rstrip("/"))


#: What a service account's JSON key file must hold for its tokens to be fetched.
SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


def _service_account(path: str, field: str, variable: str) -> Secret:
    """The service account key file at ``path``, checked now (its private key parsed): a bad
    file is a startup error, not a failed call."""
    where = f"config: {field}: {variable}={path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidInput(f"{where} cannot be read ({reason})", field=field) from None
    try:
        info = json.loads(text)
    except ValueError:
        raise InvalidInput(f"{where} is not JSON (a service account's key file is)",
                           field=field) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise InvalidInput(f'{where} is not a service account key file ("type": '
                           '"service_account")', field=field)
    missing = [n for n in SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(n), str)
               or not info[n]]
    if missing:
        raise InvalidInput(f"{where} lacks {', '.join(missing)}", field=field)
    # Imported here: only a Vertex AI provider needs google-auth.
    from google.oauth2 import service_account

    try:
        service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise InvalidInput(f"{where}: its private key cannot be read ({exc})",
                           field=field) from None
    return Secret(text)


def _cost_source(item: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    """``cost_field`` (a dotted path such as "usage.cost.total_cost", or "" for none) and
    ``cost_currency`` (a currency code) of a provider entry."""
    path = item.get("cost_field", "usage.cost")
    if not isinstance(path, str) or (path and not all(
            part.isidentifier() for part in path.split("."))):
        raise InvalidInput(f"config: {where}.cost_field must be a dotted path such as "
                           "\"usage.cost\" (or \"\" for none)", field=f"{where}.cost_field")
    currency = item.get("cost_currency")
    if currency is not None:
        if not isinstance(currency, str):
            raise InvalidInput(f"config: {where}.cost_currency must be a currency code such "
                               "as \"USD\"", field=f"{where}.cost_currency")
        currency = currency_code(currency, field=f"{where}.cost_currency")
    return path, currency


#: What a provider does with a model no price layer knows: refuse it (a typo must not cost
#: money), or pass it through and record the call unpriced (``meterline rerate`` prices it).
UNKNOWN_MODEL_POLICIES = ("refuse", "record_unpriced")


def _unknown_models(item: Mapping[str, Any], where: str) -> bool:
    """``unknown_models`` ("refuse" | "record_unpriced"), or the older
    ``allow_unknown_models = true``; True means record unpriced."""
    policy = item.get("unknown_models")
    if policy is None:
        return bool(item.get("allow_unknown_models", False))
    if policy not in UNKNOWN_MODEL_POLICIES:
        raise InvalidInput(f"config: {where}.unknown_models must be one of "
                           f"{', '.join(UNKNOWN_MODEL_POLICIES)}", field=f"{where}.unknown_models")
    return bool(policy == "record_unpriced")
