"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import meterline.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_tokens_token_hash")),
    )
    op.create_table(
        "charge_lines",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("meter", sa.String(length=32), nullable=False),
        sa.Column("quantity", meterline.store.types.Money(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("unit_price", meterline.store.types.Money(), nullable=False),
        sa.Column("per", sa.Integer(), nullable=False),
        sa.Column("amount", meterline.store.types.Money(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "line_no", name=op.f("pk_charge_lines")),
    )
    op.create_table(
        "fx_rates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("rate", meterline.store.types.Money(), nullable=False),
        sa.Column(
            "effective_from", meterline.store.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
        sa.UniqueConstraint(
            "base", "quote", "effective_from", name=op.f("uq_fx_rates_base_quote_effective_from")
        ),
    )
    op.create_table(
        "model_aliases",
        sa.Column("alias", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("billing_type", sa.String(length=16), nullable=False),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_provider"), ["provider"], unique=False)

    op.create_table(
        "price_versions",
        sa.Column("id", sa.String(length=260), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "effective_from", meterline.store.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("body", meterline.store.types.Json(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_versions")),
        sa.UniqueConstraint(
            "model_id", "effective_from", name=op.f("uq_price_versions_model_id_effective_from")
        ),
    )
    op.create_table(
        "providers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_providers")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "usage_records",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pricing", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("characters", sa.BigInteger(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("seconds", meterline.store.types.Money(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("attributes", meterline.store.types.Json(), nullable=True),
        sa.Column("cost", meterline.store.types.Money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("price_version_id", sa.String(length=260), nullable=True),
        sa.Column("billed_cost", meterline.store.types.Money(), nullable=True),
        sa.Column("billed_currency", sa.String(length=3), nullable=True),
        sa.Column("fx_rate", meterline.store.types.Money(), nullable=True),
        sa.Column("fx_missing", sa.Boolean(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("upstream_cost", meterline.store.types.Money(), nullable=True),
        sa.Column("cost_mismatch", sa.Boolean(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("tags", meterline.store.types.Json(), nullable=True),
        sa.Column("metadata", meterline.store.types.Json(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint(
            "tenant_id", "event_id", name=op.f("uq_usage_records_tenant_id_event_id")
        ),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_records_fx_missing",
            ["request_id"],
            unique=False,
            postgresql_where=sa.text("fx_missing"),
            sqlite_where=sa.text("fx_missing"),
        )
        batch_op.create_index(
            "ix_usage_records_tenant_time", ["tenant_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_usage_records_unpriced",
            ["request_id"],
            unique=False,
            postgresql_where=sa.text("pricing = 'unpriced'"),
            sqlite_where=sa.text("pricing = 'unpriced'"),
        )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("models", meterline.store.types.Json(), nullable=True),
        sa.Column("expires_at", meterline.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", meterline.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("created_at", meterline.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_users_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_users")),
    )


def downgrade() -> None:

    op.drop_table("users")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_usage_records_unpriced",
            postgresql_where=sa.text("pricing = 'unpriced'"),
            sqlite_where=sa.text("pricing = 'unpriced'"),
        )
        batch_op.drop_index("ix_usage_records_tenant_time")
        batch_op.drop_index(
            "ix_usage_records_fx_missing",
            postgresql_where=sa.text("fx_missing"),
            sqlite_where=sa.text("fx_missing"),
        )

    op.drop_table("usage_records")
    op.drop_table("tenants")
    op.drop_table("providers")
    op.drop_table("price_versions")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_provider"))

    op.drop_table("models")
    op.drop_table("model_aliases")
    op.drop_table("fx_rates")
    op.drop_table("charge_lines")
    op.drop_table("admin_tokens")
