"""Creating tenants and creating and revoking API keys — what the admin API and the CLI share:
each change and its audit entry in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from meterline.store import accounts
from meterline.store import audit as audit_store
from meterline.store.accounts import ApiKey, Tenant
from meterline.store.audit import Actor


def create_tenant(engine: Engine, name: str, currency: str, timezone: str, *,
                  actor: Actor | None) -> Tenant:
    with engine.begin() as conn:
        tenant = accounts.create_tenant(conn, name, currency, timezone)
        audit_store.record(conn, actor, "tenant.create", target=tenant.id, tenant=tenant.id,
                           details={"currency": tenant.currency, "timezone": tenant.timezone})
    return tenant


def create_key(engine: Engine, tenant: str, *, actor: Actor | None, user: str | None = None,
               models: list[str] | None = None, name: str | None = None,
               expires_at: datetime | None = None, rpm: int | None = None,
               tpm: int | None = None) -> tuple[str, ApiKey]:
    """The new key's secret (shown once; never in the audit log) and what is stored of it."""
    with engine.begin() as conn:
        secret, key = accounts.create_key(conn, tenant, user_id=user, models=models, name=name,
                                          expires_at=expires_at, rpm=rpm, tpm=tpm)
        audit_store.record(conn, actor, "key.create", target=key.id, tenant=key.tenant_id,
                           details={"user": key.user_id, "name": key.name,
                                    "models": key.models,
                                    "expires_at": expires_at.isoformat() if expires_at else None,
                                    "rpm": key.rpm, "tpm": key.tpm})
    return secret, key


def revoke_key(engine: Engine, key_id: str, *, actor: Actor | None) -> ApiKey:
    with engine.begin() as conn:
        was = accounts.find_key(conn, key_id)
        key = accounts.revoke_key(conn, key_id)  # NotFound when there is no such key
        if was is not None and was.revoked_at is None:  # a revoked key again: no change
            audit_store.record(conn, actor, "key.revoke", target=key.id, tenant=key.tenant_id,
                               details={"user": key.user_id, "name": key.name})
    return key
