"""Dashboard sessions and the key their cookies are signed with (services/admins.py).

A session is a row keyed by the SHA-256 of its random id (the cookie's id is never stored), tied
to the admin token that signed in: it is valid until it expires, is revoked (``/logout``), or its
admin token is revoked.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from meterline.store.accounts import AdminToken, hash_secret
from meterline.store.schema import admin_tokens, server_secrets, sessions
from meterline.store.upsert import insert_ignore

SIGNING_KEY = "session_signing_key"


def signing_key(conn: Connection, now: datetime) -> bytes:
    """The key session cookies are signed with: made by the first process that asks, the same
    for every process after."""
    conn.execute(insert_ignore(conn, server_secrets, ["name"]),
                 [{"name": SIGNING_KEY, "value": secrets.token_hex(32), "created_at": now}])
    value = conn.execute(select(server_secrets.c.value)
                         .where(server_secrets.c.name == SIGNING_KEY)).scalar_one()
    return bytes.fromhex(value)


def create(conn: Connection, session_id: str, token: AdminToken, now: datetime,
           expires_at: datetime) -> None:
    conn.execute(sessions.insert().values(id_hash=hash_secret(session_id),
                                          admin_token_id=token.id, created_at=now,
                                          expires_at=expires_at))


def find(conn: Connection, session_id: str, now: datetime) -> AdminToken | None:
    """The admin token of a live session: unexpired, not revoked, its token not revoked."""
    s, t = sessions.c, admin_tokens.c
    row: Any = conn.execute(
        select(t.id, t.name, t.created_at, t.last_used_at, t.revoked_at)
        .select_from(sessions.join(admin_tokens, s.admin_token_id == t.id))
        .where(s.id_hash == hash_secret(session_id), s.revoked_at.is_(None),
               s.expires_at > now, t.revoked_at.is_(None))).first()
    if row is None:
        return None
    return AdminToken(row.id, row.name, row.created_at, row.last_used_at, row.revoked_at)


def revoke(conn: Connection, session_id: str, now: datetime) -> None:
    conn.execute(update(sessions).where(sessions.c.id_hash == hash_secret(session_id),
                                        sessions.c.revoked_at.is_(None))
                 .values(revoked_at=now))


def delete_ended(conn: Connection, now: datetime) -> int:
    """Forget sessions that expired or were revoked (a revoked one cannot come back)."""
    s = sessions.c
    done = conn.execute(delete(sessions).where(or_(s.expires_at <= now,
                                                   s.revoked_at.is_not(None))))
    return int(done.rowcount or 0)
