"""Refunds: a usage record is refunded by a new ledger record, never by an edit.

The refund record has event id ``refund:<request id>`` (so a record is refunded at most once,
however often the refund is asked for), source ``refund``, status ``refunded``, the original's
tenant, user, key, provider, model, price snapshot, FX rate and ``occurred_at`` (so it lands on
the same tenant-local day and cycle), zero usage quantities, negated cost and billed cost, and
the original's charge lines negated. It is written through ``ledger.write_records`` like any
record: budgets get the money back, quotas see no units, the rollups keep its lines apart as
refund lines, and a bill shows them as negative lines (as an adjustment when the cycle was
already issued).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, Engine

from meterline.domain.money import format_decimal
from meterline.domain.rating import ChargeLine
from meterline.domain.usage import Meter
from meterline.errors import Conflict, InvalidInput, NotFound, StoreError
from meterline.services.metering import new_request_id
from meterline.services.records import UsageRecordView
from meterline.store import audit, horizon, ledger
from meterline.store.audit import Actor
from meterline.store.ledger import NewRecord
from meterline.store.rollup_writes import REFUND_SOURCE

REFUNDED: Final = "refunded"
EVENT_PREFIX: Final = "refund:"
MAX_REASON: Final = 1000
WRITE_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Refund:
    """The refund record of ``refund_of``; ``duplicate`` when it was refunded before (the
    earlier refund, nothing written now)."""

    refund_of: str
    duplicate: bool
    refund: UsageRecordView

    def to_json(self) -> dict[str, Any]:
        return {"refund_of": self.refund_of, "duplicate": self.duplicate,
                "refund": self.refund.to_json()}


def _original(conn: Connection, request_id: str) -> tuple[Any, list[Any]]:
    """The record to refund (hot or archived) and its charge lines."""
    found = ledger.find_record(conn, request_id)
    if found is None:
        raise NotFound(f"request_id: no usage record {request_id!r}", field="request_id")
    row, lines = found
    if row.source == REFUND_SOURCE:
        raise InvalidInput(f"request_id: {request_id} is itself a refund (of "
                           f"{row.event_id.removeprefix(EVENT_PREFIX)}); refund the original "
                           "record once", field="request_id")
    if row.pricing == ledger.UNPRICED:
        raise Conflict(f"request_id: {request_id} is unpriced, so nothing was charged yet; "
                       "price it with `meterline rerate` first, then refund it",
                       field="request_id")
    return row, lines


def _audited(amount: Decimal | None) -> str | None:
    return None if amount is None else format_decimal(amount)


def _negated(value: Any) -> Any:
    return None if value is None else value.copy_negate()


def refund_record(original: Any, lines: list[Any], reason: str | None,
                  now: datetime) -> NewRecord:
    """The new record that refunds ``original`` (a stored row) and its charge ``lines``."""
    row = dict(original._mapping)
    metadata = dict(row["metadata"] or {})
    metadata["refund_of"] = original.request_id
    if reason:
        metadata["refund_reason"] = reason
    row.update({m.value: 0 for m in Meter})
    row.update({
        "request_id": new_request_id(), "event_id": EVENT_PREFIX + original.request_id,
        "source": REFUND_SOURCE, "status": REFUNDED, "recorded_at": now,
        "cost": _negated(row["cost"]), "billed_cost": _negated(row["billed_cost"]),
        "upstream_cost": None, "cost_mismatch": False, "estimated": False, "http_status": None,
        "error": None, "warning": None, "latency_ms": None, "ttft_ms": None,
        "metadata": metadata,
    })
    row["seconds"] = 0
    negated = [ChargeLine(line.meter, line.quantity.copy_negate(), line.unit, line.unit_price,
                          line.per, line.amount.copy_negate()) for line in lines]
    return NewRecord(row, negated)


def refund(engine: Engine, request_id: object, reason: object = None,
           now: datetime | None = None, *, actor: Actor | None) -> Refund:
    """Refund a usage record; asked again, the answer is the same refund with ``duplicate``
    true (nothing is refunded twice)."""
    if not isinstance(request_id, str) or not request_id.strip() or len(request_id) > 40:
        raise InvalidInput("request_id: give a usage record's request id", field="request_id")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidInput(f"reason: text of at most {MAX_REASON} characters", field="reason")
    at = now or datetime.now(UTC)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            with engine.begin() as conn:
                original, lines = _original(conn, request_id)
                record = refund_record(original, lines, reason or None, at)
                # A refund counts on its original's day even when that is older than the
                # archive's horizon (the original archived); one already archived is found.
                guarded = horizon.guard(conn, [record])
                inserted = ledger.write_records(conn, [*guarded.fresh, *guarded.refused])
                event_id = record.row["event_id"]
                stored = ledger.record_of_event(conn, original.tenant_id, event_id)
                found = ledger.lines_of(conn, [stored.request_id],
                                        archived=True)[stored.request_id]
                shown = UsageRecordView.of_row(stored, found)
                duplicate = event_id not in inserted
                if not duplicate:  # asked again: nothing changed
                    audit.record(conn, actor, "usage.refund", target=request_id,
                                 tenant=stored.tenant_id, details={
                                     "reason": reason or None,
                                     "refund_request_id": stored.request_id,
                                     "cost": _audited(shown.cost),
                                     "currency": shown.currency})
            return Refund(request_id, duplicate, shown)
        except StoreError as exc:
            # A lock conflict with another writer: the database decides duplicates, so
            # writing again is safe.
            if not exc.context.get("retryable") or attempt == WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
