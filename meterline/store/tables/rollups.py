"""The daily rollups (statistics, bills and reconciliation read these, never the raw records)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Money

# -- daily rollups (statistics, and later bills) ------------------------------------------------

#: Upper bounds (ms) of the latency histogram kept in ``usage_daily``; one more bucket counts
#: calls slower than the last bound. Percentiles are estimated from these buckets.
LATENCY_BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000,
                     30000, 60000, 120000)
LATENCY_BUCKETS = (*(f"latency_le_{b}" for b in LATENCY_BOUNDS_MS),
                   f"latency_over_{LATENCY_BOUNDS_MS[-1]}")

# Sums of usage records per tenant-local calendar day and key, kept in step with the ledger in
# the transaction that writes records (store/rollups.py). "None" is '' in key columns: NULLs
# would defeat the primary key. Statistics read this instead of the raw records.
usage_daily = Table(
    "usage_daily", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("billed_currency", String(3), primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("characters", BigInteger, nullable=False),
    Column("images", BigInteger, nullable=False),
    Column("seconds", Money, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("cost", Money, nullable=False),
    Column("billed_cost", Money, nullable=False),
    Column("unpriced_calls", BigInteger, nullable=False),
    Column("estimated_calls", BigInteger, nullable=False),
    # Calls reported (POST /v1/usage, `usage ingest`) rather than passing the gateway: what
    # reconciliation names as a cause (migration 0017).
    Column("reported_calls", BigInteger, nullable=False),
    Column("latency_count", BigInteger, nullable=False),
    Column("latency_ms_total", BigInteger, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in LATENCY_BUCKETS),
)

# The same sums without the user and key (migration 0017): a few rows per tenant, day and model
# where ``usage_daily`` has one per user and key too. Every statistic that neither groups nor
# filters by user or key reads this (the overview, statistics by provider, model, day, status
# or tenant, reconciliation); it is derived from the same deltas in the same transaction, so the
# two never disagree.
usage_daily_models = Table(
    "usage_daily_models", metadata,
    *(column._copy() for column in usage_daily.columns
      if column.name not in ("user_id", "key_id")),
)

# Who spent: per tenant, day, user, key and currency pair, only what the dashboard's top users
# and keys show (migration 0017). A sixth of usage_daily's width and fewer rows (no model or
# status): the overview's 90-day ranking reads it in half the time. ``records`` counts every
# record (a row is empty when it reaches 0), ``calls`` the calls (refunds are not calls).
usage_daily_people = Table(
    "usage_daily_people", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("billed_currency", String(3), primary_key=True),
    Column("records", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("successes", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("unpriced_calls", BigInteger, nullable=False),
    Column("cost", Money, nullable=False),
    Column("billed_cost", Money, nullable=False),
    # Every tenant's rows of a range of days: a new row adds an entry, a sum added to one
    # does not (the column is not indexed), so the update stays in place.
    Index("ix_usage_daily_people_day", "day"),
)

# Charge lines summed per tenant-local day, user, model, meter, unit price and refund: a bill (of a
# tenant or one user) for a cycle sums these days instead of the raw lines. billed_amount is
# each line converted at its record's stored FX rate, so it adds up to the records' billed cost.
usage_daily_meters = Table(
    "usage_daily_meters", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("meter", String(32), primary_key=True),
    Column("unit", String(32), primary_key=True),
    Column("unit_price", Money, primary_key=True),
    Column("per", Integer, primary_key=True, autoincrement=False),
    Column("currency", String(3), primary_key=True),
    Column("billed_currency", String(3), primary_key=True),
    # The lines of refund records (source 'refund'): a bill shows them as their own lines.
    Column("refund", Boolean, primary_key=True),
    Column("lines", BigInteger, nullable=False),
    Column("quantity", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("billed_amount", Money, nullable=False),
)
