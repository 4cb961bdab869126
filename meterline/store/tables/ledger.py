"""The ledger: usage records and their charge lines, and the archive they move to."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, Money, UtcDateTime

usage_records = Table(
    "usage_records", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("endpoint", String(64), nullable=True),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pricing", String(16), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("cached_input_tokens", BigInteger, nullable=False, default=0),
    Column("cache_write_tokens", BigInteger, nullable=False, default=0),
    Column("cache_write_1h_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("reasoning_tokens", BigInteger, nullable=False, default=0),
    Column("characters", BigInteger, nullable=False, default=0),
    Column("images", BigInteger, nullable=False, default=0),
    Column("seconds", Money, nullable=False, default=0),
    Column("requests", BigInteger, nullable=False, default=0),
    # Built-in tool uses (migration 0017); their charge lines roll up in usage_daily_meters.
    Column("web_search_calls", BigInteger, nullable=False, default=0),
    Column("file_search_calls", BigInteger, nullable=False, default=0),
    Column("code_interpreter_sessions", BigInteger, nullable=False, default=0),
    Column("attributes", Json, nullable=True),
    Column("cost", Money, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("price_version_id", String(260), nullable=True),
    Column("billed_cost", Money, nullable=True),
    Column("billed_currency", String(3), nullable=True),
    Column("fx_rate", Money, nullable=True),
    Column("fx_missing", Boolean, nullable=False, default=False),
    Column("estimated", Boolean, nullable=False, default=False),
    # What the upstream itself said the call cost (OpenRouter's usage.cost), and whether that
    # differs from meterline's own cost beyond the tolerance: per-call reconciliation.
    Column("upstream_cost", Money, nullable=True),
    Column("cost_mismatch", Boolean, nullable=False, default=False),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("warning", Text, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("ttft_ms", Integer, nullable=True),
    Column("tags", Json, nullable=True),
    Column("metadata", Json, nullable=True),
    UniqueConstraint("tenant_id", "event_id"),
    Index("ix_usage_records_tenant_time", "tenant_id", "occurred_at"),
    # Every tenant's records by time (the dashboard's usage explorer; migration 0015).
    Index("ix_usage_records_time", "occurred_at", "request_id"),
    # Only unpriced records are ever looked up by pricing state (rerate): a partial index.
    Index("ix_usage_records_unpriced", "request_id",
          postgresql_where=text("pricing = 'unpriced'"),
          sqlite_where=text("pricing = 'unpriced'")),
    Index("ix_usage_records_fx_missing", "request_id",
          postgresql_where=text("fx_missing"), sqlite_where=text("fx_missing")),
)

# Charge lines are written in the same statement as their record (store/bulk.py), so they carry
# no foreign key: its per-row trigger would double the cost of ingestion on PostgreSQL.
charge_lines = Table(
    "charge_lines", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("meter", String(32), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("per", Integer, nullable=False),
    Column("amount", Money, nullable=False),
)


# -- the archive (store/archive.py) -------------------------------------------------------------

# Records (and their charge lines) older than the archive's cutoff, moved out of the hot tables
# by `meterline archive`. Same columns, built from the hot tables' own, so the two never drift;
# the rollups are not touched by archiving. Only priced, converted records are moved, so the
# archive holds no partial indexes for rerating.
usage_records_archive = Table(
    "usage_records_archive", metadata,
    *(column._copy() for column in usage_records.columns),
    UniqueConstraint("tenant_id", "event_id"),
    Index("ix_usage_records_archive_tenant_time", "tenant_id", "occurred_at"),
)

charge_lines_archive = Table(
    "charge_lines_archive", metadata,
    *(column._copy() for column in charge_lines.columns),
)

# One row (id 1, created by the migration): every record before `cutoff` is archived or
# refused at ingestion (an event older than it is a duplicate or refused, never recorded anew).
archive_state = Table(
    "archive_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("cutoff", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=True),
)
