"""Tenants, users, API keys and admin tokens.

Keys and admin tokens are random, shown once and stored as SHA-256 hashes; a lookup hashes the
presented secret. A key is usable while it is neither revoked nor expired; an admin token while
it is not revoked (revoking it ends its dashboard sessions too).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from meterline.domain.money import currency_code
from meterline.errors import AuthError, Conflict, InvalidInput, NotFound, UnknownTenant
from meterline.store.schema import (
    admin_tokens,
    api_keys,
    server_secrets,
    sessions,
    tenants,
    users,
)
from meterline.store.upsert import insert_ignore, upsert

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


def find_key(conn: Connection, key_id: str) -> ApiKey | None:
    """A key by its id (never its secret), or None."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return None if row is None else _key(row)


def has_user(conn: Connection, tenant_id: str, user_id: str) -> bool:
    """Whether the tenant has had this user (users are recorded as their calls arrive)."""
    c = users.c
    return conn.execute(select(c.id).where(c.tenant_id == tenant_id,
                                           c.id == user_id)).first() is not None


def revoke_key(conn: Connection, key_id: str) -> ApiKey:
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"unknown key {key_id!r}", key=key_id)
    if row.revoked_at is None:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=_now()))
        bump_key_generation(conn)
    return _key(conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one())


#: The ``server_secrets`` row whose value changes whenever a stored key stops being what the
#: gateways cached (a revocation): each gateway process reads it about once a second and forgets
#: its cached keys when it changed (gateway/keys.py). It is not secret; the table is simply the
#: one small name/value table every process shares.
KEY_GENERATION = "api_key_generation"


def bump_key_generation(conn: Connection) -> None:
    """Tell every gateway process to forget its cached keys. Call it in the transaction that
    changes a key, so that no process can read the new generation before the change."""
    # A random value rather than a counter: no read-modify-write, so concurrent bumps need no
    # retry, and any two values differ.
    statement = upsert(conn, server_secrets)
    conn.execute(statement.values(name=KEY_GENERATION, value=secrets.token_hex(16),
                                  created_at=_now())
                 .on_conflict_do_update(index_elements=["name"],
                                        set_={"value": statement.excluded.value,
                                              "created_at": statement.excluded.created_at}))


def key_generation(conn: Connection) -> str | None:
    """The current key generation (None until the first key is revoked)."""
    value: str | None = conn.execute(select(server_secrets.c.value)
                                     .where(server_secrets.c.name == KEY_GENERATION)).scalar()
    return value


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


@dataclass(frozen=True, slots=True)
class AdminToken:
    """An admin token as stored: never the token itself, which is shown once."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat(),
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


ADMIN_TOKEN_PREFIX = "mla-"
#: The name of the token the config (or METERLINE_ADMIN_TOKEN) gives, stored at each start.
CONFIGURED = "config"
#: A token's last use is written at most this often (a read per request, a write per minute).
LAST_USE_RESOLUTION = timedelta(minutes=1)


def _admin_token(row: Any) -> AdminToken:
    return AdminToken(row.id, row.name, row.created_at, row.last_used_at, row.revoked_at)


def _token_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput("name: 1-64 letters, digits, '-', '_' or '.'", field="name")
    return name


def active_admin_token_count(conn: Connection) -> int:
    c = admin_tokens.c
    return len(conn.execute(select(c.id).where(c.revoked_at.is_(None))).all())


def add_admin_token(conn: Connection, token: str, name: str = CONFIGURED,
                    now: datetime | None = None) -> AdminToken:
    """Store ``token`` unless it is stored already (a revoked one stays revoked)."""
    conn.execute(insert_ignore(conn, admin_tokens, ["token_hash"]),
                 [{"token_hash": hash_secret(token), "name": name,
                   "created_at": now or _now()}])
    row = conn.execute(select(admin_tokens)
                       .where(admin_tokens.c.token_hash == hash_secret(token))).one()
    return _admin_token(row)


def create_admin_token(conn: Connection, name: str, now: datetime | None = None
                       ) -> tuple[str, AdminToken]:
    """A new random admin token named ``name`` (no active token may have the name): the token,
    to show once, and what is stored."""
    _token_name(name)
    c = admin_tokens.c
    taken = conn.execute(select(c.id).where(c.name == name, c.revoked_at.is_(None))).first()
    if taken is not None:
        raise Conflict(f"an active admin token is named {name!r} already (id {taken.id})",
                       field="name")
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, add_admin_token(conn, token, name, now)


def list_admin_tokens(conn: Connection) -> list[AdminToken]:
    return [_admin_token(r) for r in conn.execute(select(admin_tokens)
                                                  .order_by(admin_tokens.c.id))]


def find_admin_token(conn: Connection, ref: str) -> AdminToken:
    """The admin token with id ``ref``, else the one active token named ``ref``."""
    c = admin_tokens.c
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:
        row = conn.execute(select(admin_tokens).where(c.id == int(ref))).first()
        if row is not None:
            return _admin_token(row)
    rows = conn.execute(select(admin_tokens).where(c.name == ref, c.revoked_at.is_(None))
                        .order_by(c.id)).all()
    if len(rows) > 1:
        raise InvalidInput(f"several active admin tokens are named {ref!r} (ids "
                           f"{', '.join(str(r.id) for r in rows)}): name one by its id",
                           field="token")
    if not rows:
        raise NotFound(f"no admin token with id or active name {ref!r}", token=ref)
    return _admin_token(rows[0])


def revoke_admin_token(conn: Connection, ref: str, now: datetime | None = None) -> AdminToken:
    """Revoke an admin token (by id or active name) and end every session it signed in."""
    token = find_admin_token(conn, ref)
    if token.revoked_at is None:
        when = now or _now()
        conn.execute(update(admin_tokens).where(admin_tokens.c.id == token.id)
                     .values(revoked_at=when))
        conn.execute(update(sessions).where(sessions.c.admin_token_id == token.id,
                                            sessions.c.revoked_at.is_(None))
                     .values(revoked_at=when))
        token = _admin_token(conn.execute(select(admin_tokens)
                                          .where(admin_tokens.c.id == token.id)).one())
    return token


def authenticate_admin(conn: Connection, token: str, now: datetime | None = None
                       ) -> AdminToken:
    """The active admin token ``token`` is, or AuthError; notes its use."""
    row = conn.execute(select(admin_tokens)
                       .where(admin_tokens.c.token_hash == hash_secret(token))).first()
    if row is None:
        raise AuthError("invalid admin token")
    found = _admin_token(row)
    if found.revoked_at is not None:
        raise AuthError("this admin token has been revoked")
    note_admin_use(conn, found, now or _now())
    return found


def note_admin_use(conn: Connection, token: AdminToken, now: datetime) -> None:
    """Record that ``token`` was used, if its last use is older than LAST_USE_RESOLUTION."""
    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_RESOLUTION:
        conn.execute(update(admin_tokens).where(admin_tokens.c.id == token.id)
                     .values(last_used_at=now))
