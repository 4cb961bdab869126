"""Setting budgets and reading their state — what the admin API and the CLI share."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select

from meterline.domain import budgets as rules
from meterline.domain.budgets import Budget, Scope
from meterline.domain.fx import FxTable
from meterline.domain.money import currency_code, format_decimal
from meterline.errors import FxRateMissing, InvalidInput, NotFound
from meterline.services.inputs import optional_name
from meterline.services.projection import budget_projection
from meterline.store import budgets as store
from meterline.store.accounts import get_tenant
from meterline.store.pricing import load_fx, load_pricebook
from meterline.store.schema import api_keys, providers


def _scope(conn: Connection, raw: Mapping[str, Any]) -> Scope:
    tenant = optional_name(raw.get("tenant"), "tenant", 64)
    key = optional_name(raw.get("key"), "key", 32)
    if tenant is not None:
        get_tenant(conn, tenant)
    if key is not None:
        row = conn.execute(select(api_keys.c.tenant_id).where(api_keys.c.id == key)).first()
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
    configured = {row.name for row in conn.execute(select(providers.c.name))}
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


def set_budget(engine: Engine, raw: Mapping[str, Any], reporting_currency: str) -> dict[str, Any]:
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
        budget = store.save_budget(conn, scope, period=period, mode=mode, amount=amount,
                                   currency=currency, thresholds=thresholds, timezone=str(zone),
                                   now=now)
    # Read after the write's commit: a projection reads the ledger, which must not wait on
    # (or, on SQLite, hold) the write lock meanwhile.
    with engine.connect() as conn:
        return describe(conn, [budget], now)[0]


def list_state(engine: Engine, tenant: str | None = None,
               now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        store.release_expired(conn, now)
    with engine.connect() as conn:  # projections read the ledger: outside the write
        return describe(conn, store.list_budgets(conn, tenant), now)


def delete(engine: Engine, budget_id: str) -> None:
    """Delete a budget (its open alerts are resolved)."""
    with engine.begin() as conn:
        store.delete_budget(conn, budget_id)


def describe(conn: Connection, found: list[Budget], now: datetime,
             fx: FxTable | None = None) -> list[dict[str, Any]]:
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
        out.append({
            "id": budget.id, "scope": budget.describe(), "tenant": budget.scope.tenant,
            "user": budget.scope.user, "key": budget.scope.key,
            "provider": budget.scope.provider, "model": budget.scope.model,
            "period": budget.period, "mode": budget.mode, "timezone": budget.timezone,
            "amount": format_decimal(budget.limit), "currency": budget.currency,
            "thresholds": [format_decimal(t) for t in budget.thresholds],
            "period_start": start.isoformat(), "period_end": end.isoformat() if end else None,
            "spent": format_decimal(counter.spent), "reserved": format_decimal(counter.reserved),
            "remaining": format_decimal(rules.remaining(budget.limit, counter.spent,
                                                        counter.reserved)),
            "projected": format_decimal(projected),
            "projected_overrun": projected > budget.limit, "method": method,
        })
    return out
