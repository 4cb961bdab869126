"""What every part of the config file shares: the settings it may hold (a misspelt one is
refused), :class:`Secret`, and the checks of tables and numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterline.errors import InvalidInput

#: Every setting the file may hold, per table ("" is the top level, "providers" each
#: [[providers]] entry): a misspelt name is refused rather than silently left at its default.
KNOWN_SETTINGS: Mapping[str, frozenset[str]] = {
    "": frozenset({"admin_token", "metrics_token", "reporting_currency", "database",
                   "providers", "routes", "gateway", "ingest", "limits", "alerts",
                   "log_format", "bill_sources", "sync"}),
    "database": frozenset({"url"}),
    "providers": frozenset({"name", "kind", "base_url", "api_key_env", "timeout_seconds",
                            "allow_unknown_models", "unknown_models", "api_version",
                            "cost_field", "cost_currency",
                            # kind = "vertex" (Google Vertex AI)
                            "project", "location", "credentials_env",
                            # kind = "azure" with Entra ID instead of api-key
                            "entra_tenant_id", "entra_client_id", "entra_client_secret_env",
                            "entra_authority"}),
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


def check_known(data: Mapping[str, Any], table: str, where: str = "") -> None:
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


def sub_table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise InvalidInput(f"config: [{key}] must be a table", field=key)
    check_known(value, key, key)
    return value


def positive_number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"config: {field} must be a positive number", field=field)
    return float(value)


def whole_number(value: object, field: str) -> int:
    """A whole number >= 0 (from TOML, or from the environment as text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"config: {field} must be a whole number >= 0", field=field)
    return value
