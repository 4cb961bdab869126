"""Providers, models and their aliases and name rules, price versions (append-only), FX rates."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, Money, UtcDateTime

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
