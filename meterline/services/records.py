"""How a usage record looks to API and CLI users (money as strings, SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterline.domain.money import format_decimal
from meterline.domain.usage import Meter


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


@dataclass(frozen=True)
class UsageRecordView:
    """A stored usage record (hot or archived) as users see it; ``lines`` are its charge lines
    in the shape ``store.ledger.lines_of`` gives them, None where they were not read."""

    request_id: str
    event_id: str
    tenant: str
    user: str | None
    key_id: str | None
    provider: str
    model: str
    endpoint: str | None
    source: str
    status: str
    pricing: str
    occurred_at: datetime
    #: The meters used (none at 0): seconds exact, every other meter a count.
    usage: dict[str, int | Decimal]
    cost: Decimal | None
    currency: str | None
    billed_cost: Decimal | None
    billed_currency: str | None
    fx_rate: Decimal | None
    fx_missing: bool
    estimated: bool
    price_version: str | None
    upstream_cost: Decimal | None
    cost_mismatch: bool
    ttft_ms: int | None
    latency_ms: int | None
    warning: str | None
    tags: list[str]
    metadata: dict[str, Any]
    http_status: int | None
    error: str | None
    lines: list[dict[str, str]] | None = None

    @classmethod
    def of_row(cls, row: Any, lines: list[dict[str, str]] | None = None) -> UsageRecordView:
        usage: dict[str, int | Decimal] = {}
        for meter in Meter:
            value = getattr(row, meter.value)
            if value:
                usage[meter.value] = Decimal(value) if meter is Meter.SECONDS else int(value)
        return cls(
            request_id=row.request_id, event_id=row.event_id, tenant=row.tenant_id,
            user=row.user_id, key_id=row.key_id, provider=row.provider, model=row.model,
            endpoint=row.endpoint, source=row.source, status=row.status, pricing=row.pricing,
            occurred_at=row.occurred_at, usage=usage, cost=row.cost, currency=row.currency,
            billed_cost=row.billed_cost, billed_currency=row.billed_currency,
            fx_rate=row.fx_rate, fx_missing=row.fx_missing, estimated=row.estimated,
            price_version=row.price_version_id, upstream_cost=row.upstream_cost,
            cost_mismatch=row.cost_mismatch, ttft_ms=row.ttft_ms, latency_ms=row.latency_ms,
            warning=row.warning, tags=row.tags or [], metadata=row.metadata or {},
            http_status=row.http_status, error=row.error, lines=lines)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id, "id": self.event_id, "tenant": self.tenant,
            "user": self.user, "key_id": self.key_id, "provider": self.provider,
            "model": self.model, "endpoint": self.endpoint, "source": self.source,
            "status": self.status, "pricing": self.pricing,
            "timestamp": self.occurred_at.isoformat(),
            "usage": {meter: format_decimal(value) if isinstance(value, Decimal) else value
                      for meter, value in self.usage.items()},
            "cost": _money(self.cost), "currency": self.currency,
            "billed_cost": _money(self.billed_cost), "billed_currency": self.billed_currency,
            "fx_rate": _money(self.fx_rate), "fx_missing": self.fx_missing,
            "estimated": self.estimated, "price_version": self.price_version,
            "upstream_cost": _money(self.upstream_cost), "cost_mismatch": self.cost_mismatch,
            "ttft_ms": self.ttft_ms, "warning": self.warning, "tags": self.tags,
            "metadata": self.metadata, "latency_ms": self.latency_ms,
            "http_status": self.http_status, "error": self.error,
        }
        if self.lines is not None:
            out["lines"] = self.lines
        return out
