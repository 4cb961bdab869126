"""Typed configuration, built explicitly (never at import time).

Sources, later ones winning: defaults, the TOML file (``--config`` or ``METERLINE_CONFIG``), then
environment variables (``METERLINE_DATABASE_URL``, ``METERLINE_ADMIN_TOKEN``). Secrets are
wrapped in :class:`Secret` so that ``repr`` and logs never show them. The providers and the
bill sources are parsed by modules of their own (``providers``, ``bill_sources``); what every part
shares is in ``parsing``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterline.config.bill_sources import (
    ACCESS_KEY_PROVIDERS,
    BILL_SOURCE_PROVIDERS,
    BillSourceConfig,
    SyncConfig,
    parse_bill_sources,
    parse_sync,
)
from meterline.config.parsing import (
    KNOWN_SETTINGS,
    Secret,
    check_known,
    positive_number,
    sub_table,
    whole_number,
)
from meterline.config.providers import (
    AZURE_SCOPE,
    ENTRA_AUTHORITY,
    PROVIDER_KINDS,
    VERTEX_SCOPE,
    EntraApp,
    ProviderConfig,
    VertexAccount,
    parse_providers,
)
from meterline.domain.money import currency_code
from meterline.errors import InvalidInput

__all__ = ["ACCESS_KEY_PROVIDERS", "AZURE_SCOPE", "BILL_SOURCE_PROVIDERS",
           "DEFAULT_DATABASE_URL", "DEFAULT_JOURNAL_DIR", "ENTRA_AUTHORITY", "KNOWN_SETTINGS",
           "LOG_FORMATS", "PROVIDER_KINDS", "VERTEX_SCOPE", "BillSourceConfig", "Config",
           "EntraApp", "LimitsConfig", "ProviderConfig", "RouteConfig", "Secret", "SyncConfig",
           "VertexAccount", "WebhookSetting", "load_config"]

DEFAULT_DATABASE_URL = "sqlite:///./meterline.db"
DEFAULT_JOURNAL_DIR = "./meterline-journal"


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


def _routes(raw: object) -> tuple[RouteConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: routes must be an array of tables", field="routes")
    out = []
    for index, item in enumerate(raw):
        if (not isinstance(item, Mapping) or not isinstance(item.get("model"), str)
                or not isinstance(item.get("target"), str)):
            raise InvalidInput(f"config: routes[{index}] needs model and target",
                               field=f"routes[{index}]")
        check_known(item, "routes", f"routes[{index}]")
        out.append(RouteConfig(item["model"], item["target"]))
    return tuple(out)


def _webhooks(raw: object, env: Mapping[str, str]) -> tuple[WebhookSetting, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: alerts.webhooks must be an array of tables",
                           field="alerts.webhooks")
    out = []
    for index, item in enumerate(raw):
        where = f"alerts.webhooks[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
            raise InvalidInput(f"config: {where} needs a url", field=f"{where}.url")
        check_known(item, "alerts.webhooks", where)
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
        hold_seconds=positive_number(raw.get("hold_seconds", defaults.hold_seconds),
                               "limits.hold_seconds"),
        default_max_output_tokens=int(positive_number(
            raw.get("default_max_output_tokens", defaults.default_max_output_tokens),
            "limits.default_max_output_tokens")),
        default_video_seconds=int(positive_number(
            raw.get("default_video_seconds", defaults.default_video_seconds),
            "limits.default_video_seconds")),
        cache_seconds=positive_number(raw.get("cache_seconds", defaults.cache_seconds),
                                "limits.cache_seconds"),
        redis_url=redis or None,
        lease_calls=max(1, whole_number(raw.get("lease_calls", defaults.lease_calls),
                                  "limits.lease_calls")),
        lease_seconds=positive_number(raw.get("lease_seconds", defaults.lease_seconds),
                                "limits.lease_seconds"),
        webhooks=_webhooks(alerts.get("webhooks", []), env))


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
    check_known(data, "")
    database = sub_table(data, "database")
    gateway = sub_table(data, "gateway")
    ingest = sub_table(data, "ingest")
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
        "providers": parse_providers(data.get("providers", []), env),
        "routes": _routes(data.get("routes", [])),
        "journal_dir": str(env.get("METERLINE_JOURNAL_DIR") or gateway.get("journal_dir")
                           or DEFAULT_JOURNAL_DIR),
        "key_cache_seconds": positive_number(gateway.get("key_cache_seconds", 10.0),
                                       "gateway.key_cache_seconds"),
        "limits": _limits(sub_table(data, "limits"), sub_table(data, "alerts"), env),
        "ingest_concurrency": whole_number(env.get("METERLINE_INGEST_CONCURRENCY")
                                     or ingest.get("concurrency", 0), "ingest.concurrency"),
        "log_format": _log_format(env.get("METERLINE_LOG_FORMAT")
                                  or data.get("log_format", "text")),
        "bill_sources": parse_bill_sources(data.get("bill_sources", []), env),
    }
    values["sync"] = parse_sync(sub_table(data, "sync"), values["bill_sources"])
    values.update(overrides)
    return Config(**values)
