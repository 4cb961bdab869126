"""The bill of a batch that has ended: one record per succeeded result line, exactly once
(see gateway/batches.py for the rules; this is how they are kept)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from meterline.domain.usage import Usage
from meterline.errors import MeterlineError, StoreError
from meterline.gateway.batches import ATTRIBUTES, CLAIM_SECONDS, ENDPOINT, bill_request_id
from meterline.gateway.recorder import Call
from meterline.gateway.state import GatewayState
from meterline.providers.usage import UsageReading, upstream_cost_at
from meterline.store import batches as store
from meterline.store.batches import StoredBatch

log = logging.getLogger("meterline.gateway")


def jsonl_objects(raw: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of a provider's results file, a line each (a line that is no object is
    skipped: it bills nothing)."""
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict):
            yield item


@dataclass(frozen=True, slots=True)
class Result:
    """A succeeded line of a batch's results: its custom id, its usage as read from the
    answer (the provider's reader for its wire format), and the answer itself."""

    custom_id: str
    reading: UsageReading
    answer: Mapping[str, Any]


#: Reads an ended batch's results from the provider (None: not available yet).
Fetch = Callable[[], Awaitable[Iterable[Result] | None]]


async def bill_once(state: GatewayState, batch: StoredBatch, fetch: Fetch) -> int | None:
    """Bill an ended batch if nobody has: returns how many lines were billed, or None when
    another poller holds the bill, it was billed already, or the results could not be read."""
    if batch.billed_at is not None:
        return None
    engine = state.metering.engine
    now = datetime.now(UTC)

    def claim() -> bool:
        with engine.begin() as conn:
            return store.claim_billing(conn, batch.batch_id, now,
                                       now + timedelta(seconds=CLAIM_SECONDS))

    if not await run_in_threadpool(claim):
        return None
    try:
        results = await fetch()
    except MeterlineError as exc:
        log.warning("results of batch %s not read (%s); a later poll bills it",
                    batch.batch_id, exc.message)
        results = None
    if results is None:
        await _release(state, batch)
        return None
    calls = [_call(state, batch, result) for result in results
             if result.custom_id in batch.pending.get("lines", {})]
    # Journaled before the batch is marked billed: a process dying in between leaves the
    # claim to run out, and the next poller journals the same request ids, kept once.
    for call in calls:
        state.recorder.record(call)

    def mark() -> None:
        with engine.begin() as conn:
            store.mark_billed(conn, batch.batch_id, datetime.now(UTC), len(calls))

    try:
        await run_in_threadpool(mark)
    except StoreError as exc:
        log.warning("batch %s billed, but not marked so (%s): a later poll journals its bill "
                    "again, which the ledger keeps once", batch.batch_id, exc.message)
    return len(calls)


async def _release(state: GatewayState, batch: StoredBatch) -> None:
    engine = state.metering.engine

    def release() -> None:
        with engine.begin() as conn:
            store.release_claim(conn, batch.batch_id)

    try:
        await run_in_threadpool(release)
    except StoreError as exc:  # the claim runs out instead
        log.warning("claim on batch %s not released: %s", batch.batch_id, exc.message)


def _call(state: GatewayState, batch: StoredBatch, result: Result) -> Call:
    pending = batch.pending
    line = pending["lines"][result.custom_id]
    usage, estimated = result.reading.usage, False
    if usage is None:
        # The provider read the prompt at least; its answer does not say what it used.
        usage, estimated = Usage.of(input_tokens=int(line.get("estimate") or 0)), True
    provider = state.router.providers.get(batch.provider)
    metadata = {**(pending.get("metadata") or {}), "batch_id": batch.batch_id,
                "custom_id": result.custom_id}
    return Call(
        request_id=bill_request_id(batch.batch_id, result.custom_id),
        tenant_id=batch.tenant_id, tenant_currency=pending["tenant_currency"],
        key_id=batch.key_id, user_id=batch.user_id, requested_model=line["requested"],
        model=line["model"], provider=batch.provider, endpoint=ENDPOINT,
        started_at=batch.created_at, status="success", http_status=200, usage=usage,
        estimated=estimated, attributes=dict(ATTRIBUTES),
        latency_ms=int((datetime.now(UTC) - batch.created_at).total_seconds() * 1000),
        tags=pending.get("tags"), metadata=metadata,
        upstream_cost=upstream_cost_at(result.answer, provider.cost_path) if provider else None,
        upstream_currency=provider.cost_currency if provider else None,
        tenant_timezone=pending.get("tenant_timezone") or "UTC")
