"""How a usage record looks to API and CLI users (money as strings, SPEC §1)."""

from __future__ import annotations

from typing import Any

from meterline.domain.money import format_decimal
from meterline.domain.usage import Meter


def _money(value: Any) -> str | None:
    return None if value is None else format_decimal(value)


def record_json(row: Any, lines: list[dict[str, str]] | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for meter in Meter:
        value = getattr(row, meter.value)
        if value:
            usage[meter.value] = (format_decimal(value) if meter is Meter.SECONDS
                                  else int(value))
    out: dict[str, Any] = {
        "request_id": row.request_id, "id": row.event_id, "tenant": row.tenant_id,
        "user": row.user_id, "key_id": row.key_id, "provider": row.provider, "model": row.model,
        "endpoint": row.endpoint, "source": row.source, "status": row.status,
        "pricing": row.pricing, "timestamp": row.occurred_at.isoformat(), "usage": usage,
        "cost": _money(row.cost), "currency": row.currency,
        "billed_cost": _money(row.billed_cost), "billed_currency": row.billed_currency,
        "fx_rate": _money(row.fx_rate), "fx_missing": row.fx_missing,
        "estimated": row.estimated, "price_version": row.price_version_id,
        "upstream_cost": _money(row.upstream_cost), "cost_mismatch": row.cost_mismatch,
        "ttft_ms": row.ttft_ms,
        "warning": row.warning, "tags": row.tags or [], "metadata": row.metadata or {},
        "latency_ms": row.latency_ms, "http_status": row.http_status, "error": row.error,
    }
    if lines is not None:
        out["lines"] = lines
    return out
