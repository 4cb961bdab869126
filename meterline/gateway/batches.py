"""Batch APIs, what both share: the lines of a batch checked before the provider sees them,
the batch's budget check, who may reach a batch, and the billing of its results — once, at
the batch price, when the gateway first sees the batch ended.

The OpenAI Batch API (``/v1/files`` + ``/v1/batches``: gateway/batches_openai.py) and
Anthropic's Message Batches (``/v1/messages/batches``: gateway/batches_anthropic.py) differ in
their wire formats only. In both:

* every line's model is resolved like a call's model (unknown models refused with close names,
  the key's model list applied) and all lines must go to **one provider**, the one the batch is
  created at; the upstream gets its own model ids;
* the batch's **worst case** (each line's, as a call's hold would be, at the batch price) is
  checked against the block budgets and quotas covering it when the batch is created — checked,
  not held (the transaction that would hold it is rolled back): a batch runs for up to a day,
  and holding its worst case that long would block every other call of the scope. A batch that
  does not fit is refused with 402 before the provider is called;
* a batch is remembered with its tenant, key and user; only that tenant (and, for a key bound to
  a user, that user) reaches it, anyone else gets 404 without the provider being asked;
* the poll (retrieve, cancel, list or results) that first sees the batch ended claims its bill
  in the database (one poller at a time, a claim whose holder died runs out after
  ``CLAIM_SECONDS``), reads its results and journals one record per succeeded line
  (endpoint ``batch``, the batch and custom ids in its metadata, attribute
  ``processing: batch``, priced as of the batch's creation), then marks the batch billed. Each
  line's request id is derived from the batch and custom ids, so a bill journaled twice (its
  process died before marking it) is kept once by the ledger: exactly once across polls,
  processes and crashes. Errored, cancelled and expired lines are not billed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

import orjson
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from meterline.domain.budgets import Budget
from meterline.domain.pricebook import PriceBook
from meterline.domain.rating import rate
from meterline.domain.usage import Usage
from meterline.errors import (
    BudgetExceeded,
    Forbidden,
    FxRateMissing,
    InvalidInput,
    NotFound,
    PriceNotFound,
    StoreError,
)
from meterline.gateway.admission import budget_refusal, quota_refusal, quota_units
from meterline.gateway.calls import (
    authenticate,
    bound_user,
    key_allows,
    request_metadata,
    request_tags,
)
from meterline.gateway.state import GatewayState
from meterline.providers.estimate import estimate_prompt_tokens
from meterline.store import batches as store
from meterline.store import budgets as store_budgets
from meterline.store import quotas as store_quotas
from meterline.store import reservations
from meterline.store.accounts import ApiKey
from meterline.store.batches import StoredBatch
from meterline.store.budgets import Hold, convert

log = logging.getLogger("meterline.gateway")

#: The price attribute of a batch's results: batch price variants (and the catalog's
#: provider-wide batch discounts, catalog/shipped.py) match it.
ATTRIBUTES: Final[Mapping[str, str]] = {"processing": "batch"}
ENDPOINT: Final = "batch"
#: How long a poller's claim on a batch's bill lasts if it dies before finishing.
CLAIM_SECONDS: Final = 300
MAX_LINES: Final = 50_000
MAX_CUSTOM_ID: Final = 200


def bill_request_id(batch_id: str, custom_id: str) -> str:
    """The request id of a batch line's record: the same in every process and every poll."""
    return "bat_" + hashlib.sha256(f"{batch_id}\n{custom_id}".encode()).hexdigest()[:32]


def line_info(requested: str, model: str, endpoint: str, body: Mapping[str, Any],
              wire: str) -> dict[str, Any]:
    """What is kept of a line: its model, and what bounds its cost (for the budget check)."""
    output = next((v for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                   if isinstance(v := body.get(k), int) and not isinstance(v, bool) and v > 0),
                  None)
    n = body.get("n")
    return {"requested": requested, "model": model, "endpoint": endpoint,
            "bytes": len(orjson.dumps(body)), "output": output,
            "n": n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1,
            "estimate": estimate_prompt_tokens(body, wire)}


def custom_id_of(value: object, seen: set[str], where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_CUSTOM_ID:
        raise InvalidInput(f"{where}.custom_id: a string of 1 to {MAX_CUSTOM_ID} characters",
                           field="custom_id")
    if value in seen:
        raise InvalidInput(f"{where}.custom_id: {value!r} is used by another line; each line "
                           "needs its own", field="custom_id")
    seen.add(value)
    return value


class Resolver:
    """Resolves each line's model for one key, and insists on one provider for the batch."""

    def __init__(self, state: GatewayState, key: ApiKey, wire: str) -> None:
        self.state, self.key, self.wire = state, key, wire
        self.book: PriceBook = state.metering.snapshot()[0]
        self.provider: str | None = None

    def resolve(self, requested: object, where: str) -> tuple[str, str]:
        """(the model as the ledger names it, the upstream's model id)."""
        if not isinstance(requested, str) or not requested:
            raise InvalidInput(f"{where}.model: missing (a string such as openai/gpt-5-nano)",
                               field="model")
        target = self.state.router.resolve(requested, self.book)
        if not key_allows(self.key, requested, target):
            raise Forbidden(f"this key may not use {requested!r}", model=requested)
        provider = target.provider
        if provider.wire != self.wire or provider.kind == "azure":
            raise InvalidInput(f"{where}.model: {requested!r} is served by provider "
                               f"{provider.name!r}, whose batches this endpoint does not "
                               "create", field="model")
        if self.provider is not None and provider.name != self.provider:
            raise InvalidInput(f"{where}.model: {requested!r} is served by provider "
                               f"{provider.name!r}, other lines by {self.provider!r}: a batch "
                               "goes to one provider", field="model")
        self.provider = provider.name
        return target.model, target.upstream_model


class Owner:
    """Who is asking: the key, its tenant and user, the tags and metadata of the request."""

    def __init__(self, key: ApiKey, user: str | None, tags: list[str] | None,
                 metadata: dict[str, Any] | None) -> None:
        self.key, self.user, self.tags, self.metadata = key, user, tags, metadata

    def reaches(self, tenant_id: str, user_id: str | None) -> bool:
        return tenant_id == self.key.tenant_id and (
            self.key.user_id is None or user_id == self.key.user_id)


async def owner(state: GatewayState, request: Request) -> Owner:
    key = await authenticate(state, request)
    return Owner(key, bound_user(request, key), request_tags(request), request_metadata(request))


class _Owned(Protocol):
    @property
    def tenant_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def provider(self) -> str: ...


Found = TypeVar("Found", bound=_Owned)


async def owned(state: GatewayState, who: Owner, find: Callable[[Connection], Found | None],
                what: str, field: str) -> Found:
    """What ``find`` reads, if ``who`` may reach it (another tenant's, or another user's for a
    key bound to one, is as unknown: 404) and its provider is still configured."""
    engine = state.metering.engine

    def load() -> Found | None:
        with engine.connect() as conn:
            return find(conn)

    found = await run_in_threadpool(load)
    if found is None or not who.reaches(found.tenant_id, found.user_id):
        raise NotFound(f"no {what} was made with this tenant's keys", field=field)
    if found.provider not in state.router.providers:
        raise NotFound(f"{what} is at provider {found.provider!r}, which is no longer "
                       "configured")
    return found


async def find_batch(state: GatewayState, who: Owner, batch_id: str) -> StoredBatch:
    return await owned(state, who, lambda conn: store.find_batch(conn, batch_id),
                       f"batch {batch_id!r}", "batch_id")


async def pending(state: GatewayState, who: Owner, lines: Mapping[str, Any]) -> dict[str, Any]:
    """What the bill of a batch needs of its creation (JSON)."""
    tenant = await state.tenant(who.key.tenant_id)
    return {"tenant_currency": tenant.currency, "tenant_timezone": tenant.timezone,
            "tags": who.tags, "metadata": who.metadata,
            "lines": {cid: {k: info[k] for k in ("requested", "model", "endpoint", "estimate")}
                      for cid, info in lines.items()}}


async def remember(state: GatewayState, batch: StoredBatch) -> None:
    engine = state.metering.engine

    def write() -> None:
        with engine.begin() as conn:
            store.remember_batch(conn, batch)

    try:
        await run_in_threadpool(write)
    except StoreError as exc:
        # The provider has the batch; only its later polls through the gateway are lost.
        log.error("batch %s not remembered: %s", batch.batch_id, exc.message)


async def check_limits(state: GatewayState, who: Owner, provider: str,
                       lines: Mapping[str, Mapping[str, Any]], at: datetime) -> None:
    """Refuse (402) a batch whose worst case does not fit the block budgets and quotas that
    cover it; checked in the transaction that would hold it, which is then rolled back."""
    key = who.key
    limits = await state.admission.current()
    models = {info["model"] for info in lines.values()}
    covering = {model: [b for b in limits.budgets
                        if b.scope.covers(key.tenant_id, who.user, key.id, provider, model)]
                for model in models}
    quota_types = {t for tenant, t in limits.quotas if tenant == key.tenant_id}
    if not any(covering.values()) and not quota_types:
        return
    book, fx = state.metering.snapshot()
    tenant = await state.tenant(key.tenant_id)
    per_budget: dict[str, tuple[Budget, Decimal]] = {}
    units: dict[str, int] = {}
    for info in lines.values():
        usages = _worst_usages(state, info, book, at, tenant.currency)
        for kind, count in quota_units(usages[0]).items():
            if kind in quota_types:
                units[kind] = units.get(kind, 0) + count
        budgets = covering[info["model"]]
        if not budgets:
            continue
        try:
            version = book.version_at(info["model"], at, tenant.currency)
        except PriceNotFound as exc:
            raise BudgetExceeded(f"budget {budgets[0].describe()} ({budgets[0].id}) blocks "
                                 f"batches it cannot bound: {info['model']} has no price "
                                 f"({exc.message})", budget=budgets[0].id) from exc
        dearest = max((rate(u, version, at, ATTRIBUTES) for u in usages),
                      key=lambda r: r.total.number)
        for budget in budgets:
            try:
                amount = convert(dearest.total.number, dearest.currency, budget.currency, at, fx)
            except FxRateMissing as exc:
                raise BudgetExceeded(f"budget {budget.describe()} ({budget.id}) is in "
                                     f"{budget.currency}, and no FX rate converts this batch's "
                                     f"{dearest.currency} price: {exc.message}",
                                     budget=budget.id) from exc
            held = per_budget.get(budget.id, (budget, Decimal(0)))[1]
            per_budget[budget.id] = (budget, held + amount)
    holds = [Hold(budget, *budget.bounds(at), amount) for budget, amount in per_budget.values()]
    if not holds and not units:
        return
    request = reservations.Request(f"batch-check-{bill_request_id(key.id, at.isoformat())}",
                                   key.tenant_id, who.user, at, tenant.timezone,
                                   at + timedelta(seconds=state.admission.limits.hold_seconds))
    engine = state.metering.engine

    def check() -> object:
        with engine.connect() as conn, conn.begin() as transaction:
            refusal = reservations.reserve(conn, request, holds, units)
            transaction.rollback()  # checked, not held (see the module doc)
        return refusal

    refusal = await run_in_threadpool(check)
    if isinstance(refusal, store_budgets.Refusal):
        raise budget_refusal(refusal)
    if isinstance(refusal, store_quotas.Shortage):
        raise quota_refusal(refusal)


def _worst_usages(state: GatewayState, info: Mapping[str, Any], book: PriceBook,
                  at: datetime, currency: str) -> list[Usage]:
    """A line's worst cases, as a call's hold bounds them (gateway/admission.py): every byte
    of its body a token, written to the cache if that is dearer, and all the output it may
    produce."""
    prompt = int(info["bytes"])
    if info["endpoint"] == "embeddings":
        return [Usage.of(input_tokens=prompt)]
    output = info.get("output")
    if output is None:
        try:
            output = book.version_at(info["model"], at, currency).max_output_tokens
        except PriceNotFound:
            output = None
        output = output or state.admission.limits.default_max_output_tokens
    output = int(output) * int(info.get("n") or 1)
    return [Usage.of(input_tokens=prompt, output_tokens=output),
            Usage.of(input_tokens=prompt, cache_write_tokens=prompt, output_tokens=output),
            Usage.of(input_tokens=prompt, cache_write_tokens=prompt,
                     cache_write_1h_tokens=prompt, output_tokens=output)]
