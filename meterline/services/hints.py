"""Optimisation hints for a tenant: where its AI spend could be lower or its setup tidier.

Each hint is a :class:`Hint` (``to_json``: ``{"kind", "severity", "message",
"saving_estimate"?, "currency"?, "evidence"}``):

* ``caching`` — a model whose prompts are long on average but rarely read from the prompt cache,
  although its price has a cheaper cached-input rate;
* ``cheaper_model`` — a model of the same provider, billed the same way, whose input and output
  prices are both lower and whose context window covers the longest prompt seen;
* ``unused_key`` — a key older than 30 days, neither revoked nor expired, with no call in 30 days;
* ``concentration`` — one user behind more than half of the tenant's spend.

Savings are estimates at the catalog's base prices in force now (no tiers, windows or minimum
charges), on the token mix observed over the window; they are converted to the tenant's currency
at today's FX rate, or left in the price's currency (named beside them) where no rate exists.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Final

from sqlalchemy import Engine

from meterline.domain.forecast import FORECAST_CONTEXT
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, ZERO, format_decimal
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import PriceVersion
from meterline.domain.rating import rate
from meterline.domain.usage import BillingType, Meter, Usage
from meterline.errors import FxRateMissing, InvalidInput, NotFound
from meterline.services.inputs import whole_number
from meterline.store import spend as store
from meterline.store.accounts import get_tenant
from meterline.store.pricing import load_fx, load_pricebook

DEFAULT_DAYS: Final = 30
MAX_DAYS: Final = 366
#: Fewer calls than this say too little about a model's use to advise on it.
MIN_CALLS: Final = 10
LONG_PROMPT_TOKENS: Final = 2_000
LOW_CACHE_SHARE: Final = Decimal("0.2")
UNUSED_KEY_DAYS: Final = 30
CONCENTRATION_SHARE: Final = Decimal("0.5")
#: A saving of at least this share of the window's spend is worth a warning, not just a note.
WARNING_SHARE: Final = Decimal("0.1")
#: Name parts of a family's smaller tiers (gpt-5 -> gpt-5-mini, glm-4.5 -> glm-4.5-air).
SMALL_TIERS: Final = frozenset({"mini", "nano", "flash", "flashx", "lite", "air", "small"})


def window_days(value: object) -> int:
    """The window in days, 1 to 366; a string of digits (from a command line) will do."""
    value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_DAYS}, not {value!r}",
                           field="days")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ModelUse:
    model: str
    calls: int
    tokens: dict[str, int]
    max_prompt: int

    def usage(self, version: PriceVersion) -> Usage:
        quantities: dict[str, int] = {k: v for k, v in self.tokens.items() if v}
        if Meter.REQUESTS in version.prices:
            quantities["requests"] = self.calls
        return Usage.parse(quantities)


def _model_use(totals: list[store.ModelTotals]) -> list[ModelUse]:
    return [ModelUse(t.model, t.calls, t.tokens, t.max_prompt) for t in totals]


@dataclasses.dataclass(frozen=True, slots=True)
class Hint:
    """One hint. A saving hint has ``saving_estimate`` (to four places) and its ``currency``;
    ``evidence`` holds the figures behind the message, JSON-ready, by kind."""

    kind: str
    severity: str
    message: str
    evidence: dict[str, Any]
    saving_estimate: Decimal | None = None
    currency: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "severity": self.severity,
                               "message": self.message}
        if self.saving_estimate is not None:
            out["saving_estimate"] = format_decimal(self.saving_estimate)
            out["currency"] = self.currency
        out["evidence"] = self.evidence
        return out


class _Money:
    """Catalog costs at base prices, and their conversion to the tenant's currency."""

    def __init__(self, book: PriceBook, fx: FxTable, currency: str, now: datetime) -> None:
        self.book, self.fx, self.currency, self.now = book, fx, currency, now

    def version(self, model: str) -> PriceVersion | None:
        try:
            version = self.book.version_at(model, self.now)
        except NotFound:
            return None
        return dataclasses.replace(version, tiers=(), variants=(), windows=(),
                                   minimum_charge=ZERO)

    def cost(self, use: ModelUse, version: PriceVersion) -> Decimal | None:
        try:
            return rate(use.usage(version), version, self.now).total.number
        except NotFound:
            return None

    def in_tenant_currency(self, amount: Decimal, currency: str) -> tuple[Decimal, str]:
        try:
            return self.fx.converted(amount, currency, self.currency, self.now), self.currency
        except FxRateMissing:
            return amount, currency


def _four_places(value: Decimal) -> Decimal:
    """Estimates and shares to four places: a saving of 12.345678901 USD is not that exact."""
    with localcontext(FORECAST_CONTEXT):
        return value.quantize(Decimal("0.0001"))


def _money(value: Decimal) -> str:
    return format_decimal(_four_places(value))


def _saving(kind: str, amount: Decimal, currency: str, message: str,
            evidence: dict[str, Any]) -> Hint:
    """A saving hint with its exact estimate; severity and rounding are settled in
    :func:`hints`."""
    return Hint(kind, "info", message, evidence, amount, currency)


def _caching(uses: list[ModelUse], money: _Money) -> list[Hint]:
    found = []
    for use in uses:
        version = money.version(use.model)
        inputs = use.tokens["input_tokens"]
        if version is None or use.calls < MIN_CALLS or not inputs:
            continue
        prices = version.prices
        full, cheap = prices.get(Meter.INPUT_TOKENS), prices.get(Meter.CACHED_INPUT_TOKENS)
        average = inputs // use.calls
        with localcontext(FORECAST_CONTEXT):
            share = Decimal(use.tokens["cached_input_tokens"]) / Decimal(inputs)
            per_token = (full.price / full.per - cheap.price / cheap.per) if full and cheap \
                else ZERO
        if per_token <= 0 or average < LONG_PROMPT_TOKENS or share >= LOW_CACHE_SHARE:
            continue
        uncached = inputs - use.tokens["cached_input_tokens"] - use.tokens["cache_write_tokens"]
        with localcontext(FORECAST_CONTEXT):
            saving = Decimal(uncached) / 2 * per_token
        amount, currency = money.in_tenant_currency(saving, version.currency)
        found.append(_saving(
            "caching", amount, currency,
            f"{use.model}: {use.calls} calls averaged {average:,} input tokens, but only "
            f"{share:.1%} of input tokens were read from the prompt cache; if half of the "
            f"{uncached:,} input tokens billed at the full price were cached, about "
            f"{_money(amount)} {currency} would be saved (before any cache-write surcharge). "
            "Put the long, repeated part of prompts first so the provider can cache it.",
            {"model": use.model, "calls": use.calls, "input_tokens": inputs,
             "cached_input_tokens": use.tokens["cached_input_tokens"],
             "average_input_tokens": average, "cache_share": _money(share),
             "input_price": format_decimal(prices[Meter.INPUT_TOKENS].price),
             "cached_input_price": format_decimal(prices[Meter.CACHED_INPUT_TOKENS].price),
             "price_per": prices[Meter.INPUT_TOKENS].per, "price_currency": version.currency}))
    return found


def _family_tier(model: str, candidate: str) -> bool:
    """Whether ``candidate`` is a smaller tier of ``model``'s family (gpt-5-codex, gpt-5-mini)."""
    name, other = model.split("/", 1)[1], candidate.split("/", 1)[1]
    bases = {name, name.rsplit("-", 1)[0]}
    return any(other.startswith(base + "-")
               and SMALL_TIERS & set(other[len(base) + 1:].split("-")) for base in bases)


def _cheaper_prices(version: PriceVersion, other: PriceVersion) -> bool:
    """Input and output (where the model has one) both priced lower; same billing, currency."""
    if (other.billing_type is not version.billing_type or other.currency != version.currency
            or version.billing_type is not BillingType.TOKEN):
        return False
    for meter in (Meter.INPUT_TOKENS, Meter.OUTPUT_TOKENS):
        mine, theirs = version.prices.get(meter), other.prices.get(meter)
        if (mine is None) != (theirs is None):
            return False  # an embedding model is no substitute for a chat model, nor back
        if mine is not None and theirs is not None and \
                theirs.price * mine.per >= mine.price * theirs.per:
            return False
    return True


def _cheaper_model(uses: list[ModelUse], money: _Money) -> list[Hint]:
    found = []
    for use in uses:
        version = money.version(use.model)
        current = money.cost(use, version) if version else None
        if version is None or current is None or use.calls < MIN_CALLS:
            continue
        provider = use.model.split("/", 1)[0] + "/"
        options = []
        for model in money.book.models():
            other = money.version(model) if model.startswith(provider) else None
            if other is None or model == use.model or not _cheaper_prices(version, other):
                continue
            family = _family_tier(use.model, model)
            window = other.context_window
            if (window is None and not family) or (window is not None and window < use.max_prompt):
                continue
            cost = money.cost(use, other)
            if cost is not None and cost < current:
                options.append((family, cost, model, window))
        if not options:
            continue
        # The family's own smaller tier first; then the smallest step down in cost (the
        # likeliest to do the same work), not the cheapest model the provider sells.
        pool = [o for o in options if o[0]] or options
        _, cost, model, window = max(pool, key=lambda o: (o[1], o[2]))
        fits = (f"its context window ({window:,} tokens) covers" if window is not None else
                "it is a smaller tier of the same family (its context window is not in the "
                "catalog); mind")
        with localcontext(MONEY_CONTEXT):
            saving = current - cost
        amount, currency = money.in_tenant_currency(saving, version.currency)
        found.append(_saving(
            "cheaper_model", amount, currency,
            f"{use.model}: the same {use.calls} calls on {model} would cost about "
            f"{_money(cost)} instead of {_money(current)} {version.currency} at catalog "
            f"prices, saving about {_money(amount)} {currency}; its input and output prices "
            f"are both lower and {fits} the longest prompt seen ({use.max_prompt:,} tokens). "
            "Try it where the quality is enough.",
            {"model": use.model, "suggested": model, "calls": use.calls, **use.tokens,
             "max_input_tokens": use.max_prompt, "current_cost": _money(current),
             "suggested_cost": _money(cost), "price_currency": version.currency,
             "suggested_context_window": window,
             "alternatives": sorted(o[2] for o in options if o[2] != model)[:5]}))
    return found


def _unused_keys(keys: list[store.KeyUse], cutoff: datetime) -> list[Hint]:
    found = []
    for row in keys:
        last = row.last_used
        if last is not None and last >= cutoff:
            continue
        when = f"last used {last:%Y-%m-%d}" if last is not None else "never used"
        named = f" ({row.name})" if row.name else ""
        found.append(Hint(
            "unused_key", "warning",
            f"API key {row.id}{named}, prefix {row.prefix}, has made no call for "
            f"{UNUSED_KEY_DAYS} days ({when}; created {row.created_at:%Y-%m-%d}); "
            "revoke it if nothing needs it, since every live key is a way in.",
            {"key_id": row.id, "name": row.name, "prefix": row.prefix, "user": row.user_id,
             "created_at": row.created_at.isoformat(),
             "last_used": last.isoformat() if last else None}))
    return found


def _concentration(spend: dict[str | None, Decimal], currency: str,
                   days: int) -> tuple[list[Hint], Decimal]:
    """The hint (if any) and the tenant's spend over the window in its currency."""
    with localcontext(MONEY_CONTEXT):
        total = sum(spend.values(), ZERO)
    named = [(amount, user) for user, amount in spend.items() if user is not None]
    if total <= 0 or len(spend) < 2 or not named:
        return [], total
    amount, user = max(named)
    with localcontext(FORECAST_CONTEXT):
        share = amount / total
    if share <= CONCENTRATION_SHARE:
        return [], total
    return [Hint(
        "concentration", "warning" if share >= Decimal("0.8") else "info",
        f"user {user} accounts for {share:.1%} of the tenant's spend over the last "
        f"{days} days ({_money(amount)} of {_money(total)} {currency}); check that "
        "this is expected, and consider a user budget.",
        {"user": user, "user_spend": format_decimal(amount),
         "total_spend": format_decimal(total), "share": _money(share),
         "users": len(spend), "days": days})], total


def hints(engine: Engine, tenant: str, now: datetime | None = None,
          days: int | str = DEFAULT_DAYS) -> list[Hint]:
    """The tenant's hints over the last ``days`` days, biggest estimated saving first."""
    window = window_days(days)
    now = now or datetime.now(UTC)
    since = now - timedelta(days=window)
    cutoff = now - timedelta(days=UNUSED_KEY_DAYS)
    with engine.connect() as conn:
        found = get_tenant(conn, tenant)
        money = _Money(load_pricebook(conn), load_fx(conn), found.currency, now)
        uses = _model_use(store.model_totals(conn, tenant, since, now))
        by_user = store.billed_by_user(conn, tenant, found.currency, since, now)
        keys = store.live_keys_created_before(conn, tenant, cutoff, now)
    concentration, spend = _concentration(by_user, found.currency, window)
    unused = _unused_keys(keys, cutoff)
    # Savings in the tenant's currency first (comparable), biggest first.
    savings = sorted([*_caching(uses, money), *_cheaper_model(uses, money)],
                     key=lambda h: (h.currency != found.currency, -_estimate(h), h.kind,
                                    h.evidence["model"]))
    shown = []
    for hint in savings:
        amount = _estimate(hint)
        warn = hint.currency == found.currency and spend > 0 and amount >= spend * WARNING_SHARE
        shown.append(dataclasses.replace(hint, severity="warning" if warn else hint.severity,
                                         saving_estimate=_four_places(amount)))
    return [*shown, *concentration, *unused]


def _estimate(hint: Hint) -> Decimal:
    assert hint.saving_estimate is not None  # savings always carry one
    return hint.saving_estimate
