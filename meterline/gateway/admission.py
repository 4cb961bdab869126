"""Admission: before a call goes upstream, hold its worst-case cost against every ``block``
budget that covers it (SPEC §1 "reservation", §7.3), or refuse it with 402.

The worst case is what the call could cost at most: every input token as a cache write where
that is dearer, and all the output it may produce (its ``max_tokens``, else the model's maximum
output, else ``limits.default_max_output_tokens``). Input tokens are bounded by the UTF-8 bytes
of the request body — a byte-level BPE token covers at least one byte — so the hold is an upper
bound without running a tokenizer. The hold is released when the call's record reaches the
ledger (in that same transaction), so calls in flight can never spend past a limit together.

Calls no ``block`` budget covers cost no database round trip: the budget list is cached per
process for ``limits.cache_seconds``. Most limited calls cost none either: they are admitted in
memory from a lease (:mod:`meterline.gateway.leases`); a call that does not fit in one asks the
database for a new lease of ``limits.lease_calls`` times its own worst case, else for its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from meterline.config import LimitsConfig
from meterline.domain.budgets import Budget, remaining
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, format_decimal
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.usage import Meter, Usage
from meterline.errors import (
    BudgetExceeded,
    FxRateMissing,
    NotFound,
    QuotaExceeded,
    StoreError,
)
from meterline.gateway.leases import Amount, GiveBack, LeaseBook, LeaseKey
from meterline.providers.tools import declared_tool_uses
from meterline.providers.usage import service_tier
from meterline.store import budgets as store
from meterline.store import quotas as quota_store
from meterline.store import reservations
from meterline.store.budgets import Hold, convert

#: How often each process seals its leases that are due and closes the finished ones.
LEASE_SWEEP_SECONDS = 0.25
#: How often a refused call waits for other processes' leases before its 402 stands.
LEASE_WAITS = 3
#: Sets of budgets and quotas whose lease bookkeeping a process keeps before starting afresh.
MAX_KEY_SETS = 10_000

log = logging.getLogger("meterline.admission")
_UNCHECKED = "cannot check budgets and quotas: the database is unreachable; retry later"

if TYPE_CHECKING:  # calls.py needs the gateway state, which holds an Admission
    from meterline.gateway.calls import Incoming
    from meterline.gateway.recorder import Call


def _count(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else default


def worst_case(incoming: Incoming, endpoint: str, version: PriceVersion | None,
               limits: LimitsConfig) -> tuple[list[Usage], dict[str, str]]:
    """The usages whose dearest price bounds the call's cost, and the price attributes."""
    body = incoming.body
    if endpoint == "images":
        attributes = {k: str(body[k]) for k in ("size", "quality") if body.get(k)}
        return [Usage.of(images=_count(body.get("n"), 1))], attributes
    if endpoint == "speech":
        text = body.get("input")
        return [Usage.of(characters=len(text) if isinstance(text, str) else 0)], {}
    if endpoint == "videos":
        attributes = {k: str(body[k]) for k in ("size", "resolution") if body.get(k)}
        seconds = body.get("seconds")
        try:
            held = Decimal(str(seconds)) if seconds is not None else None
        except ArithmeticError:
            held = None
        if held is None or not held.is_finite() or held <= 0:
            held = Decimal(limits.default_video_seconds)
        return [Usage.of(seconds=held)], attributes
    prompt = len(orjson.dumps(body))
    if endpoint == "embeddings":
        return [Usage.of(input_tokens=prompt)], {}
    model_max = version.max_output_tokens if version is not None else None
    fallback = model_max or limits.default_max_output_tokens
    output = _count(body.get("max_completion_tokens"), 0) or _count(
        body.get("max_tokens"), 0) or _count(body.get("max_output_tokens"), 0) or fallback
    output *= _count(body.get("n"), 1)
    # The whole prompt might be written to the cache (for an hour, where that is priced apart).
    usages = [Usage.of(input_tokens=prompt, output_tokens=output),
              Usage.of(input_tokens=prompt, cache_write_tokens=prompt, output_tokens=output)]
    if version is not None and _prices_hour_writes(version):
        usages.append(Usage.of(input_tokens=prompt, cache_write_tokens=prompt,
                               cache_write_1h_tokens=prompt, output_tokens=output))
    tools = declared_tool_uses(body)
    return [usage.plus(tools) for usage in usages] if tools else usages, service_tier(body)


def _prices_hour_writes(version: PriceVersion) -> bool:
    return any(Meter.CACHE_WRITE_1H_TOKENS in prices for prices in (
        version.prices, *(t.prices for t in version.tiers), *(v.prices for v in version.variants),
        *(w.prices for w in version.windows)))


@dataclass(frozen=True, slots=True)
class _Limits:
    budgets: list[Budget]
    quotas: set[tuple[str, str]]


def _retrieved(task: asyncio.Task[None]) -> None:
    """A read whose waiters all went away (cancelled) still has its failure looked at."""
    if not task.cancelled():
        task.exception()


def quota_units(usage: Usage) -> dict[str, int]:
    return quota_store.units_of({"input_tokens": usage.get(Meter.INPUT_TOKENS),
                                 "output_tokens": usage.get(Meter.OUTPUT_TOKENS),
                                 "images": usage.get(Meter.IMAGES),
                                 "characters": usage.get(Meter.CHARACTERS),
                                 "seconds": usage.get(Meter.SECONDS)})


class Admission:
    def __init__(self, engine: Engine, limits: LimitsConfig) -> None:
        self.engine = engine
        self.limits = limits
        self._cached = _Limits([], set())
        self._loaded_at = float("-inf")
        self.leases = LeaseBook(limits.lease_seconds)
        self._refill_locks: dict[frozenset[LeaseKey], threading.Lock] = {}
        self._refill_locks_lock = threading.Lock()
        self._no_lease_until: dict[frozenset[LeaseKey], float] = {}
        self._reading: asyncio.Task[None] | None = None

    async def current(self) -> _Limits:
        if time.monotonic() - self._loaded_at > self.limits.cache_seconds:
            # One read for every call that finds the list due: each waits for that read, as it
            # would for its own, instead of all the calls of that moment (32 at 32
            # connections) each reading the database in a thread of their own.
            loop = asyncio.get_running_loop()
            reading = self._reading
            if reading is None or reading.done() or reading.get_loop() is not loop:
                reading = self._reading = loop.create_task(self._reread())
                reading.add_done_callback(_retrieved)
            await asyncio.shield(reading)
        return self._cached

    async def _reread(self) -> None:
        if time.monotonic() - self._loaded_at > self.limits.cache_seconds:
            try:
                self._cached = await run_in_threadpool(self._load)
            except (SQLAlchemyError, psycopg.Error, StoreError) as exc:
                if self._loaded_at == float("-inf"):
                    # Never read: a call under a block budget could slip through unheld.
                    raise StoreError(_UNCHECKED, public=_UNCHECKED) from exc
                # The list last read stays in force: calls no budget covers are served from
                # memory and the journal while the database is down, and covered ones still
                # need the database (or a lease) to be held. Read again after the cache time.
                log.warning("budget list not re-read (%s); keeping the one read before", exc)
            self._loaded_at = time.monotonic()

    def _load(self) -> _Limits:
        with self.engine.connect() as conn:
            return _Limits([b for b in store.list_budgets(conn) if b.mode == "block"],
                           quota_store.tenants_with_quota(conn))

    async def admit(self, incoming: Incoming, endpoint: str, book: PriceBook,
                    fx: FxTable) -> None:
        """Hold the call's worst case against its block budgets and quotas, or raise
        BudgetExceeded / QuotaExceeded."""
        call = incoming.call
        limits = await self.current()
        covering = [b for b in limits.budgets
                    if b.scope.covers(call.tenant_id, call.user_id, call.key_id, call.provider,
                                      call.model)]
        quota_types = {t for tenant, t in limits.quotas if tenant == call.tenant_id}
        if not covering and not quota_types:
            return
        try:
            version: PriceVersion | None = book.version_at(call.model, call.started_at,
                                                           call.tenant_currency)
        except NotFound as exc:
            if covering:
                raise BudgetExceeded(
                    f"budget {covering[0].describe()} ({covering[0].id}) blocks calls it cannot "
                    f"bound: {call.model} has no price ({exc.message})",
                    budget=covering[0].id) from exc
            version = None
        usages, attributes = worst_case(incoming, endpoint, version, self.limits)
        needs = {t: n for t, n in quota_units(usages[0]).items() if t in quota_types}
        holds = self._budget_holds(call, covering, book, version, usages, attributes, fx)
        if not holds and not needs:
            return
        if self.leases.take(call.request_id, _wants(call, holds, needs)):
            call.held = True  # in memory: no thread, no round trip
            return
        refusal = await run_in_threadpool(self._reserve, call, holds, needs)
        if isinstance(refusal, store.Refusal):
            raise budget_refusal(refusal)
        if isinstance(refusal, quota_store.Shortage):
            raise quota_refusal(refusal)
        call.held = True

    def _budget_holds(self, call: Call, covering: Sequence[Budget], book: PriceBook,
                      version: PriceVersion | None, usages: Sequence[Usage],
                      attributes: Mapping[str, str], fx: FxTable) -> list[Hold]:
        if not covering or version is None:
            return []
        try:
            ratings = [book.rate(usage, version, call.started_at, attributes)
                       for usage in usages]
        except NotFound as exc:  # a built-in tool the catalog does not price
            raise BudgetExceeded(
                f"budget {covering[0].describe()} ({covering[0].id}) blocks calls it cannot "
                f"bound: {exc.message}", budget=covering[0].id) from exc
        dearest = max(ratings, key=lambda r: r.total.number)
        cost, currency = dearest.total.number, dearest.currency
        holds = []
        for budget in covering:
            try:
                amount = convert(cost, currency, budget.currency, call.started_at, fx)
            except FxRateMissing as exc:
                raise BudgetExceeded(
                    f"budget {budget.describe()} ({budget.id}) is in {budget.currency}, and no "
                    f"FX rate converts this call's {currency} price: {exc.message}",
                    budget=budget.id) from exc
            start, end = budget.bounds(call.started_at)
            holds.append(Hold(budget, start, end, amount))
        return holds

    def _reserve(self, call: Call, holds: Sequence[Hold], needs: Mapping[str, int]
                 ) -> store.Refusal | quota_store.Shortage | None:
        """Admit the call from a lease, else hold a new lease for it, else its own holds."""
        wants = _wants(call, holds, needs)
        if self.leases.take(call.request_id, wants):
            return None
        factor = self.limits.lease_calls
        keys = frozenset(wants)
        if factor > 1 and self._no_lease_until.get(keys, 0.0) < time.monotonic():
            # One thread at a time asks for a lease on these keys; the others then find room
            # in the lease it got instead of each sealing the last one's.
            with self._refill_lock(keys):
                if self.leases.take(call.request_id, wants):
                    return None
                if self._lease(call, holds, needs, wants, factor):
                    return None
                # Near a limit: calls hold on their own for a while, without asking again.
                self._no_lease_until[keys] = time.monotonic() + self.limits.lease_seconds
        refusal = self._hold(call.request_id, call, holds, needs)
        for _ in range(LEASE_WAITS):
            if refusal is None or factor == 1 or not self._leased_elsewhere(call, holds, needs):
                break
            # Another process may hold the room in a lease; its unused part comes back within
            # the lease time, so a call that fits is not refused for it.
            time.sleep(self.limits.lease_seconds + 2 * LEASE_SWEEP_SECONDS)
            refusal = self._hold(call.request_id, call, holds, needs)
        return refusal

    def _lease(self, call: Call, holds: Sequence[Hold], needs: Mapping[str, int],
               wants: Mapping[LeaseKey, Amount], factor: int) -> bool:
        """Hold a new lease of ``factor`` times the call's worst case, the call admitted from it;
        False if the database has not that much room."""
        # The leases it did not fit in admit no more; their unused parts go back first.
        self._give_back(*self.leases.seal(wants))
        lease_id = self.leases.new_id()
        times = Decimal(factor)
        lease_holds = [Hold(h.budget, h.period_start, h.period_end,
                            MONEY_CONTEXT.multiply(h.amount, times)) for h in holds]
        lease_needs = {t: n * factor for t, n in needs.items()}
        if self._hold(lease_id, call, lease_holds, lease_needs) is not None:
            return False
        self.leases.opened(lease_id, call.request_id, _wants(call, lease_holds, lease_needs),
                           wants)
        return True

    def _refill_lock(self, keys: frozenset[LeaseKey]) -> threading.Lock:
        with self._refill_locks_lock:
            if len(self._refill_locks) > MAX_KEY_SETS:
                # Old periods and idle users: forgetting a lock only lets two threads ask at
                # once; forgetting "near a limit" costs one refused lease request.
                self._refill_locks.clear()
                self._no_lease_until.clear()
            return self._refill_locks.setdefault(keys, threading.Lock())

    def _hold(self, request_id: str, call: Call, holds: Sequence[Hold],
              needs: Mapping[str, int]) -> store.Refusal | quota_store.Shortage | None:
        """Budgets and quotas in one transaction: all held (for ``request_id``, a call or a
        lease), or nothing."""
        request = reservations.Request(
            request_id, call.tenant_id, call.user_id, call.started_at, call.tenant_timezone,
            datetime.now(UTC) + timedelta(seconds=self.limits.hold_seconds))
        with self._database(), self.engine.connect() as conn, conn.begin() as transaction:
            refusal = reservations.reserve(conn, request, holds, needs)
            if refusal is not None:
                transaction.rollback()
        return refusal

    def _leased_elsewhere(self, call: Call, holds: Sequence[Hold],
                          needs: Mapping[str, int]) -> bool:
        with self._database(), self.engine.connect() as conn:
            return reservations.leased_elsewhere(
                conn, sorted({h.budget.id for h in holds}), call.tenant_id, sorted(needs),
                self.leases.prefix)

    @contextmanager
    def _database(self) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, psycopg.Error, StoreError) as exc:
            # Without its holds a limited call must not go out: refused, not let through.
            raise StoreError(_UNCHECKED, public=_UNCHECKED) from exc

    def _give_back(self, parts: Sequence[GiveBack], closed: Sequence[str]) -> None:
        """Write leases' endings; if the database is unreachable their holds expire instead."""
        if not parts and not closed:
            return
        budget_parts, quota_parts = [], []
        for part in parts:
            _, owner, where = part.key[:3]
            if isinstance(where, datetime):  # ("budget", budget id, period start)
                budget_parts.append(store.Part(part.lease_id, owner, where,
                                               Decimal(part.amount)))
            else:  # ("quota", tenant id, quota type, user)
                quota_parts.append(quota_store.Part(part.lease_id, owner, where,
                                                    int(part.amount)))
        try:
            with self.engine.begin() as conn:
                reservations.give_back(conn, budget_parts, quota_parts, closed)
        except (SQLAlchemyError, psycopg.Error, StoreError) as exc:
            log.warning("giving back %d lease parts failed (they expire instead): %s",
                        len(parts) + len(closed), exc)

    def settled(self, request_ids: Sequence[str]) -> None:
        """These calls' records are in the ledger (or set aside): their leases may close."""
        self.leases.settled(request_ids)

    def sweep(self) -> None:
        """Seal leases that are due, give back their unused parts, close finished leases."""
        self._give_back(*self.leases.due())

    def close(self) -> None:
        """On shutdown, after the journal is drained."""
        self._give_back(*self.leases.seal_all())


def _wants(call: Call, holds: Sequence[Hold], needs: Mapping[str, int]
           ) -> dict[LeaseKey, Amount]:
    """A call's holds by lease key."""
    wants: dict[LeaseKey, Amount] = {("budget", h.budget.id, h.period_start): h.amount
                                     for h in holds}
    for quota_type, units in needs.items():
        wants[("quota", call.tenant_id, quota_type, call.user_id or "")] = units
    return wants


def quota_refusal(shortage: quota_store.Shortage) -> QuotaExceeded:
    resets = (f"; the plan allowance resets at {shortage.resets_at.isoformat()}"
              if shortage.resets_at is not None else "")
    return QuotaExceeded(
        f"quota exceeded: {shortage.type} has {shortage.available} units left (after calls in "
        f"flight); this call may use up to {shortage.requested}{resets}",
        type=shortage.type, available=shortage.available, requested=shortage.requested)


def _shown(value: Decimal) -> str:
    """Money in a message: six places say enough (a converted hold carries ten)."""
    return format_decimal(value.quantize(Decimal("0.000001"), rounding=ROUND_UP)
                          if value.as_tuple().exponent < -6 else value)  # type: ignore[operator]


def budget_refusal(refusal: store.Refusal) -> BudgetExceeded:
    hold, budget = refusal.hold, refusal.hold.budget
    left = remaining(budget.limit, refusal.spent, refusal.reserved)
    resets = (f"; it resets at {hold.period_end.astimezone(budget.zone).isoformat()}"
              if hold.period_end is not None else "")
    context: Mapping[str, Any] = {
        "budget": budget.id, "limit": format_decimal(budget.limit),
        "remaining": _shown(left), "currency": budget.currency}
    return BudgetExceeded(
        f"budget exceeded: {budget.describe()} ({budget.id}) has {_shown(left)} "
        f"{budget.currency} left of {format_decimal(budget.limit)} (spent "
        f"{_shown(refusal.spent)}, held by calls in flight {_shown(refusal.reserved)}); "
        f"this call may cost up to {_shown(hold.amount)} {budget.currency}{resets}",
        **context)
