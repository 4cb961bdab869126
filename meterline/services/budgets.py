"""Setting budgets and reading their state — what the admin API and the CLI share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from meterline.domain import budgets as rules
from meterline.domain.budgets import Budget, Scope
from meterline.domain.fx import FxTable
from meterline.domain.money import currency_code, format_decimal
from meterline.errors import FxRateMissing, InvalidInput, NotFound
from meterline.services.inputs import optional_name
from meterline.services.projection import budget_projection
from meterline.store import audit
from meterline.store import budgets as store
from meterline.store.accounts import find_key, get_tenant
from meterline.store.audit import Actor
from meterline.store.pricing import load_fx, load_pricebook, provider_names


def _scope(conn: Connection, raw: Mapping[str, Any]) -> Scope:
    tenant = optional_name(raw.get("tenant"), "tenant", 64)
    key = optional_name(raw.get("key"), "key", 32)
    if tenant is not None:
        get_tenant(conn, tenant)
    if key is not None:
        row = find_key(conn, key)
        if row is None:
            raise NotFound(f"no API key {key!r} (give the key's id, not its secret)", key=key)
        if tenant is not None and row.tenant_id != tenant:
            raise InvalidInput(f"key {key} belongs to tenant {row.tenant_id}, not {tenant}",
                               field="key")
        tenant = row.tenant_id
    return Scope(tenant, optional_name(raw.get("user"), "user", 128), key,
                 optional_name(raw.get("provider"), "provider", 64),
                 optional_name(raw.get("model"), "model"))


def _price_currencies(conn: Connection, scope: Scope, now: datetime) -> set[str]:
    """The currencies of the prices in force for the models the scope's calls can reach: those
    of the configured providers (every process records its providers at start), or of the whole
    catalog where none is configured (usage is only reported, from anywhere)."""
    book = load_pricebook(conn)
    configured = provider_names(conn)
    found = set()
    for model in book.models():
        provider = model.split("/", 1)[0]
        if (configured and provider not in configured) or \
                scope.provider not in (None, provider) or \
                scope.model not in (None, model):
            continue
        try:
            found.add(book.version_at(model, now).currency)
        except NotFound:
            continue
    return found


def _check_fx(conn: Connection, scope: Scope, currency: str, now: datetime) -> None:
    fx = load_fx(conn)
    for source in sorted(_price_currencies(conn, scope, now) - {currency}):
        try:
            fx.rate(source, currency, now)
        except FxRateMissing as exc:
            raise InvalidInput(
                f"currency: a budget in {currency} needs an FX rate from {source} (prices of "
                f"calls it covers are in {source}); add one with `meterline fx set {source} "
                f"{currency} RATE`", field="currency") from exc


def _details(budget: Budget) -> dict[str, Any]:
    """A budget as the audit log keeps it."""
    scope = budget.scope
    return {"scope": budget.describe(), "user": scope.user, "key": scope.key,
            "provider": scope.provider, "model": scope.model, "period": budget.period,
            "mode": budget.mode, "amount": format_decimal(budget.limit),
            "currency": budget.currency,
            "thresholds": [format_decimal(t) for t in budget.thresholds],
            "timezone": budget.timezone}


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget and its current period: spent, reserved, remaining, and the projection of the
    period's spend (``projection.budget_projection``) with the method that made it."""

    budget: Budget
    period_start: datetime
    period_end: datetime | None
    spent: Decimal
    reserved: Decimal
    remaining: Decimal
    projected: Decimal
    method: str

    @property
    def id(self) -> str:
        return self.budget.id

    @property
    def scope(self) -> str:
        return self.budget.describe()

    @property
    def projected_overrun(self) -> bool:
        return self.projected > self.budget.limit

    def to_json(self) -> dict[str, Any]:
        budget, scope = self.budget, self.budget.scope
        return {
            "id": budget.id, "scope": budget.describe(), "tenant": scope.tenant,
            "user": scope.user, "key": scope.key, "provider": scope.provider,
            "model": scope.model, "period": budget.period, "mode": budget.mode,
            "timezone": budget.timezone, "amount": format_decimal(budget.limit),
            "currency": budget.currency,
            "thresholds": [format_decimal(t) for t in budget.thresholds],
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "spent": format_decimal(self.spent), "reserved": format_decimal(self.reserved),
            "remaining": format_decimal(self.remaining),
            "projected": format_decimal(self.projected),
            "projected_overrun": self.projected_overrun, "method": self.method,
        }


def set_budget(engine: Engine, raw: Mapping[str, Any], reporting_currency: str, *,
               actor: Actor | None) -> BudgetState:
    """Create or change the budget of a scope and period; returns its state."""
    now = datetime.now(UTC)
    period = rules.choice(raw.get("period", "month"), rules.PERIODS, "period")
    mode = rules.choice(raw.get("mode", "block"), rules.MODES, "mode")
    amount = rules.limit_amount(raw.get("amount"))
    thresholds = rules.thresholds(raw.get("thresholds"))
    with engine.begin() as conn:
        scope = _scope(conn, raw)
        tenant = get_tenant(conn, scope.tenant) if scope.tenant else None
        default_currency = tenant.currency if tenant else reporting_currency
        currency = currency_code(raw.get("currency") or default_currency)
        zone = raw.get("timezone") or (tenant.timezone if tenant else "UTC")
        rules.timezone(zone)
        _check_fx(conn, scope, currency, now)
        exists = store.budget_exists(conn, scope, period)
        budget = store.save_budget(conn, scope, period=period, mode=mode, amount=amount,
                                   currency=currency, thresholds=thresholds, timezone=str(zone),
                                   now=now)
        audit.record(conn, actor, "budget.update" if exists else "budget.create",
                     target=budget.id, tenant=scope.tenant, details=_details(budget))
    # Read after the write's commit: a projection reads the ledger, which must not wait on
    # (or, on SQLite, hold) the write lock meanwhile.
    with engine.connect() as conn:
        return describe(conn, [budget], now)[0]


def list_state(engine: Engine, tenant: str | None = None,
               now: datetime | None = None) -> list[BudgetState]:
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        store.release_expired(conn, now)
    with engine.connect() as conn:  # projections read the ledger: outside the write
        return describe(conn, store.list_budgets(conn, tenant), now)


def delete(engine: Engine, budget_id: str, *, actor: Actor | None) -> None:
    """Delete a budget (its open alerts are resolved)."""
    with engine.begin() as conn:
        budget = store.get_budget(conn, budget_id)  # NotFound: 404
        store.delete_budget(conn, budget_id)
        audit.record(conn, actor, "budget.delete", target=budget_id, tenant=budget.scope.tenant,
                     details=_details(budget))


def describe(conn: Connection, found: list[Budget], now: datetime,
             fx: FxTable | None = None) -> list[BudgetState]:
    """Each budget with its current period: spent, reserved, remaining, and the projection
    (``projection.budget_projection``, the one every view shows) with its method."""
    bounds = {b.id: b.bounds(now) for b in found}
    counters = store.counters(conn, [(b.id, bounds[b.id][0]) for b in found])
    table = fx if fx is not None else load_fx(conn) if found else FxTable()
    out = []
    for budget in found:
        start, end = bounds[budget.id]
        counter = counters.get((budget.id, start)) or store.Counter(Decimal(0), Decimal(0))
        projected, method = budget_projection(conn, budget, counter.spent, now, table)
        out.append(BudgetState(
            budget, start, end, counter.spent, counter.reserved,
            rules.remaining(budget.limit, counter.spent, counter.reserved), projected, method))
    return out
