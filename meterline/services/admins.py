"""Admin credentials: named, revocable admin tokens, and the dashboard's sessions.

Signing in (``/login``) trades an admin token for a session; the cookie carries
``<session id>.<signature>`` — a random 256-bit id and its HMAC-SHA256 under a key the server
keeps in the database (store/sessions.py) — never the token. A cookie whose signature does not
match is refused without a lookup; the database holds only the hash of the id, so neither a
copy of the database nor of the cookie store gives the other. A session ends when it expires
(``SESSION_LIFETIME`` after sign-in, however busy), at ``/logout``, or when its admin token is
revoked; each of these is checked on every request, in every process.

Time comes from an injected clock, so that tests can move it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from meterline.errors import AuthError, Conflict
from meterline.store import accounts, audit
from meterline.store import sessions as session_store
from meterline.store.accounts import AdminToken
from meterline.store.audit import SESSION_PREFIX, Actor

SESSION_LIFETIME = timedelta(hours=12)
Clock = Callable[[], datetime]
SIGNED_OUT = "no valid session (expired, signed out or revoked): sign in again at /login"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _signature(key: bytes, session_id: str) -> str:
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


class AdminAccess:
    """Checks admin tokens and sessions against the database (no cache: a revocation counts
    at once in every process)."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._key: bytes | None = None

    def _signing_key(self) -> bytes:
        if self._key is None:
            with self.engine.begin() as conn:
                self._key = session_store.signing_key(conn, self.clock())
        return self._key

    def authenticate(self, token: str) -> AdminToken:
        """The active admin token ``token`` is, or AuthError."""
        with self.engine.begin() as conn:
            return accounts.authenticate_admin(conn, token, self.clock())

    def start_session(self, token: str) -> str:
        """Sign in with an admin token (AuthError if it is not an active one); returns the
        cookie's value."""
        key = self._signing_key()
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            found = accounts.authenticate_admin(conn, token, now)
            session_store.create(conn, session_id, found, now, now + SESSION_LIFETIME)
            audit.record(conn, Actor(found.name), "session.start", target=str(found.id))
        return f"{session_id}.{_signature(key, session_id)}"

    def _session_id(self, cookie: str) -> str | None:
        session_id, _, signature = cookie.partition(".")
        if not session_id or not hmac.compare_digest(
                signature.encode(), _signature(self._signing_key(), session_id).encode()):
            return None
        return session_id

    def session(self, cookie: str) -> AdminToken:
        """The admin token of the live session ``cookie`` names, or AuthError."""
        session_id = self._session_id(cookie)
        if session_id is None:
            raise AuthError(SIGNED_OUT)
        now = self.clock()
        with self.engine.begin() as conn:
            found = session_store.find(conn, session_id, now)
            if found is None:
                raise AuthError(SIGNED_OUT)
            accounts.note_admin_use(conn, found, now)
        return found

    def end_session(self, cookie: str) -> None:
        """``/logout``: the session is revoked, whoever holds a copy of its cookie."""
        session_id = self._session_id(cookie)
        if session_id is not None:
            now = self.clock()
            with self.engine.begin() as conn:
                found = session_store.find(conn, session_id, now)
                session_store.revoke(conn, session_id, now)
                if found is not None:  # a live session ended (not a stale cookie)
                    audit.record(conn, Actor(SESSION_PREFIX + found.name), "session.end",
                                 target=str(found.id))


def create_token(engine: Engine, name: str, *, actor: Actor | None
                 ) -> tuple[str, AdminToken]:
    """A new admin token (shown once; never in the audit log) and what is stored of it."""
    with engine.begin() as conn:
        token, stored = accounts.create_admin_token(conn, name)
        audit.record(conn, actor, "admin_token.create", target=str(stored.id),
                     details={"name": stored.name})
    return token, stored


def list_tokens(engine: Engine) -> list[AdminToken]:
    with engine.connect() as conn:
        return accounts.list_admin_tokens(conn)


def revoke_token(engine: Engine, ref: str, *, actor: Actor | None) -> AdminToken:
    """Revoke the admin token with id (or active name) ``ref``, and its sessions."""
    with engine.begin() as conn:
        found = accounts.find_admin_token(conn, ref)
        active = found.revoked_at is None
        if active and accounts.active_admin_token_count(conn) <= 1:
            # Nobody could sign in to the admin API any more (the CLI still could).
            raise Conflict(f"admin token {found.name!r} is the last active one: create another "
                           "first (meterline admin-tokens create)", token=str(found.id))
        stored = accounts.revoke_admin_token(conn, ref)
        if active:  # a revoked token again: no change
            audit.record(conn, actor, "admin_token.revoke", target=str(stored.id),
                         details={"name": stored.name})
    return stored
