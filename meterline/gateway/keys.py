"""API keys on the response path: looked up once, then served from memory.

A key is checked against the database on first use and remembered for ``ttl`` seconds, so a
call adds no database round trip; a revocation or expiry takes effect within ``ttl``. Unknown
keys are remembered too (shorter), so a flood of bad keys cannot flood the database.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine

from meterline.errors import AuthError, StoreError
from meterline.store import accounts
from meterline.store.accounts import ApiKey

UNKNOWN_TTL = 2.0


class KeyCache:
    def __init__(self, engine: Engine, ttl: float = 10.0, max_entries: int = 100_000) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, ApiKey | AuthError]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> ApiKey | None:
        """The key if it is cached and usable; raises AuthError for a cached refusal."""
        entry = self._entries.get(accounts.hash_secret(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        found = entry[1]
        if isinstance(found, AuthError):
            raise found
        if not found.usable(datetime.now(UTC)):
            raise AuthError("this API key has expired")
        return found

    def load(self, secret: str) -> ApiKey:
        """Look the key up in the database (blocking) and cache the answer."""
        digest = accounts.hash_secret(secret)
        try:
            with self.engine.connect() as conn:
                key: ApiKey | AuthError = accounts.authenticate_key(conn, secret)
            ttl = self.ttl
        except AuthError as exc:
            key, ttl = exc, UNKNOWN_TTL
        except StoreError:
            # While the database is down a key known before keeps working (a revocation could
            # not be read anyway), and is looked up again a little later; an unknown one is a
            # 503, since it cannot be checked.
            stale = self._entries.get(digest)
            if stale is None:
                raise
            key, ttl = stale[1], UNKNOWN_TTL
            if isinstance(key, AuthError):
                raise key from None
            if not key.usable(datetime.now(UTC)):
                raise AuthError("this API key has expired") from None
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + ttl, key)
        if isinstance(key, AuthError):
            raise key
        return key
