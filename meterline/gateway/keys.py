"""API keys on the response path: looked up once, then served from memory.

A key is checked against the database on first use and remembered for ``ttl`` seconds, so a
call adds no database round trip. A revocation still reaches every process within
``check_interval`` (1 s): revoking a key changes the key generation in the same transaction
(store/accounts.py), and the first call after the interval reads that one row, off the event
loop, and forgets every cached key if it changed. That read is at most one per interval per
process, whatever the traffic. An expiry takes effect at once (it is checked at each call).
Unknown keys are remembered too (shorter), so a flood of bad keys cannot flood the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from meterline.errors import AuthError, StoreError
from meterline.store import accounts
from meterline.store.accounts import ApiKey

UNKNOWN_TTL = 2.0
#: The longest a revoked key keeps working in a process that cached it.
CHECK_INTERVAL = 1.0
#: How long one call's claim to read a due generation stands before another call may claim it
#: (the claimant's thread may never have started: its call was cancelled).
CHECK_CLAIM_SECONDS = 0.05
#: The generation before the first read: differs from every stored one (None included), so
#: the first read forgets whatever was cached before it.
_UNREAD = object()


class KeyCache:
    def __init__(self, engine: Engine, ttl: float = 10.0, max_entries: int = 100_000,
                 check_interval: float = CHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_entries = max_entries
        self.check_interval = check_interval
        #: Monotonic seconds; tests replace it to move time without waiting.
        self.clock = clock
        self._entries: dict[str, tuple[float, ApiKey | AuthError]] = {}
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._generation: object = _UNREAD
        self._checked_at = -float("inf")
        self._check_claimed_at = -float("inf")
        #: Counts the times the cache was forgotten: a lookup that began before one must not
        #: store what it read, which may predate the revocation that caused it.
        self._epoch = 0

    def _due(self, now: float) -> bool:
        return now - self._checked_at >= self.check_interval

    def cached(self, secret: str) -> ApiKey | None:
        """The key if it is cached and usable; raises AuthError for a cached refusal. None
        sends the caller to ``load`` (in a thread): the key is unknown here, or the key
        generation is due to be read."""
        now = self.clock()
        if self._due(now) and now - self._check_claimed_at >= CHECK_CLAIM_SECONDS:
            # This call reads the generation (``load``, in a thread). The calls that find it
            # due while that read is under way are answered from the cache, as ``check``
            # would answer them, rather than each take a thread to learn so.
            self._check_claimed_at = now
            return None
        entry = self._entries.get(accounts.hash_secret(secret))
        if entry is None or entry[0] < now:
            return None
        return self._usable(entry[1])

    @staticmethod
    def _usable(found: ApiKey | AuthError) -> ApiKey:
        if isinstance(found, AuthError):
            raise found
        if not found.usable(datetime.now(UTC)):
            raise AuthError("this API key has expired")
        return found

    def check(self) -> None:
        """Read the key generation if it is due (blocking), and forget every cached key if it
        changed since the last read."""
        # One thread reads; calls arriving meanwhile are served from the cache rather than
        # queue behind it (the read may be slow while the database is struggling).
        if not self._check_lock.acquire(blocking=False):
            return
        try:
            now = self.clock()
            if not self._due(now):
                return
            try:
                with self.engine.connect() as conn:
                    generation = accounts.key_generation(conn)
            except StoreError:
                # While the database is down the known keys keep working (a revocation could
                # not be read anyway); the generation is read again an interval later.
                self._checked_at = self.clock()
                return
            if generation != self._generation:
                with self._lock:
                    self._entries.clear()
                    self._epoch += 1
                self._generation = generation
            self._checked_at = now
        finally:
            self._check_lock.release()

    def load(self, secret: str) -> ApiKey:
        """Look the key up in the database (blocking) and cache the answer."""
        self.check()
        digest = accounts.hash_secret(secret)
        entry = self._entries.get(digest)
        if entry is not None and entry[0] >= self.clock():
            return self._usable(entry[1])
        epoch = self._epoch
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
            if self._epoch == epoch:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[digest] = (self.clock() + ttl, key)
        if isinstance(key, AuthError):
            raise key
        return key
