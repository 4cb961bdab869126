"""The gateway's shared state: Idempotency-Key claims, calls in flight, stored Responses and
rate windows."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    String,
    Table,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, UtcDateTime

idempotency_claims = Table(
    "idempotency_claims", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("key", String(150), primary_key=True),
    Column("request_id", String(40), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# Gateway calls that reached the provider and are not recorded yet (gateway/inflight.py): each
# holds the record the call gets should its process die before answering (status
# ``interrupted``, the request's estimate). ``writer`` names the process's journal writer.
calls_started = Table(
    "calls_started", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("writer", String(64), nullable=False, index=True),
    Column("tenant_id", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("record", Json, nullable=False),
)

# Responses API objects created through the gateway (migration 0014): whose they are, so that
# only their tenant reaches them (GET, DELETE, cancel), and, for a background response not yet
# billed, the call it bills when it completes (gateway/responses.py).
upstream_responses = Table(
    "upstream_responses", metadata,
    Column("response_id", String(200), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("request_id", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("pending", Json, nullable=True),
    Column("billed_at", UtcDateTime, nullable=True),
)

# Requests and tokens per key and minute, for rate limits when no Redis is configured.
rate_windows = Table(
    "rate_windows", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
)
