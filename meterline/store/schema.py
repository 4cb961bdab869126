"""The tables meterline keeps (SQLAlchemy Core). Alembic migrations create exactly these.

Money columns use :class:`Money` (exact on both backends); times use :class:`UtcDateTime`.
Usage records are unique per (tenant, event id) — the idempotency key of SPEC §4 — and are never
updated, except that an ``unpriced`` record gets its cost filled in once by ``rerate``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from meterline.store.types import Json, Money, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tenants = Table(
    "tenants", metadata,
    Column("id", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

users = Table(
    "users", metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.id"), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("user_id", String(128), nullable=True),
    Column("name", String(128), nullable=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("models", Json, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Rate limits (requests and tokens per minute), shared by every gateway process.
    Column("rpm", Integer, nullable=True),
    Column("tpm", BigInteger, nullable=True),
)

admin_tokens = Table(
    "admin_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Which one it is ("config" for the configured token), to list and revoke it by.
    Column("name", String(64), nullable=False, server_default="admin"),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Dashboard sessions: the cookie carries a random id (signed), stored here only hashed.
sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("admin_token_id", Integer, ForeignKey("admin_tokens.id"), nullable=False,
           index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Secrets the server makes for itself, shared by every process (the session signing key).
server_secrets = Table(
    "server_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

providers = Table(
    "providers", metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("base_url", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

models = Table(
    "models", metadata,
    Column("id", String(200), primary_key=True),
    Column("provider", String(64), nullable=False, index=True),
    Column("billing_type", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

model_aliases = Table(
    "model_aliases", metadata,
    Column("alias", String(200), primary_key=True),
    Column("model_id", String(200), nullable=False),
)

price_versions = Table(
    "price_versions", metadata,
    Column("id", String(260), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("effective_from", UtcDateTime, nullable=False),
    Column("body", Json, nullable=False),
    Column("origin", String(32), nullable=False),
    # meterline.domain.pricebook.Layer's label: which layer the version belongs to.
    Column("layer", String(16), nullable=False, server_default="operator"),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("model_id", "effective_from", "currency", "layer"),
)

# The last sync of each shipped price source into this database (store/pricing.mark_synced).
catalog_syncs = Table(
    "catalog_syncs", metadata,
    Column("layer", String(16), primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("synced_at", UtcDateTime, nullable=False),
)

# Name rules of a price database (meterline.domain.model_match): one per layer and model, tried
# in the database's order (position) within a provider.
model_rules = Table(
    "model_rules", metadata,
    Column("layer", String(16), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("rule", Text, nullable=False),
)

fx_rates = Table(
    "fx_rates", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("base", String(3), nullable=False),
    Column("quote", String(3), nullable=False),
    Column("rate", Money, nullable=False),
    Column("effective_from", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("base", "quote", "effective_from"),
)

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

# -- spend control (budgets, holds, alerts) ----------------------------------------------------

budgets = Table(
    "budgets", metadata,
    Column("id", String(32), primary_key=True),
    # Scope.key_text: one budget per scope and period (NULLs would defeat a unique constraint).
    Column("scope_key", String(700), nullable=False),
    Column("tenant_id", String(64), nullable=True, index=True),
    Column("user_id", String(128), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("model", String(200), nullable=True),
    Column("period", String(8), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("thresholds", Json, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("scope_key", "period"),
)

# Spent and reserved per budget and period, kept in step with the ledger: a record's cost is
# added in the same transaction that writes the record, and its hold released there too.
budget_periods = Table(
    "budget_periods", metadata,
    Column("budget_id", String(32), primary_key=True),
    Column("period_start", UtcDateTime, primary_key=True),
    Column("spent", Money, nullable=False),
    Column("reserved", Money, nullable=False),
)

# A call's hold on a budget, from admission until its record reaches the ledger (or it expires).
budget_holds = Table(
    "budget_holds", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("budget_id", String(32), primary_key=True),
    Column("period_start", UtcDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

alerts = Table(
    "alerts", metadata,
    Column("id", String(32), primary_key=True),
    Column("budget_id", String(32), nullable=True),
    Column("tenant_id", String(64), nullable=True, index=True),
    Column("scope", String(800), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("level", String(16), nullable=False),
    Column("threshold", Money, nullable=False),
    Column("percentage", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("limit_amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("period", String(16), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("notified_at", UtcDateTime, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    # Once per budget, period, kind and threshold, however many processes see the crossing.
    UniqueConstraint("budget_id", "period_start", "kind", "threshold"),
    # A provider account's alerts (low balance, bill differences) have no budget: ``source``
    # is ``provider:account``, and the same once-only rule holds for it.
    Column("source", String(200), nullable=True),
    Index("uq_alerts_source", "source", "period_start", "kind", "threshold", unique=True),
)

# -- quotas (prepaid allowances) ---------------------------------------------------------------

plans = Table(
    "plans", metadata,
    Column("id", String(64), primary_key=True),
    # {quota type: units per cycle}
    Column("allowances", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

tenant_plans = Table(
    "tenant_plans", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("since", UtcDateTime, nullable=False),
)

quota_grants = Table(
    "quota_grants", metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("type", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("bonus", BigInteger, nullable=False),
    # What is left of the grant, kept in step with its ledger entries (the hot path reads this;
    # `quota show` derives the same from the entries).
    Column("remaining", BigInteger, nullable=False),
    Column("reference", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("cycle", String(7), nullable=True),
    Column("granted_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Index("ix_quota_grants_tenant_type", "tenant_id", "type"),
    # A plan's allowance is granted once per tenant, type and cycle, by whichever process
    # first needs it.
    Index("uq_quota_grants_plan_cycle", "tenant_id", "type", "cycle", unique=True,
          postgresql_where=text("source = 'plan'"), sqlite_where=text("source = 'plan'")),
)

quota_entries = Table(
    "quota_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grant_id", String(32), nullable=False, index=True),
    Column("tenant_id", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_quota_entries_tenant_type", "tenant_id", "type"),
)

# Units held by calls in flight, per tenant and type, and each call's hold.
quota_counters = Table(
    "quota_counters", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("type", String(16), primary_key=True),
    Column("reserved", BigInteger, nullable=False),
)

quota_holds = Table(
    "quota_holds", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("type", String(16), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# Idempotency-Key claims of calls in flight or recently made (gateway/idempotency.py): one per
# tenant and key, so two processes receiving the same key cannot both call the provider.
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
    Column("latency_count", BigInteger, nullable=False),
    Column("latency_ms_total", BigInteger, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in LATENCY_BUCKETS),
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

# -- bills ---------------------------------------------------------------------------------------

# Issued, paid and void bills, each a snapshot taken when it left ``open`` (an open bill is
# computed from the rollups and never stored). ``user_id`` '' is the tenant's own bill. A
# status change fills in its time; lines and totals never change (services/bills.py).
bills = Table(
    "bills", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("cycle", String(7), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(8), nullable=False),
    Column("total", Money, nullable=False),
    Column("exact_total", Money, nullable=False),
    Column("issued_at", UtcDateTime, nullable=True),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    Index("ix_bills_status", "status", "tenant_id"),
)

# The lines of a stored bill as issued (``amount`` rounded, ``unrounded`` exact), in the bill's
# canonical order. ``adjustment_of``: the earlier cycle whose late usage (or refund) the line
# carries; late usage of a cycle is what its rollups hold beyond these snapshots.
bill_lines = Table(
    "bill_lines", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("cycle", String(7), primary_key=True),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("model", String(200), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("per", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("refund", Boolean, nullable=False),
    Column("adjustment_of", String(7), nullable=True),
    Column("quantity", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("unrounded", Money, nullable=False),
    Index("ix_bill_lines_adjustment_of", "tenant_id", "user_id", "adjustment_of"),
)

# -- provider bills (store/provider_bills.py) -----------------------------------------------------

# What providers billed, per model and charge period, imported from their bill files: the other
# side of reconciliation. An import replaces the lines of its providers over the days it covers.
provider_bill_lines = Table(
    "provider_bill_lines", metadata,
    Column("provider", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("amount", Money, nullable=False),
    Column("source", String(16), nullable=False),
    Column("imported_at", UtcDateTime, nullable=False),
    # The provider's rows the line sums (a list of JSON objects; None for older imports).
    Column("raw", Json, nullable=True),
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

# -- the audit log (store/audit.py) -------------------------------------------------------------

# Admin actions, one row each, newest the highest id: who (an admin token's name,
# ``session:<name>`` for a dashboard session, ``cli``), what (``bill.issue``, ``key.revoke``, …),
# on which object, with the request's meaningful fields (never a secret). Rows are only added.
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("actor", String(80), nullable=False),
    Column("action", String(64), nullable=False),
    Column("tenant_id", String(64), nullable=True, index=True),
    Column("target", Text, nullable=True),
    Column("details", Json, nullable=False),
    Column("request_id", String(40), nullable=True),
)

# -- bill syncs and balances (store/sync_runs.py, store/provider_bills.py) -----------------------

# One row per sync of a provider account's bill (``meterline sync --provider``, ``POST
# /api/sync``, the daily schedule), newest the highest id. A scheduled run is claimed by its
# (provider, account, cycle, day, trigger) row, so among several processes one runs a day's
# sync; other runs have no day (NULLs never clash). ``error`` is scrubbed of credentials.
sync_runs = Table(
    "sync_runs", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("cycle", String(7), nullable=False),
    Column("day", Date, nullable=True),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("lines", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("progress", Json, nullable=True),
    Column("summary", Json, nullable=True),
    UniqueConstraint("provider", "account", "cycle", "day", "trigger"),
)

# What each provider account held, as its provider said it, appended on every sync.
provider_balances = Table(
    "provider_balances", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Index("ix_provider_balances_account_at", "provider", "account", "at"),
)
