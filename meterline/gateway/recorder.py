"""Recording gateway calls: price in memory, journal locally, drain into the ledger in batches.

``Recorder.record`` runs on the response path and touches no database: the call is priced with
the in-memory price book and appended to the durable journal (one ``write``), which survives
the process being killed. A drainer thread moves journal batches into the ledger with the same
idempotent bulk writer as ``POST /v1/usage``; the request id is the record's identity, so a batch
delivered twice is charged once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, Engine

from meterline.domain.rating import ChargeLine
from meterline.domain.usage import Meter, Usage
from meterline.errors import MeterlineError, StoreError
from meterline.gateway.idempotency import failed_event_id
from meterline.gateway.journal import Journal
from meterline.services.metering import Metering, Pricing, set_usage_columns
from meterline.store import horizon, inflight, ledger
from meterline.store.accounts import ensure_users
from meterline.store.ledger import NewRecord

log = logging.getLogger("meterline.gateway")

ZERO_USAGE = {meter.value: 0 for meter in Meter}

#: Relative difference between the upstream's own cost and ours that flags a call.
COST_TOLERANCE = Decimal("0.01")
_MONEY_COLUMNS = ("seconds", "cost", "billed_cost", "fx_rate", "upstream_cost")
_TIME_COLUMNS = ("occurred_at", "recorded_at")
_LINE_MONEY = ("quantity", "unit_price", "amount")


@dataclass
class Call:
    """What the gateway knows about one call when it ends."""

    request_id: str
    tenant_id: str
    tenant_currency: str
    key_id: str
    user_id: str | None
    requested_model: str
    model: str
    provider: str
    endpoint: str
    started_at: datetime
    status: str = "success"
    http_status: int | None = None
    error: str | None = None
    usage: Usage | None = None
    estimated: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict)
    latency_ms: int | None = None
    ttft_ms: int | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    event_id: str | None = None
    upstream_cost: Decimal | None = None
    #: The currency of ``upstream_cost``; None: that of meterline's price of the call.
    upstream_currency: str | None = None
    #: The call holds budget: its record releases the hold, so it is drained at once.
    held: bool = False
    #: The tenant's timezone, in which quota plan cycles turn.
    tenant_timezone: str = "UTC"


#: For comparing costs only (nothing stored): rounding is harmless here, and the upstream's
#: number is untrusted input, so no trap may turn a comparison into a failed call.
_COMPARE = Context(prec=40, traps=[])


def cost_differs(ours: Decimal, theirs: Decimal) -> bool:
    """True when the two costs differ by more than COST_TOLERANCE of the larger one."""
    if ours == theirs:
        return False
    with localcontext(_COMPARE):
        return abs(ours - theirs) > COST_TOLERANCE * max(abs(ours), abs(theirs))


def _upstream_differs(call: Call, theirs: Decimal, priced: Pricing) -> bool:
    """The provider's cost against meterline's in the provider's currency: the price's, or
    the tenant's billed amount; in a third currency there is nothing here to compare with."""
    assert priced.rating is not None
    currency = call.upstream_currency
    if currency is None or currency == priced.rating.currency:
        return cost_differs(priced.rating.total.number, theirs)
    if currency == priced.billed_currency and priced.billed_cost is not None:
        return cost_differs(priced.billed_cost, theirs)
    return False


def _event_id(call: Call) -> str:
    """The ledger identity: the Idempotency-Key of a successful call; a failed one leaves its
    key free for a retry (see gateway/idempotency.py)."""
    if call.event_id is None:
        return call.request_id
    if call.status == "success":
        return call.event_id
    return failed_event_id(call.event_id, call.request_id)


class Recorder:
    def __init__(self, metering: Metering, journal: Journal) -> None:
        self.metering = metering
        self.journal = journal
        #: Called after journaling a call that holds budget (the drainer's ``notify``).
        self.on_held: Callable[[], None] | None = None

    def price(self, call: Call, *, quiet: bool = False) -> Pricing:
        """The call's price; a call that cannot be priced is still recorded (unpriced, with a
        warning, for ``rerate``) — the answer has gone to the client, so it must not be lost."""
        usage = call.usage or Usage()
        try:
            return self.metering.price(call.model, usage, call.started_at, call.attributes,
                                       call.tenant_currency)
        except (MeterlineError, ArithmeticError) as exc:
            if not quiet:
                log.warning("could not price %s (%s): %s", call.request_id, call.model, exc)
            return Pricing(call.model, call.provider, None, f"not priced: {exc}", None, None,
                           None, False)

    def record(self, call: Call, priced: Pricing | None = None) -> Pricing:
        """Price and journal a call; returns the pricing (for the response headers)."""
        priced = priced or self.price(call)
        self.journal.append(journal_item(call, priced))
        if call.held and self.on_held is not None:
            self.on_held()
        return priced

    def start(self, call: Call, estimate: Usage) -> None:
        """Journal the call as started, just before the provider is called: should this
        process die before ``record``, the call is recorded as ``interrupted`` with the
        request's ``estimate`` (gateway/inflight.py)."""
        interrupted = replace(call, status="interrupted", error=INTERRUPTED, usage=estimate,
                              estimated=True)
        self.journal.append({"started": {
            "request_id": call.request_id, "tenant_id": call.tenant_id,
            "writer": self.journal.writer, "started_at": call.started_at,
            "record": journal_item(interrupted, self.price(interrupted, quiet=True))}})


#: The error of a call whose process ended between calling the provider and recording it.
INTERRUPTED = ("the gateway process ended before the call was recorded; usage estimated "
               "from the request")


def journal_item(call: Call, priced: Pricing) -> dict[str, Any]:
    """The journal line of a call: its ledger row and charge lines."""
    usage = call.usage or Usage()
    row: dict[str, Any] = {
        "request_id": call.request_id, "tenant_id": call.tenant_id,
        "event_id": _event_id(call), "user_id": call.user_id,
        "key_id": call.key_id, "endpoint": call.endpoint, "source": "gateway",
        "status": call.status, "occurred_at": call.started_at,
        "recorded_at": datetime.now(UTC), "attributes": dict(call.attributes) or None,
        "estimated": call.estimated, "http_status": call.http_status, "error": call.error,
        "latency_ms": call.latency_ms, "ttft_ms": call.ttft_ms, "tags": call.tags,
        "metadata": call.metadata, "upstream_cost": call.upstream_cost,
        "cost_mismatch": False,
    }
    row.update(ZERO_USAGE)
    set_usage_columns(row, usage)
    row.update(priced.columns())
    row["provider"] = call.provider
    if priced.rating is None:
        row["model"] = call.model
    if call.upstream_cost is not None and priced.rating is not None:
        row["cost_mismatch"] = _upstream_differs(call, call.upstream_cost, priced)
    lines = [{"meter": ln.meter, "quantity": ln.quantity, "unit": ln.unit,
              "unit_price": ln.unit_price, "per": ln.per, "amount": ln.amount}
             for ln in (priced.rating.lines if priced.rating else ())]
    return {"row": row, "lines": lines}


def record_from_journal(item: Mapping[str, Any]) -> NewRecord:
    row = dict(item["row"])
    for name in _MONEY_COLUMNS:
        if row.get(name) is not None:
            row[name] = Decimal(row[name])
    for name in _TIME_COLUMNS:
        row[name] = datetime.fromisoformat(row[name])
    lines = [ChargeLine(ln["meter"], Decimal(ln["quantity"]), ln["unit"],
                        Decimal(ln["unit_price"]), int(ln["per"]), Decimal(ln["amount"]))
             for ln in item.get("lines", [])]
    return NewRecord(row, lines)


def write_in(conn: Connection, records: Sequence[NewRecord],
             started: Sequence[Mapping[str, Any]] = ()) -> list[tuple[int, str]]:
    """Write what is new, and note the ``started`` calls not recorded yet (in this same
    transaction, so a call is never both in flight and recorded); returns (index, why) of the
    records refused as older than the archive's horizon (those already archived are
    duplicates, skipped like any other)."""
    users: dict[str, set[str]] = {}
    for record in records:
        if record.row.get("user_id"):
            users.setdefault(record.row["tenant_id"], set()).add(record.row["user_id"])
    for tenant_id in sorted(users):
        ensure_users(conn, tenant_id, users[tenant_id])
    guarded = horizon.guard(conn, records)
    ledger.write_records(conn, guarded.fresh)
    ended = {record.row["request_id"] for record in records}
    inflight.finished(conn, sorted(ended))
    starts = [item for item in started if item["request_id"] not in ended]
    inflight.note_started(conn, starts,
                          [datetime.fromisoformat(item["started_at"]) for item in starts])
    if not guarded.refused:
        return []
    assert guarded.cutoff is not None
    position = {id(record): index for index, record in enumerate(records)}
    return [(position[id(record)], horizon.refusal(guarded.cutoff))
            for record in guarded.refused]


def _write(engine: Engine, records: Sequence[NewRecord],
           started: Sequence[Mapping[str, Any]] = ()) -> list[tuple[int, str]]:
    with engine.begin() as conn:
        return write_in(conn, records, started)


def _refused_by_data(exc: StoreError) -> bool:
    """The database refused the data itself (not: the database is unreachable)."""
    cause = exc.__cause__
    return isinstance(cause, sqlite3.IntegrityError | psycopg.errors.IntegrityError
                      | psycopg.errors.DataError)


def ledger_sink(engine: Engine, rejected: Path) -> Any:
    """The drainer's sink: write journal batches into the ledger (idempotent).

    When the database is unreachable the batch fails and the drainer retries it later. When the
    database refuses one record's data, the batch is written record by record and each refused
    record is set aside in ``rejected`` (JSON lines) and logged, so it cannot hold up the rest.
    A call older than the archive's horizon (a journal left undrained for months) is set aside
    the same way, unless it is already stored (store/horizon.py).
    """

    def set_aside(item: Mapping[str, Any], record: NewRecord, message: str) -> None:
        log.error("ledger refused call %s: %s; set aside in %s",
                  record.row.get("request_id"), message, rejected)
        with rejected.open("ab") as handle:
            handle.write(orjson.dumps({"record": item, "error": message}, default=str) + b"\n")

    def sink(batch: Sequence[Mapping[str, Any]]) -> None:
        calls = [item for item in batch if "row" in item]
        started = [item["started"] for item in batch if "started" in item]
        records = [record_from_journal(item) for item in calls]
        try:
            for index, message in _write(engine, records, started):
                set_aside(calls[index], records[index], message)
            return
        except StoreError as exc:
            if not _refused_by_data(exc):
                raise
        try:
            _write(engine, [], started)
        except StoreError as exc:
            if not _refused_by_data(exc):
                raise
            # Only the marks of calls in flight are lost: their records still come.
            log.error("could not note %d calls in flight: %s", len(started), exc.message)
        for item, record in zip(calls, records, strict=True):
            try:
                for _, message in _write(engine, [record]):
                    set_aside(item, record, message)
            except StoreError as exc:
                if not _refused_by_data(exc):
                    raise
                set_aside(item, record, exc.message)

    return sink
