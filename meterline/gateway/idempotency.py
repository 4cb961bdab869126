"""``Idempotency-Key``: a call is made once per tenant and key, across every process.

A key whose call succeeded is the ledger record's event id, so the ledger charges it once; but
making the upstream call again would have the provider charge twice while meterline bills once.
So a key already used by a successful call, or held by a call in flight, is refused with 409
before the provider is called, naming the request that has it (the answer itself is not stored,
so it cannot be replayed). Within a process the guard answers from memory; otherwise it claims
the key in the database (``store/claims.py``), where of two processes receiving the same key at
once exactly one gets it.

A call that failed does not use up its key: its claim is deleted before its answer is sent, so
the client may retry with the key. Its record carries the event id ``<key>/<request id>``, so the
retry's record (under the bare key) is not a duplicate. A call cut off by its client gives the
key back in the background, within milliseconds; the claims of a process that dies are given
back when its calls are recorded as interrupted (gateway/inflight.py: seconds after its journal
is drained), or else expire (``limits.hold_seconds``); until then the key answers 409.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from meterline.errors import Conflict, StoreError
from meterline.store import claims

log = logging.getLogger("meterline")

#: The longest key: the record of a failed call appends "/" and its request id (40 chars).
MAX_KEY = 150
RECENT = 10_000

Slot = tuple[str, str]


def failed_event_id(key: str, request_id: str) -> str:
    return f"{key}/{request_id}"


class IdempotencyGuard:
    def __init__(self, engine: Engine, claim_seconds: float) -> None:
        self.engine = engine
        self.claim_seconds = claim_seconds
        self._in_flight: dict[Slot, str] = {}
        self._recent: OrderedDict[Slot, str] = OrderedDict()
        self._releasing: dict[Slot, Future[None]] = {}
        self._releases = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="meterline-idempotency")

    async def claim(self, tenant_id: str, key: str, request_id: str) -> None:
        """Take the key for this call, or raise Conflict naming the call that has it."""
        slot = (tenant_id, key)
        holder = self._in_flight.get(slot) or self._recent.get(slot)
        if holder is None:
            await self.settled(tenant_id, key)  # a failed call here gives the key back first
            holder = await run_in_threadpool(self._claim, tenant_id, key, request_id)
        if holder is None and slot in self._in_flight:  # taken meanwhile in this process
            holder = self._in_flight[slot]
        if holder is not None:
            raise Conflict(f"Idempotency-Key {key!r} was already used by request {holder}; "
                           "send a new key for a new call", request=holder)
        self._in_flight[slot] = request_id

    def finish(self, tenant_id: str, key: str, request_id: str, succeeded: bool) -> None:
        """The call ended. A failed call's key is given back in the database, in the background
        (``settled`` waits for it)."""
        slot = (tenant_id, key)
        if self._in_flight.get(slot) == request_id:
            del self._in_flight[slot]
        if succeeded:
            self._recent[slot] = request_id
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            return
        future = self._releases.submit(self._release, tenant_id, key, request_id)
        self._releasing[slot] = future
        future.add_done_callback(lambda done: self._forget(slot, done))

    async def settled(self, tenant_id: str, key: str) -> None:
        """Wait until a failed call's key is given back (before its client hears of it)."""
        releasing = self._releasing.get((tenant_id, key))
        if releasing is not None:
            await _done(releasing)

    def close(self) -> None:
        self._releases.shutdown(wait=True)

    def _forget(self, slot: Slot, future: Future[None]) -> None:
        if self._releasing.get(slot) is future:
            del self._releasing[slot]

    def _claim(self, tenant_id: str, key: str, request_id: str) -> str | None:
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                return claims.claim(conn, tenant_id, key, request_id, now,
                                    now + timedelta(seconds=self.claim_seconds))
        except (SQLAlchemyError, StoreError) as exc:
            # Unchecked, the key could be used twice: refused (503), not let through.
            message = "cannot check the Idempotency-Key: the database is unreachable"
            raise StoreError(message, public=message) from exc

    def _release(self, tenant_id: str, key: str, request_id: str) -> None:
        try:
            with self.engine.begin() as conn:
                claims.release(conn, tenant_id, key, request_id)
        except (SQLAlchemyError, StoreError) as exc:
            log.warning("giving back Idempotency-Key %r failed (it expires instead): %s",
                        key, exc)


async def _done(future: Future[None]) -> None:
    """Wait for a future of the guard's own thread, without holding a worker thread."""
    await asyncio.wrap_future(future)
