"""The tables meterline keeps (SQLAlchemy Core), gathered from :mod:`meterline.store.tables`
(one module per concept). Alembic migrations create exactly these.

Money columns use :class:`Money` (exact on both backends); times use :class:`UtcDateTime`.
Usage records are unique per (tenant, event id) — the idempotency key of SPEC §4 — and are never
updated, except that an ``unpriced`` record gets its cost filled in once by ``rerate``.
"""

from __future__ import annotations

from meterline.store.tables.accounts import (
    admin_tokens,
    api_keys,
    server_secrets,
    sessions,
    tenants,
    users,
)
from meterline.store.tables.audit import (
    audit_log,
)
from meterline.store.tables.base import metadata
from meterline.store.tables.batches import batch_files, batches
from meterline.store.tables.billing import (
    provider_balances,
    provider_bill_lines,
    sync_runs,
)
from meterline.store.tables.bills import (
    bill_lines,
    bills,
)
from meterline.store.tables.gateway import (
    calls_started,
    idempotency_claims,
    rate_windows,
    upstream_responses,
)
from meterline.store.tables.ledger import (
    archive_state,
    charge_lines,
    charge_lines_archive,
    usage_records,
    usage_records_archive,
)
from meterline.store.tables.limits import (
    alerts,
    budget_holds,
    budget_periods,
    budgets,
    plans,
    quota_counters,
    quota_entries,
    quota_grants,
    quota_holds,
    tenant_plans,
)
from meterline.store.tables.pricing import (
    catalog_syncs,
    fx_rates,
    model_aliases,
    model_rules,
    models,
    price_versions,
    providers,
)
from meterline.store.tables.rollups import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
)

__all__ = [
    "LATENCY_BOUNDS_MS",
    "LATENCY_BUCKETS",
    "admin_tokens",
    "alerts",
    "api_keys",
    "archive_state",
    "audit_log",
    "batch_files",
    "batches",
    "bill_lines",
    "bills",
    "budget_holds",
    "budget_periods",
    "budgets",
    "calls_started",
    "catalog_syncs",
    "charge_lines",
    "charge_lines_archive",
    "fx_rates",
    "idempotency_claims",
    "metadata",
    "model_aliases",
    "model_rules",
    "models",
    "plans",
    "price_versions",
    "provider_balances",
    "provider_bill_lines",
    "providers",
    "quota_counters",
    "quota_entries",
    "quota_grants",
    "quota_holds",
    "rate_windows",
    "server_secrets",
    "sessions",
    "sync_runs",
    "tenant_plans",
    "tenants",
    "upstream_responses",
    "usage_daily",
    "usage_daily_meters",
    "usage_daily_models",
    "usage_daily_people",
    "usage_records",
    "usage_records_archive",
    "users",
]
