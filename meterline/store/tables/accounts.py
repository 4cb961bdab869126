"""Tenants, their users and API keys; admin tokens, dashboard sessions and the server's secrets."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, UtcDateTime

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
