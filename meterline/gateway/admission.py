"""Admission: before a call goes upstream, hold its worst-case cost against every ``block``
budget that covers it (SPEC §1 "reservation", §7.3), or refuse it with 402.

The worst case is what the call could cost at most: every input token as a cache write where
that is dearer, and all the output it may produce (its ``max_tokens``, else the model's maximum
output, else ``limits.default_max_output_tokens``). Input tokens are bounded by the UTF-8 bytes
of the request body — a byte-level BPE token covers at least one byte — so the hold is an upper
bound without running a tokenizer. The hold is released when the call's record reaches the
ledger (in that same transaction), so calls in flight can never spend past a limit together.

Calls no ``block`` budget covers cost no database round trip: the budget list is cached per
process for ``limits.cache_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
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
from meterline.domain.money import format_decimal
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.rating import rate
from meterline.domain.usage import Meter, Usage
from meterline.errors import (
    BudgetExceeded,
    FxRateMissing,
    NotFound,
    QuotaExceeded,
    StoreError,
)
from meterline.store import budgets as store
from meterline.store import quotas as quota_store
from meterline.store import reservations
from meterline.store.budgets import Hold, convert

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
        body.get("max_tokens"), 0) or fallback
    output *= _count(body.get("n"), 1)
    return [Usage.of(input_tokens=prompt, output_tokens=output),
            Usage.of(input_tokens=prompt, cache_write_tokens=prompt, output_tokens=output)], {}


@dataclass(frozen=True, slots=True)
class _Limits:
    budgets: list[Budget]
    quotas: set[tuple[str, str]]


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

    async def current(self) -> _Limits:
        if time.monotonic() - self._loaded_at > self.limits.cache_seconds:
            self._cached = await run_in_threadpool(self._load)
            self._loaded_at = time.monotonic()
        return self._cached

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
            version: PriceVersion | None = book.version_at(call.model, call.started_at)
        except NotFound as exc:
            if covering:
                raise BudgetExceeded(
                    f"budget {covering[0].describe()} ({covering[0].id}) blocks calls it cannot "
                    f"bound: {call.model} has no price ({exc.message})",
                    budget=covering[0].id) from exc
            version = None
        usages, attributes = worst_case(incoming, endpoint, version, self.limits)
        needs = {t: n for t, n in quota_units(usages[0]).items() if t in quota_types}
        holds = self._budget_holds(call, covering, version, usages, attributes, fx)
        if not holds and not needs:
            return
        refusal = await run_in_threadpool(self._reserve, call, holds, needs)
        if isinstance(refusal, store.Refusal):
            raise _exceeded(refusal)
        if isinstance(refusal, quota_store.Shortage):
            raise _short(refusal)
        call.held = True

    def _budget_holds(self, call: Call, covering: Sequence[Budget],
                      version: PriceVersion | None, usages: Sequence[Usage],
                      attributes: Mapping[str, str], fx: FxTable) -> list[Hold]:
        if not covering or version is None:
            return []
        ratings = [rate(usage, version, call.started_at, attributes) for usage in usages]
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
        """Budgets and quotas in one transaction: all held, or nothing."""
        request = reservations.Request(
            call.request_id, call.tenant_id, call.user_id, call.started_at,
            call.tenant_timezone,
            datetime.now(UTC) + timedelta(seconds=self.limits.hold_seconds))
        try:
            with self.engine.connect() as conn, conn.begin() as transaction:
                refusal = reservations.reserve(conn, request, holds, needs)
                if refusal is not None:
                    transaction.rollback()
        except (SQLAlchemyError, psycopg.Error) as exc:
            # Without its holds a limited call must not go out: refused, not let through.
            raise StoreError(f"cannot check budgets and quotas: the database is unreachable "
                             f"({exc.__class__.__name__})") from exc
        return refusal


def _short(shortage: quota_store.Shortage) -> QuotaExceeded:
    resets = (f"; the plan allowance resets at {shortage.resets_at.isoformat()}"
              if shortage.resets_at is not None else "")
    return QuotaExceeded(
        f"quota exceeded: {shortage.type} has {shortage.available} units left (after calls in "
        f"flight); this call may use up to {shortage.requested}{resets}",
        type=shortage.type, available=shortage.available, requested=shortage.requested)


def _shown(value: Decimal) -> str:
    """Money in a message: converted holds carry dozens of places, six say enough."""
    return format_decimal(value.quantize(Decimal("0.000001"), rounding=ROUND_UP)
                          if value.as_tuple().exponent < -6 else value)  # type: ignore[operator]


def _exceeded(refusal: store.Refusal) -> BudgetExceeded:
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
