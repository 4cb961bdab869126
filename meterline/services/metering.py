"""Metering: turn usage into priced, idempotent ledger records.

Shared by the HTTP API, the CLI and (later) the gateway. It keeps the price book and FX table in
memory and reloads them when another process has added prices or rates (see
``store.pricing.generation``), checked at most once per ``refresh_seconds``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine

from meterline.domain.events import CallStatus, UsageEvent, parse_event
from meterline.domain.fx import FxTable
from meterline.domain.money import convert_lines, format_decimal
from meterline.domain.pricebook import PriceBook
from meterline.domain.rating import Rating
from meterline.domain.usage import Meter, Usage
from meterline.errors import FxRateMissing, InvalidInput, NotFound, StoreError
from meterline.store import horizon, ledger, pricing
from meterline.store.accounts import Tenant, ensure_users, get_tenant
from meterline.store.ledger import PRICED, UNPRICED, NewRecord

USAGE_COLUMNS = tuple(m.value for m in Meter)
WRITE_ATTEMPTS = 3
MAX_KNOWN_USERS = 100_000
_METER_COLUMN = {m: m.value for m in Meter}
_STATUS_NAMES = {s: s.value for s in CallStatus}
#: A usage record with every optional column empty; each new row starts as a copy.
_BLANK_ROW: dict[str, Any] = {
    "endpoint": None, "estimated": False, "http_status": None, "error": None,
    "upstream_cost": None, "cost_mismatch": False,
    "latency_ms": None, "ttft_ms": None, **{m.value: 0 for m in Meter},
}


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """An event with a ledger record: written now, or before (``duplicate``: nothing
    written, the earlier record's request id, cost and pricing)."""

    id: str
    request_id: str
    cost: Decimal | None
    currency: str | None
    pricing: str
    duplicate: bool
    warning: str | None = None
    #: Priced, but not yet in the tenant's currency: no stored rate covered the call
    #: (`meterline rerate` converts it once one does).
    fx_missing: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "request_id": self.request_id,
            "cost": format_decimal(self.cost) if self.cost is not None else None,
            "currency": self.currency, "duplicate": self.duplicate, "status": self.pricing,
        }
        if self.warning:
            out["warning"] = self.warning
        if self.fx_missing:
            out["fx_missing"] = True
        return out


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    """An event not recorded: invalid, or older than the archived period."""

    #: As the client sent it: an invalid event's id may be missing or not even a string.
    id: object
    error: str
    field: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error, "field": self.field}


IngestResult = AcceptedEvent | RefusedEvent


_PROCESS_TAG = secrets.token_hex(4)
_sequence = itertools.count()


def set_usage_columns(row: dict[str, Any], usage: Usage) -> None:
    """Write a call's quantities into a ledger row (which starts with every meter at 0)."""
    for meter, quantity in usage.quantities.items():
        row[_METER_COLUMN[meter]] = quantity if meter is Meter.SECONDS else int(quantity)


def new_request_id() -> str:
    """Unique without coordination and roughly time-ordered: ns clock, a random tag drawn once
    per process, and a per-process counter."""
    return f"req_{time.time_ns():016x}{_PROCESS_TAG}{next(_sequence) & 0xFFFFFF:06x}"


class Pricing(NamedTuple):
    """The outcome of pricing one call, ready to be stored."""

    model: str
    provider: str
    rating: Rating | None
    warning: str | None
    billed_cost: Decimal | None
    billed_currency: str | None
    fx_rate: Decimal | None
    fx_missing: bool

    def columns(self) -> dict[str, Any]:
        r = self.rating
        return {
            "model": self.model, "provider": self.provider,
            "pricing": PRICED if r else UNPRICED,
            "cost": r.total.number if r else None, "currency": r.currency if r else None,
            "price_version_id": r.price_version.id if r else None,
            "billed_cost": self.billed_cost, "billed_currency": self.billed_currency,
            "fx_rate": self.fx_rate, "fx_missing": self.fx_missing, "warning": self.warning,
        }


class Metering:
    def __init__(self, engine: Engine, refresh_seconds: float = 2.0) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._book = PriceBook()
        self._fx = FxTable()
        self._generation: tuple[object, ...] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._known_users: set[tuple[str, str]] = set()

    # -- prices and rates ---------------------------------------------------------------
    def refresh(self, conn: Connection | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_seconds:
            return
        with self._lock:
            if conn is None:
                with self.engine.connect() as own:
                    self._reload(own)
            else:
                self._reload(conn)
            self._checked = now

    def _reload(self, conn: Connection) -> None:
        current = pricing.generation(conn)
        if current != self._generation:
            self._book = pricing.load_pricebook(conn)
            self._fx = pricing.load_fx(conn)
            self._generation = current

    def snapshot(self) -> tuple[PriceBook, FxTable]:
        """The prices and rates in memory now, without checking the database (for the
        response path; a background task calls ``refresh``)."""
        return self._book, self._fx

    @property
    def book(self) -> PriceBook:
        self.refresh()
        return self._book

    @property
    def fx(self) -> FxTable:
        self.refresh()
        return self._fx

    # -- tenants and users ----------------------------------------------------------------
    def _tenant(self, conn: Connection, tenant_id: str) -> Tenant:
        """Tenants are never changed or deleted, so each process keeps the ones it has seen."""
        found = self._tenants.get(tenant_id)
        if found is None:
            found = self._tenants[tenant_id] = get_tenant(conn, tenant_id)
        return found

    def _remember_users(self, tenant_id: str, user_ids: set[str]) -> None:
        """Users known to be stored (after the commit), so later batches skip inserting them."""
        if len(self._known_users) > MAX_KNOWN_USERS:
            self._known_users.clear()
        self._known_users.update((tenant_id, u) for u in user_ids)

    # -- pricing ------------------------------------------------------------------------
    def quote(self, model: str, usage: Usage, at: datetime | None = None,
              attributes: Mapping[str, str] | None = None, currency: str | None = None,
              tenant_id: str | None = None) -> Rating:
        """Price a call without recording it; unknown models and missing prices raise.
        The version is chosen for ``currency``, else for the tenant's (pricebook module doc)."""
        book = self.book
        canonical = book.resolve(model)
        when = at or datetime.now(UTC)
        if currency is None and tenant_id is not None:
            with self.engine.connect() as conn:
                currency = self._tenant(conn, tenant_id).currency
        return book.rate(usage, book.version_at(canonical, when, currency), when,
                         attributes or {})

    def price(self, model: str, usage: Usage, at: datetime, attributes: Mapping[str, str],
              tenant_currency: str) -> Pricing:
        """Price a call for the ledger: what cannot be priced is marked, never refused."""
        book, fx = self._book, self._fx
        try:
            canonical = book.resolve(model)
        except NotFound as exc:
            provider = model.split("/", 1)[0] if "/" in model else "unknown"
            return Pricing(model, provider, None, exc.message, None, None, None, False)
        provider = canonical.split("/", 1)[0]
        try:
            rating = book.rate(usage, book.version_at(canonical, at, tenant_currency), at,
                               attributes)
        except NotFound as exc:
            return Pricing(canonical, provider, None, exc.message, None, None, None, False)
        if rating.currency == tenant_currency:
            return Pricing(canonical, provider, rating, None, rating.total.number,
                           tenant_currency, None, False)
        try:
            fx_rate = fx.rate(rating.currency, tenant_currency, at)
        except FxRateMissing as exc:
            return Pricing(canonical, provider, rating, exc.message, None, None, None, True)
        # Line by line, as the rollups convert them: the bill lines then add up to the
        # records' billed costs exactly.
        billed = convert_lines((line.amount for line in rating.lines), fx_rate)
        return Pricing(canonical, provider, rating, None, billed, tenant_currency, fx_rate,
                       False)

    # -- ingestion ----------------------------------------------------------------------
    def ingest(self, tenant_id: str, events: Sequence[object], *, key_id: str | None = None,
               source: str = "ingest") -> list[IngestResult]:
        """Record a batch of usage events; one result per event, in order."""
        now = datetime.now(UTC)
        parsed: list[UsageEvent | InvalidInput] = []
        for index, raw in enumerate(events):
            try:
                parsed.append(parse_event(raw, where=f"events[{index}].", now=now))
            except InvalidInput as exc:
                parsed.append(exc)
        with self.engine.connect() as conn:
            tenant = self._tenant(conn, tenant_id)
            self.refresh(conn)
            conn.rollback()
            records = [self._record(tenant, item, key_id, source, now)
                       for item in parsed if isinstance(item, UsageEvent)]
            users = {r.row["user_id"] for r in records if r.row["user_id"]}
            new_users = {u for u in users if (tenant.id, u) not in self._known_users}
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    with conn.begin():
                        ensure_users(conn, tenant.id, new_users)
                        # Archived events are duplicates; others older than the archive's
                        # horizon are refused (store/horizon.py).
                        guarded = horizon.guard(conn, records)
                        inserted = ledger.write_records(conn, guarded.fresh)
                        dupes = [r.row["event_id"] for r in guarded.fresh
                                 if r.row["event_id"] not in inserted]
                        earlier: dict[str, ledger.Existing | horizon.Known] = dict(
                            ledger.existing(conn, tenant.id, dupes))
                        earlier.update((event_id, known) for (_, event_id), known
                                       in guarded.known.items())
                    break
                except StoreError as exc:
                    # A deadlock with another writer of the same events rolls the whole batch
                    # back; writing it again is safe, since the database decides duplicates.
                    if not exc.context.get("retryable") or attempt == WRITE_ATTEMPTS - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        self._remember_users(tenant.id, new_users)
        by_id = {r.row["event_id"]: r for r in records}
        refused = {r.row["event_id"] for r in guarded.refused}
        results: list[IngestResult] = []
        for index, item in enumerate(parsed):
            if isinstance(item, InvalidInput):
                raw = events[index]
                raw_id = raw.get("id") if isinstance(raw, Mapping) else None
                results.append(RefusedEvent(raw_id, item.message, item.field))
            elif item.id in refused:
                assert guarded.cutoff is not None
                results.append(RefusedEvent(
                    item.id, f"events[{index}].{horizon.refusal(guarded.cutoff)}", "timestamp"))
            elif item.id in inserted:
                row = by_id[item.id].row
                results.append(AcceptedEvent(item.id, row["request_id"], row["cost"],
                                             row["currency"], row["pricing"], False,
                                             row["warning"], row["fx_missing"]))
            else:
                old = earlier[item.id]
                results.append(AcceptedEvent(item.id, old.request_id, old.cost, old.currency,
                                             old.pricing, True))
        return results

    def _record(self, tenant: Tenant, event: UsageEvent, key_id: str | None, source: str,
                now: datetime) -> NewRecord:
        priced = self.price(event.model, event.usage, event.timestamp, event.attributes,
                            tenant.currency)
        row = dict(_BLANK_ROW)
        row["request_id"] = new_request_id()
        row["tenant_id"] = tenant.id
        row["event_id"] = event.id
        row["user_id"] = event.user
        row["key_id"] = key_id
        row["source"] = source
        row["status"] = _STATUS_NAMES[event.status]
        row["occurred_at"] = event.timestamp
        row["recorded_at"] = now
        row["attributes"] = dict(event.attributes) or None
        row["tags"] = list(event.tags) or None
        row["metadata"] = dict(event.metadata) or None
        set_usage_columns(row, event.usage)
        row.update(priced.columns())
        return NewRecord(row, priced.rating.lines if priced.rating else ())

    # -- rerating -----------------------------------------------------------------------
    def _complete_records(self, fetch: Callable[[Connection, str], list[Any]],
                          complete: Callable[[Connection, Any, str], bool | None],
                          progress: Callable[[int], None] | None) -> tuple[int, int]:
        """Walk records that ``fetch`` finds, in request-id order and batches, and let
        ``complete`` fill each in (given the tenant's currency): True done, False not possible
        yet, None done meanwhile by another process. Returns (done, not possible yet)."""
        self.refresh(force=True)
        done = left = 0
        after = ""
        currencies: dict[str, str] = {}
        while True:
            with self.engine.begin() as conn:
                batch = fetch(conn, after)
                if not batch:
                    break
                for record in batch:
                    after = record.request_id
                    if record.tenant_id not in currencies:
                        currencies[record.tenant_id] = get_tenant(conn, record.tenant_id).currency
                    outcome = complete(conn, record, currencies[record.tenant_id])
                    done += outcome is True
                    left += outcome is False
            if progress is not None:
                progress(len(batch))
        return done, left

    def convert_missing_fx(self, progress: Callable[[int], None] | None = None
                           ) -> tuple[int, int]:
        """Convert records stored without an FX rate, where one now covers them:
        (converted, still missing)."""

        def convert(conn: Connection, record: Any, currency: str) -> bool | None:
            try:
                rate_used = self._fx.rate(record.currency, currency, record.occurred_at)
            except FxRateMissing:
                return False
            return ledger.fill_fx(conn, record.request_id, currency, rate_used) or None

        return self._complete_records(lambda conn, after: ledger.fx_missing(conn, after=after),
                                      convert, progress)

    def rerate(self, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Price unpriced records that now have a price: (priced, still unpriced)."""

        def price(conn: Connection, record: Any, currency: str) -> bool | None:
            usage = Usage.parse({m: getattr(record, m) for m in USAGE_COLUMNS
                                 if getattr(record, m)})
            priced = self.price(record.model, usage, record.occurred_at,
                                record.attributes or {}, currency)
            if priced.rating is None:
                return False
            values = priced.columns()
            values.pop("pricing")
            return ledger.price_unpriced(conn, record.request_id, values,
                                         priced.rating.lines) or None

        return self._complete_records(lambda conn, after: ledger.unpriced(conn, after=after),
                                      price, progress)

