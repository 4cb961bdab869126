"""Typed configuration, built explicitly (never at import time).

Sources, later ones winning: defaults, the TOML file (``--config`` or ``METERLINE_CONFIG``), then
environment variables (``METERLINE_DATABASE_URL``, ``METERLINE_ADMIN_TOKEN``). Secrets are
wrapped in :class:`Secret` so that ``repr`` and logs never show them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.domain.money import currency_code, decimal
from meterline.domain.reconcile import tolerance_of
from meterline.errors import InvalidInput

DEFAULT_DATABASE_URL = "sqlite:///./meterline.db"
DEFAULT_JOURNAL_DIR = "./meterline-journal"
PROVIDER_KINDS = ("openai", "anthropic", "gemini", "azure")
#: Every setting the file may hold, per table ("" is the top level, "providers" each
#: [[providers]] entry): a misspelt name is refused rather than silently left at its default.
KNOWN_SETTINGS: Mapping[str, frozenset[str]] = {
    "": frozenset({"admin_token", "metrics_token", "reporting_currency", "database",
                   "providers", "routes", "gateway", "ingest", "limits", "alerts",
                   "log_format", "bill_sources", "sync"}),
    "database": frozenset({"url"}),
    "providers": frozenset({"name", "kind", "base_url", "api_key_env", "timeout_seconds",
                            "allow_unknown_models", "unknown_models", "api_version",
                            "cost_field", "cost_currency"}),
    "routes": frozenset({"model", "target"}),
    "gateway": frozenset({"journal_dir", "key_cache_seconds"}),
    "ingest": frozenset({"concurrency"}),
    "limits": frozenset({"hold_seconds", "default_max_output_tokens", "default_video_seconds",
                         "cache_seconds", "redis_url", "lease_calls", "lease_seconds"}),
    "alerts": frozenset({"webhooks"}),
    "alerts.webhooks": frozenset({"url", "format", "secret_env"}),
    "bill_sources": frozenset({"provider", "account", "name", "endpoint", "region", "currency",
                               "access_key_id_env", "access_key_secret_env", "api_key_env",
                               "low_balance", "requests_per_second", "timeout_seconds"}),
    "sync": frozenset({"at", "timezone", "sources", "tolerance"}),
}


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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

    @property
    def cost_path(self) -> tuple[str, ...]:
        return tuple(self.cost_field.split(".")) if self.cost_field else ()

    @property
    def wire(self) -> str:
        """The wire format the provider speaks (Azure OpenAI speaks OpenAI's)."""
        return "openai" if self.kind == "azure" else self.kind


@dataclass(frozen=True)
class RouteConfig:
    model: str
    target: str


@dataclass(frozen=True)
class WebhookSetting:
    """A webhook alerts are sent to (checked further by meterline.alerts.WebhookConfig)."""

    url: Secret  # DingTalk and WeCom put their access token in the URL
    format: str = "json"
    secret: Secret | None = None


@dataclass(frozen=True)
class LimitsConfig:
    """Spend control: budgets, quotas and rate limits (see docs/limits.md)."""

    #: How long a call's hold on a budget or quota lasts if its record never arrives (its
    #: process died and never came back); a restarted process releases it sooner by draining.
    hold_seconds: float = 900.0
    #: The output a call may produce when it names no max_tokens and the catalog knows no
    #: maximum for its model: its worst case for budgets and quotas.
    default_max_output_tokens: int = 32_768
    #: The length a video call is held for when it names no seconds.
    default_video_seconds: int = 20
    #: How long the list of budgets and quotas is trusted before it is read again (a new
    #: budget takes effect within this time in every process).
    cache_seconds: float = 2.0
    #: Shared counters for rate limits across processes; without it, the database is used.
    redis_url: str | None = None
    #: A process leases this many calls' worst case at once and admits from it in memory
    #: (docs/limits.md, "Leases"); 1 turns leasing off (every limited call holds on its own).
    lease_calls: int = 64
    #: How long a lease admits calls before its unused part is given back.
    lease_seconds: float = 0.5
    #: Where alerts are sent ([[alerts.webhooks]] url, format, secret_env).
    webhooks: tuple[WebhookSetting, ...] = ()


#: Providers whose bills and balances ``meterline sync --provider`` fetches ([[bill_sources]]).
BILL_SOURCE_PROVIDERS = ("aliyun", "tencent", "volcano", "baidu", "deepseek", "openai",
                         "anthropic")
#: Those signing with an AccessKey pair; the others take an (admin) API key.
ACCESS_KEY_PROVIDERS = ("aliyun", "tencent", "volcano", "baidu")


@dataclass(frozen=True)
class BillSourceConfig:
    """A provider account whose bill lines and balance ``meterline sync --provider`` fetches.
    Credentials come from the environment variables the entry names, read at load; one that is
    unset is None here and refused, naming its variable, only when that account is synced."""

    provider: str
    account: str
    #: meterline's name of the provider the lines are filed under (None: the provider's own).
    name: str | None = None
    #: The billing API's address (None: the provider's); tests point it at a fake.
    endpoint: str | None = None
    region: str | None = None
    #: The bill's currency where the provider's answers do not say it.
    currency: str | None = None
    low_balance: Decimal | None = None
    requests_per_second: float = 5.0
    timeout_seconds: float = 60.0
    access_key_id: Secret | None = None
    access_key_secret: Secret | None = None
    api_key: Secret | None = None
    #: Credential -> the environment variable named for it (to say which one is unset).
    credential_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncConfig:
    """``[sync]``: the daily sync of the providers' bills and what a sync alerts on."""

    #: The time of day the server syncs each source (None: no daily sync).
    at: time | None = None
    #: The timezone ``at`` is read in (IANA name; UTC unless one is given).
    timezone: str = "UTC"
    #: The sources the daily sync fetches, as ``provider`` or ``provider:account`` (None: all).
    sources: tuple[str, ...] | None = None
    #: A reconciliation difference above this share of the metered amount raises an alert.
    tolerance: Decimal = Decimal("0.01")

    def selected(self, sources: tuple[BillSourceConfig, ...]) -> list[BillSourceConfig]:
        """The configured sources the daily sync fetches."""
        if self.sources is None:
            return list(sources)
        return [s for s in sources
                if s.provider in self.sources or f"{s.provider}:{s.account}" in self.sources]


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    admin_token: Secret | None = None
    #: A token that reads /metrics and nothing else (any admin token reads it too).
    metrics_token: Secret | None = None
    reporting_currency: str = "USD"
    providers: tuple[ProviderConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    #: Where the gateway journals calls before they reach the ledger (SPEC §7.4).
    journal_dir: str = DEFAULT_JOURNAL_DIR
    #: How long a checked API key is trusted before it is looked up again (revocation delay).
    key_cache_seconds: float = 10.0
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    #: Batches of ``POST /v1/usage`` one server process rates and writes at once (the rest wait
    #: their turn); 0: one per CPU core the process has to itself (cores / worker processes).
    ingest_concurrency: int = 0
    demo: bool = False
    #: How a serving process writes its log: "text" (as uvicorn does) or "json" (one object
    #: per line, with the request id; meterline/logs.py).
    log_format: str = "text"
    bill_sources: tuple[BillSourceConfig, ...] = ()
    sync: SyncConfig = field(default_factory=SyncConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)


def _known(data: Mapping[str, Any], table: str, where: str = "") -> None:
    """Refuse settings meterline does not know, naming them (``[databse]`` is not ignored)."""
    unknown = sorted(set(data) - KNOWN_SETTINGS[table])
    if not unknown:
        return
    prefix = f"{where}." if where else ""
    names = [f"[{prefix}{name}]" if isinstance(data[name], Mapping) else f"{prefix}{name}"
             for name in unknown]
    known = ", ".join(sorted(KNOWN_SETTINGS[table]))
    raise InvalidInput(f"config: unknown setting{'s' if len(names) > 1 else ''} "
                       f"{', '.join(names)} (known{' in ' + where if where else ''}: {known})",
                       field=f"{prefix}{unknown[0]}")


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise InvalidInput(f"config: [{key}] must be a table", field=key)
    _known(value, key, key)
    return value


def _admin_token(token: object, name: str, setting: str = "admin_token") -> Secret | None:
    """The admin token, if set: printable ASCII, since it travels in HTTP headers and in the
    dashboard's cookie (anything else passes here and fails at the first login)."""
    if not token:
        return None
    text = str(token)
    for index, char in enumerate(text):
        if not "!" <= char <= "~":
            raise InvalidInput(
                f"config: {name} must be printable ASCII without spaces (it is sent in HTTP "
                f"headers and a cookie); its character {index + 1} is not. Generate one with: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
                field=setting)
    return Secret(text)


def _providers(raw: object, env: Mapping[str, str]) -> tuple[ProviderConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: providers must be an array of tables", field="providers")
    out = []
    for index, item in enumerate(raw):
        where = f"providers[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"config: {where} must be a table", field=where)
        _known(item, "providers", where)
        name, kind, base = item.get("name"), item.get("kind", "openai"), item.get("base_url")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"config: {where}.name is missing", field=f"{where}.name")
        if kind not in PROVIDER_KINDS:
            raise InvalidInput(f"config: {where}.kind must be one of {', '.join(PROVIDER_KINDS)}",
                               field=f"{where}.kind")
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
                                  *_cost_source(item, where)))
    return tuple(out)


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


def _routes(raw: object) -> tuple[RouteConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: routes must be an array of tables", field="routes")
    out = []
    for index, item in enumerate(raw):
        if (not isinstance(item, Mapping) or not isinstance(item.get("model"), str)
                or not isinstance(item.get("target"), str)):
            raise InvalidInput(f"config: routes[{index}] needs model and target",
                               field=f"routes[{index}]")
        _known(item, "routes", f"routes[{index}]")
        out.append(RouteConfig(item["model"], item["target"]))
    return tuple(out)


def _positive(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"config: {field} must be a positive number", field=field)
    return float(value)


def _count(value: object, field: str) -> int:
    """A whole number >= 0 (from TOML, or from the environment as text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"config: {field} must be a whole number >= 0", field=field)
    return value


def _webhooks(raw: object, env: Mapping[str, str]) -> tuple[WebhookSetting, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: alerts.webhooks must be an array of tables",
                           field="alerts.webhooks")
    out = []
    for index, item in enumerate(raw):
        where = f"alerts.webhooks[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
            raise InvalidInput(f"config: {where} needs a url", field=f"{where}.url")
        _known(item, "alerts.webhooks", where)
        secret_env = item.get("secret_env")
        secret = env.get(secret_env) if isinstance(secret_env, str) else None
        out.append(WebhookSetting(Secret(item["url"]), str(item.get("format", "json")),
                                  Secret(secret) if secret else None))
    return tuple(out)


def _limits(raw: Mapping[str, Any], alerts: Mapping[str, Any],
            env: Mapping[str, str]) -> LimitsConfig:
    defaults = LimitsConfig()
    redis = env.get("METERLINE_REDIS_URL") or raw.get("redis_url")
    if redis is not None and (not isinstance(redis, str) or not redis.startswith(
            ("redis://", "rediss://", "unix://"))):
        raise InvalidInput("config: limits.redis_url must be a redis:// URL",
                           field="limits.redis_url")
    return LimitsConfig(
        hold_seconds=_positive(raw.get("hold_seconds", defaults.hold_seconds),
                               "limits.hold_seconds"),
        default_max_output_tokens=int(_positive(
            raw.get("default_max_output_tokens", defaults.default_max_output_tokens),
            "limits.default_max_output_tokens")),
        default_video_seconds=int(_positive(
            raw.get("default_video_seconds", defaults.default_video_seconds),
            "limits.default_video_seconds")),
        cache_seconds=_positive(raw.get("cache_seconds", defaults.cache_seconds),
                                "limits.cache_seconds"),
        redis_url=redis or None,
        lease_calls=max(1, _count(raw.get("lease_calls", defaults.lease_calls),
                                  "limits.lease_calls")),
        lease_seconds=_positive(raw.get("lease_seconds", defaults.lease_seconds),
                                "limits.lease_seconds"),
        webhooks=_webhooks(alerts.get("webhooks", []), env))


def _bill_sources(raw: object, env: Mapping[str, str]) -> tuple[BillSourceConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: bill_sources must be an array of tables", field="bill_sources")
    out: list[BillSourceConfig] = []
    for index, item in enumerate(raw):
        where = f"bill_sources[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"config: {where} must be a table", field=where)
        _known(item, "bill_sources", where)
        provider = item.get("provider")
        if provider not in BILL_SOURCE_PROVIDERS:
            raise InvalidInput(f"config: {where}.provider must be one of "
                               f"{', '.join(BILL_SOURCE_PROVIDERS)}", field=f"{where}.provider")
        wanted = (("access_key_id", "access_key_secret") if provider in ACCESS_KEY_PROVIDERS
                  else ("api_key",))
        names: dict[str, str] = {}
        for credential in wanted:
            name = item.get(f"{credential}_env")
            if not isinstance(name, str) or not name:
                raise InvalidInput(f"config: {where}.{credential}_env must name the environment "
                                   f"variable holding the {provider} {credential}",
                                   field=f"{where}.{credential}_env")
            names[credential] = name
        secrets = {credential: Secret(env[name]) if env.get(name) else None
                   for credential, name in names.items()}
        endpoint = item.get("endpoint")
        if endpoint is not None and (not isinstance(endpoint, str)
                                     or not endpoint.startswith(("https://", "http://"))):
            raise InvalidInput(f"config: {where}.endpoint must be an http(s):// URL",
                               field=f"{where}.endpoint")
        low = item.get("low_balance")
        source = BillSourceConfig(
            provider=provider, account=str(item.get("account") or provider),
            name=str(item["name"]) if item.get("name") else None,
            endpoint=endpoint.rstrip("/") if endpoint else None,
            region=str(item["region"]) if item.get("region") else None,
            currency=currency_code(item["currency"], field=f"{where}.currency")
            if item.get("currency") else None,
            low_balance=decimal(low, field=f"{where}.low_balance") if low is not None else None,
            requests_per_second=_positive(item.get("requests_per_second", 5),
                                          f"{where}.requests_per_second"),
            timeout_seconds=_positive(item.get("timeout_seconds", 60),
                                      f"{where}.timeout_seconds"),
            credential_env=names, **secrets)
        if any((s.provider, s.account) == (source.provider, source.account) for s in out):
            raise InvalidInput(f"config: {where}: a second {provider} account named "
                               f"{source.account!r}; give each an account name",
                               field=f"{where}.account")
        out.append(source)
    return tuple(out)


def _sync(raw: Mapping[str, Any], sources: tuple[BillSourceConfig, ...]) -> SyncConfig:
    at = raw.get("at")
    when = at if isinstance(at, time) and at.tzinfo is None else None  # TOML's 06:00:00
    if isinstance(at, str) and len(at) == 5:
        try:
            when = time.fromisoformat(at)
        except ValueError:
            when = None
    if at is not None and when is None:
        raise InvalidInput(f'config: sync.at must be a time of day as "HH:MM" (24 h), not '
                           f"{at!r}", field="sync.at")
    zone = raw.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput(f"config: sync.timezone: unknown timezone {zone!r} (an IANA name such "
                           'as "Asia/Shanghai")', field="sync.timezone") from None
    names = raw.get("sources")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidInput('config: sync.sources must be a list of "provider" or '
                               '"provider:account" names', field="sync.sources")
        known = {s.provider for s in sources} | {f"{s.provider}:{s.account}" for s in sources}
        for name in names:
            if name not in known:
                raise InvalidInput(f"config: sync.sources: {name!r} is no [[bill_sources]] entry "
                                   f"(configured: {', '.join(sorted(known)) or 'none'})",
                                   field="sync.sources")
    try:
        tolerance = tolerance_of(raw.get("tolerance", "0.01"))
    except InvalidInput as exc:
        raise InvalidInput(f"config: sync.{exc.message}", field="sync.tolerance") from None
    return SyncConfig(at=when, timezone=str(zone),
                      sources=tuple(names) if names is not None else None, tolerance=tolerance)


LOG_FORMATS = ("text", "json")


def _log_format(value: object) -> str:
    if value not in LOG_FORMATS:
        raise InvalidInput(f"config: log_format must be one of {', '.join(LOG_FORMATS)} "
                           f"(METERLINE_LOG_FORMAT or log_format), not {value!r}",
                           field="log_format")
    return str(value)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> Config:
    """Read the config file (if any) and the environment into a Config."""
    env = os.environ if env is None else env
    path = path or env.get("METERLINE_CONFIG")
    data: Mapping[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"config file {path} does not exist", field="config") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"config file {path}: {exc}", field="config") from None
    _known(data, "")
    database = _table(data, "database")
    gateway = _table(data, "gateway")
    ingest = _table(data, "ingest")
    url = env.get("METERLINE_DATABASE_URL") or database.get("url") or DEFAULT_DATABASE_URL
    from_env = env.get("METERLINE_ADMIN_TOKEN")
    metrics_env = env.get("METERLINE_METRICS_TOKEN")
    values: dict[str, Any] = {
        "database_url": str(url),
        "admin_token": _admin_token(from_env, "METERLINE_ADMIN_TOKEN") if from_env
        else _admin_token(data.get("admin_token"), "admin_token"),
        "metrics_token": _admin_token(metrics_env, "METERLINE_METRICS_TOKEN", "metrics_token")
        if metrics_env else _admin_token(data.get("metrics_token"), "metrics_token",
                                         "metrics_token"),
        "reporting_currency": currency_code(data.get("reporting_currency", "USD"),
                                            field="reporting_currency"),
        "providers": _providers(data.get("providers", []), env),
        "routes": _routes(data.get("routes", [])),
        "journal_dir": str(env.get("METERLINE_JOURNAL_DIR") or gateway.get("journal_dir")
                           or DEFAULT_JOURNAL_DIR),
        "key_cache_seconds": _positive(gateway.get("key_cache_seconds", 10.0),
                                       "gateway.key_cache_seconds"),
        "limits": _limits(_table(data, "limits"), _table(data, "alerts"), env),
        "ingest_concurrency": _count(env.get("METERLINE_INGEST_CONCURRENCY")
                                     or ingest.get("concurrency", 0), "ingest.concurrency"),
        "log_format": _log_format(env.get("METERLINE_LOG_FORMAT")
                                  or data.get("log_format", "text")),
        "bill_sources": _bill_sources(data.get("bill_sources", []), env),
    }
    values["sync"] = _sync(_table(data, "sync"), values["bill_sources"])
    values.update(overrides)
    return Config(**values)
