"""``Idempotency-Key``: a call is made once per tenant and key.

A key whose call succeeded is the ledger record's event id, so the ledger charges it once; but
making the upstream call again would have the provider charge twice while meterline bills once.
So a key already used by a successful call — in flight in this process, recently finished here,
or in the ledger — is refused with 409 before the provider is called, naming the request that
used it (the answer itself is not stored, so it cannot be replayed).

A call that failed does not use up its key: the client may retry with it. Its record carries the
event id ``<key>/<request id>``, so the retry's record (under the bare key) is not a duplicate.

Known gap: two processes receiving the same key at the same moment, before either call is in the
ledger, both call the provider (the ledger still records one success under the key).
"""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy import Engine, select, union_all
from starlette.concurrency import run_in_threadpool

from meterline.errors import Conflict
from meterline.store.schema import usage_records, usage_records_archive

#: The longest key: the record of a failed call appends "/" and its request id (40 chars).
MAX_KEY = 150
RECENT = 10_000


def failed_event_id(key: str, request_id: str) -> str:
    return f"{key}/{request_id}"


class IdempotencyGuard:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._in_flight: dict[tuple[str, str], str] = {}
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def claim(self, tenant_id: str, key: str, request_id: str) -> None:
        """Take the key for this call, or raise Conflict naming the call that has it."""
        slot = (tenant_id, key)
        holder = self._in_flight.get(slot) or self._recent.get(slot)
        if holder is None:
            holder = await run_in_threadpool(self._stored, tenant_id, key)
        if holder is not None or slot in self._in_flight:
            holder = holder or self._in_flight[slot]
            raise Conflict(f"Idempotency-Key {key!r} was already used by request {holder}; "
                           "send a new key for a new call", request=holder)
        self._in_flight[slot] = request_id

    def finish(self, tenant_id: str, key: str, request_id: str, succeeded: bool) -> None:
        slot = (tenant_id, key)
        if self._in_flight.get(slot) == request_id:
            del self._in_flight[slot]
        if succeeded:
            self._recent[slot] = request_id
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def _stored(self, tenant_id: str, key: str) -> str | None:
        # The ledger's records, hot or archived (one round trip).
        found = union_all(*(select(t.c.request_id).where(t.c.tenant_id == tenant_id,
                                                         t.c.event_id == key)
                            for t in (usage_records, usage_records_archive)))
        with self.engine.connect() as conn:
            row = conn.execute(found.limit(1)).first()
        return row.request_id if row is not None else None
