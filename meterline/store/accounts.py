"""Tenants, users, API keys and admin tokens.

Keys and admin tokens are random, shown once and stored as SHA-256 hashes; a lookup hashes the
presented secret. A key is usable while it is neither revoked nor expired.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from meterline.domain.money import currency_code
from meterline.errors import AuthError, Conflict, InvalidInput, NotFound, UnknownTenant
from meterline.store.schema import admin_tokens, api_keys, tenants, users
from meterline.store.upsert import insert_ignore

KEY_PREFIX = "ml-"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    currency: str
    timezone: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.id, "currency": self.currency,
                "timezone": self.timezone, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    user_id: str | None
    name: str | None
    prefix: str
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    rpm: int | None = None
    tpm: int | None = None

    def usable(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "tenant": self.tenant_id, "user": self.user_id, "name": self.name,
            "prefix": self.prefix, "models": self.models,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "created_at": self.created_at.isoformat(), "rpm": self.rpm, "tpm": self.tpm,
        }


def create_tenant(conn: Connection, name: str, currency: str = "USD",
                  timezone: str = "UTC") -> Tenant:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput("name: 1-64 letters, digits, '-', '_' or '.'", field="name")
    code = currency_code(currency)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone: unknown timezone {timezone!r}", field="timezone") from None
    tenant = Tenant(name, code, timezone, _now())
    try:
        with conn.begin_nested():
            conn.execute(tenants.insert().values(id=name, currency=code, timezone=timezone,
                                                 created_at=tenant.created_at))
    except IntegrityError:
        raise Conflict(f"tenant {name!r} already exists", tenant=name) from None
    return tenant


def _tenant(row: Any) -> Tenant:
    return Tenant(row.id, row.currency, row.timezone, row.created_at)


def get_tenant(conn: Connection, tenant_id: str) -> Tenant:
    row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise UnknownTenant(f"unknown tenant {tenant_id!r}", tenant=tenant_id)
    return _tenant(row)


def list_tenants(conn: Connection) -> list[Tenant]:
    return [_tenant(r) for r in conn.execute(select(tenants).order_by(tenants.c.id))]


def ensure_users(conn: Connection, tenant_id: str, user_ids: set[str]) -> None:
    if user_ids:
        now = _now()
        conn.execute(insert_ignore(conn, users, ["tenant_id", "id"]),
                     [{"tenant_id": tenant_id, "id": u, "created_at": now}
                      for u in sorted(user_ids)])  # one lock order for every writer


def list_users(conn: Connection, tenant_id: str) -> list[str]:
    get_tenant(conn, tenant_id)
    rows = conn.execute(select(users.c.id).where(users.c.tenant_id == tenant_id)
                        .order_by(users.c.id))
    return [r.id for r in rows]


def create_key(conn: Connection, tenant_id: str, *, user_id: str | None = None,
               models: list[str] | None = None, name: str | None = None,
               expires_at: datetime | None = None, rpm: int | None = None,
               tpm: int | None = None) -> tuple[str, ApiKey]:
    """Returns the secret (shown once) and the stored key."""
    for limit, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 < value <= 10**12):
            raise InvalidInput(f"{limit}: must be a whole number above zero", field=limit)
    # Empty names would widen what a key is bound to: "" is no user, and no model.
    if user_id is not None and not user_id:
        raise InvalidInput("user: must not be empty (leave it out for a key of no user)",
                           field="user")
    if models is not None and not all(isinstance(m, str) and m for m in models):
        raise InvalidInput("models: model names must not be empty", field="models")
    get_tenant(conn, tenant_id)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at: needs a timezone", field="expires_at")
    if user_id:
        ensure_users(conn, tenant_id, {user_id})
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id="key_" + secrets.token_hex(8), tenant_id=tenant_id, user_id=user_id,
                 name=name, prefix=secret[:10], models=models or None, expires_at=expires_at,
                 revoked_at=None, created_at=_now(), rpm=rpm, tpm=tpm)
    conn.execute(api_keys.insert().values(
        id=key.id, tenant_id=tenant_id, user_id=user_id, name=name, prefix=key.prefix,
        key_hash=hash_secret(secret), models=key.models, expires_at=expires_at,
        created_at=key.created_at, rpm=rpm, tpm=tpm,
    ))
    return secret, key


def _key(row: Any) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, row.user_id, row.name, row.prefix, row.models,
                  row.expires_at, row.revoked_at, row.created_at, row.rpm, row.tpm)


def list_keys(conn: Connection, tenant_id: str | None = None) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if tenant_id is not None:
        get_tenant(conn, tenant_id)
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return [_key(r) for r in conn.execute(query)]


def revoke_key(conn: Connection, key_id: str) -> ApiKey:
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"unknown key {key_id!r}", key=key_id)
    if row.revoked_at is None:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=_now()))
    return _key(conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one())


def authenticate_key(conn: Connection, secret: str) -> ApiKey:
    """The usable key for a presented secret, or AuthError."""
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_secret(secret))).first()
    if row is None:
        raise AuthError("invalid API key")
    key = _key(row)
    if key.revoked_at is not None:
        raise AuthError("this API key has been revoked")
    if not key.usable(_now()):
        raise AuthError("this API key has expired")
    return key


def admin_token_count(conn: Connection) -> int:
    return len(conn.execute(select(admin_tokens.c.id)).all())


def add_admin_token(conn: Connection, token: str) -> None:
    conn.execute(insert_ignore(conn, admin_tokens, ["token_hash"]),
                 [{"token_hash": hash_secret(token), "created_at": _now()}])


def admin_token_valid(conn: Connection, token: str) -> bool:
    found = conn.execute(select(admin_tokens.c.id)
                         .where(admin_tokens.c.token_hash == hash_secret(token))).first()
    return found is not None
