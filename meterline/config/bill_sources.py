"""``[[bill_sources]]`` (the providers' billing APIs meterline syncs bills from) and ``[sync]``
(when, and how close metered and billed must be): docs/reconcile.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.config.parsing import Secret, check_known, positive_number
from meterline.domain.money import currency_code, decimal
from meterline.domain.reconcile import tolerance_of
from meterline.errors import InvalidInput

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


def parse_bill_sources(raw: object, env: Mapping[str, str]) -> tuple[BillSourceConfig, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("config: bill_sources must be an array of tables", field="bill_sources")
    out: list[BillSourceConfig] = []
    for index, item in enumerate(raw):
        where = f"bill_sources[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"config: {where} must be a table", field=where)
        check_known(item, "bill_sources", where)
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
            requests_per_second=positive_number(item.get("requests_per_second", 5),
                                          f"{where}.requests_per_second"),
            timeout_seconds=positive_number(item.get("timeout_seconds", 60),
                                      f"{where}.timeout_seconds"),
            credential_env=names, **secrets)
        if any((s.provider, s.account) == (source.provider, source.account) for s in out):
            raise InvalidInput(f"config: {where}: a second {provider} account named "
                               f"{source.account!r}; give each an account name",
                               field=f"{where}.account")
        out.append(source)
    return tuple(out)


def parse_sync(raw: Mapping[str, Any], sources: tuple[BillSourceConfig, ...]) -> SyncConfig:
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
