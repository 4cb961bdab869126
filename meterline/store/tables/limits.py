"""Spend control: budgets, their periods, holds and alerts; quotas (prepaid allowances)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
