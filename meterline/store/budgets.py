"""Budgets in the database: definitions, per-period counters, holds and the crossing alerts.

The counters of a budget period (``spent``, ``reserved``) change in exactly three places, each a
transaction that first locks the period rows it touches in one order (budget id, period start),
so concurrent gateway processes serialise on them and never deadlock:

* :func:`reserve` — admission: every applicable budget must fit the call's worst case, or none
  is touched and the call is refused;
* :func:`apply_records` — in the same transaction that writes records into the ledger: their
  cost is added to ``spent`` and their holds are released, so counters and ledger agree;
* :func:`release_expired` — holds of calls whose process died before recording them.

SQLite has no exact decimal arithmetic in SQL (money is TEXT there), so the arithmetic is done in
Python on both backends, on rows this transaction holds locked (``FOR UPDATE`` on PostgreSQL; on
SQLite the first statement is a write, which takes the database's single write lock).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.types import TypeEngine

from meterline.domain.budgets import Budget, Scope, crossed, period_label
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, format_decimal
from meterline.errors import FxRateMissing, NotFound
from meterline.store.alerts import add as add_alert
from meterline.store.alerts import threshold_alert
from meterline.store.archive import all_records
from meterline.store.pricing import load_fx
from meterline.store.schema import alerts, budget_holds, budget_periods, budgets
from meterline.store.types import Money, UtcDateTime, money_sum
from meterline.store.upsert import PerDialect, upsert

ZERO = Decimal(0)
PeriodKey = tuple[str, datetime]


def new_budget_id() -> str:
    return "bud_" + secrets.token_hex(8)


def _budget(row: Any) -> Budget:
    scope = Scope(row.tenant_id, row.user_id, row.key_id, row.provider, row.model)
    return Budget(row.id, scope, row.period, row.mode, row.amount, row.currency,
                  tuple(Decimal(t) for t in row.thresholds), row.timezone)


def save_budget(conn: Connection, scope: Scope, *, period: str, mode: str, amount: Decimal,
                currency: str, thresholds: Sequence[Decimal], timezone: str,
                now: datetime | None = None) -> Budget:
    """Create the budget of this scope and period, or change its limit, mode and thresholds."""
    now = now or datetime.now(UTC)
    values = {"mode": mode, "amount": amount, "currency": currency,
              "thresholds": [format_decimal(t) for t in thresholds], "timezone": timezone,
              "updated_at": now}
    c = budgets.c
    found = conn.execute(select(c.id, c.currency).where(
        c.scope_key == scope.key_text, c.period == period)).first()
    if found is not None:
        conn.execute(update(budgets).where(c.id == found.id).values(**values))
        budget_id = found.id
        if found.currency != currency:
            # Counters are kept in the budget's currency: a new currency starts them again.
            conn.execute(delete(budget_periods).where(budget_periods.c.budget_id == budget_id))
    else:
        budget_id = new_budget_id()
        conn.execute(insert(budgets).values(
            id=budget_id, scope_key=scope.key_text, tenant_id=scope.tenant, user_id=scope.user,
            key_id=scope.key, provider=scope.provider, model=scope.model, period=period,
            created_at=now, **values))
    budget = get_budget(conn, budget_id)
    _start_counter(conn, budget, now)
    _alert_standing(conn, budget, now)
    return budget


def _start_counter(conn: Connection, budget: Budget, now: datetime) -> None:
    """Seed the current period with what the ledger already holds for the scope."""
    start, end = budget.bounds(now)
    if conn.execute(select(budget_periods.c.budget_id).where(
            budget_periods.c.budget_id == budget.id,
            budget_periods.c.period_start == start)).first() is not None:
        return
    spent = spent_in_ledger(conn, budget, start, end)
    conn.execute(insert(budget_periods).values(budget_id=budget.id, period_start=start,
                                               spent=spent, reserved=ZERO))


def _alert_standing(conn: Connection, budget: Budget, now: datetime) -> None:
    """Alert on the thresholds the current period's spend already stands at: a budget set
    (or lowered) below what was spent never sees a crossing, yet is as much over as one
    crossed by a call. Each threshold alerts once per period, so setting it again adds none."""
    start, _ = budget.bounds(now)
    counter = counters(conn, [(budget.id, start)]).get((budget.id, start))
    if counter is not None and counter.spent > 0:
        _alert_crossings(conn, budget, start, ZERO, counter.spent, now)


def spent_in_ledger(conn: Connection, budget: Budget, start: datetime,
                    end: datetime | None) -> Decimal:
    """The scope's cost in the ledger over a period, in the budget's currency (archived
    records count: a ``total`` period reaches back past the archive's horizon)."""
    c = all_records("tenant_id", "user_id", "key_id", "provider", "model", "occurred_at",
                    "cost", "currency", "billed_cost", "billed_currency").c
    conditions = [c.occurred_at >= start, c.cost.is_not(None)]
    if end is not None:
        conditions.append(c.occurred_at < end)
    scope = budget.scope
    for column, value in ((c.tenant_id, scope.tenant), (c.user_id, scope.user),
                          (c.key_id, scope.key), (c.provider, scope.provider),
                          (c.model, scope.model)):
        if value is not None:
            conditions.append(column == value)
    wanted = budget.currency
    total = ZERO
    groups = conn.execute(select(c.currency, c.billed_currency, money_sum(c.cost).label("cost"),
                                 money_sum(c.billed_cost).label("billed"))
                          .where(*conditions).group_by(c.currency, c.billed_currency))
    needs_fx = []
    for group in groups:
        with localcontext(MONEY_CONTEXT):
            if group.currency == wanted:
                total += group.cost
            elif group.billed_currency == wanted and group.billed is not None:
                total += group.billed
            else:
                needs_fx.append(group.currency)
    if needs_fx:
        # Converted call by call, at the rate in force at each call's time.
        table = load_fx(conn)
        rows = conn.execute(select(c.cost, c.currency, c.occurred_at).where(
            *conditions, c.currency.in_(needs_fx),
            or_(c.billed_currency.is_(None), c.billed_currency != wanted)))
        for row in rows:
            with localcontext(MONEY_CONTEXT):
                total += convert(row.cost, row.currency, wanted, row.occurred_at, table)
    return total


def convert(cost: Decimal, currency: str, wanted: str, at: datetime, table: FxTable) -> Decimal:
    return table.converted(cost, currency, wanted, at)


def _in_currency(record: Mapping[str, Any], wanted: str, fx: Callable[[], FxTable]) -> Decimal:
    if record["currency"] == wanted:
        cost: Decimal = record["cost"]
        return cost
    if record.get("billed_cost") is not None and record.get("billed_currency") == wanted:
        billed: Decimal = record["billed_cost"]
        return billed
    return convert(record["cost"], record["currency"], wanted, record["occurred_at"], fx())


def get_budget(conn: Connection, budget_id: str) -> Budget:
    row = conn.execute(select(budgets).where(budgets.c.id == budget_id)).first()
    if row is None:
        raise NotFound(f"no budget {budget_id!r}", budget=budget_id)
    return _budget(row)


def budget_exists(conn: Connection, scope: Scope, period: str) -> bool:
    """Whether the scope has a budget of this period (saving it then changes that one)."""
    return conn.execute(select(budgets.c.id).where(
        budgets.c.scope_key == scope.key_text, budgets.c.period == period)).first() is not None


def list_budgets(conn: Connection, tenant_id: str | None = None) -> list[Budget]:
    query = select(budgets).order_by(budgets.c.created_at, budgets.c.id)
    if tenant_id is not None:
        query = query.where(budgets.c.tenant_id == tenant_id)
    return [_budget(row) for row in conn.execute(query)]


def delete_budget(conn: Connection, budget_id: str, now: datetime | None = None) -> None:
    """Delete a budget; its open alerts are resolved (kept, for the record), since nothing
    would ever resolve them once their budget is gone."""
    get_budget(conn, budget_id)
    conn.execute(update(alerts).where(alerts.c.budget_id == budget_id,
                                      alerts.c.resolved_at.is_(None))
                 .values(resolved_at=now or datetime.now(UTC)))
    conn.execute(delete(budget_holds).where(budget_holds.c.budget_id == budget_id))
    conn.execute(delete(budget_periods).where(budget_periods.c.budget_id == budget_id))
    conn.execute(delete(budgets).where(budgets.c.id == budget_id))


@dataclass(frozen=True, slots=True)
class Counter:
    spent: Decimal
    reserved: Decimal


def counters(conn: Connection, keys: Iterable[PeriodKey]) -> dict[PeriodKey, Counter]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    c = budget_periods.c
    rows = conn.execute(select(c.budget_id, c.period_start, c.spent, c.reserved).where(
        tuple_(c.budget_id, c.period_start).in_(wanted)))
    return {(r.budget_id, r.period_start): Counter(r.spent, r.reserved) for r in rows}


def _lock(conn: Connection, keys: Iterable[PeriodKey]) -> dict[PeriodKey, Counter]:
    """Make sure the period rows exist, lock them (in one order) and read them: one statement,
    an upsert whose no-op update takes the row locks (on SQLite, the write lock)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = conn.execute(_LOCK.get(conn), [
        {"budget_id": b, "period_start": p, "spent": ZERO, "reserved": ZERO}
        for b, p in wanted])
    return {(r.budget_id, r.period_start): Counter(r.spent, r.reserved) for r in rows}


def _lock_statement(conn: Connection) -> Any:
    c = budget_periods.c
    return upsert(conn, budget_periods).on_conflict_do_update(
        index_elements=["budget_id", "period_start"], set_={"reserved": c.reserved}
    ).returning(c.budget_id, c.period_start, c.spent, c.reserved)


_LOCK = PerDialect(_lock_statement)


_BIND_TYPES: dict[str, TypeEngine[Any]] = {
    "b_start": UtcDateTime(), "b_spent": Money(), "b_reserved": Money()}


def _store(conn: Connection, changed: Mapping[PeriodKey, Counter]) -> None:
    if not changed:
        return
    c = budget_periods.c
    conn.execute(update(budget_periods).where(
        c.budget_id == _bind("b_id"), c.period_start == _bind("b_start")).values(
        spent=_bind("b_spent"), reserved=_bind("b_reserved")),
        [{"b_id": b, "b_start": p, "b_spent": v.spent, "b_reserved": v.reserved}
         for (b, p), v in sorted(changed.items())])


def _bind(name: str) -> Any:
    return bindparam(name, type_=_BIND_TYPES.get(name))


@dataclass(frozen=True, slots=True)
class Hold:
    budget: Budget
    period_start: datetime
    period_end: datetime | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first budget a call did not fit, with its numbers at that moment."""

    hold: Hold
    spent: Decimal
    reserved: Decimal


def reserve(conn: Connection, request_id: str, holds: Sequence[Hold],
            expires_at: datetime) -> Refusal | None:
    """Hold every budget for the call, or none of them. Call inside a transaction; on a refusal
    nothing was changed that the caller must keep (it may roll back or commit)."""
    if not holds:
        return None
    decided = decide(holds, _lock(conn, [(h.budget.id, h.period_start) for h in holds]))
    if isinstance(decided, Refusal):
        return decided
    _store(conn, decided)
    conn.execute(insert(budget_holds), hold_rows(request_id, holds, expires_at))
    return None


def decide(holds: Sequence[Hold], found: Mapping[PeriodKey, Counter]
           ) -> dict[PeriodKey, Counter] | Refusal:
    """The counters after holding every budget, or the first that refuses."""
    changed: dict[PeriodKey, Counter] = {}
    with localcontext(MONEY_CONTEXT):
        for hold in sorted(holds, key=lambda h: (h.budget.id, h.period_start)):
            key = (hold.budget.id, hold.period_start)
            now = changed.get(key) or found[key]
            if hold.budget.mode == "block" and (
                    now.spent + now.reserved + hold.amount > hold.budget.limit):
                return Refusal(hold, now.spent, now.reserved)
            changed[key] = Counter(now.spent, now.reserved + hold.amount)
    return changed


def hold_rows(request_id: str, holds: Sequence[Hold], expires_at: datetime
              ) -> list[dict[str, Any]]:
    return [{"request_id": request_id, "budget_id": h.budget.id,
             "period_start": h.period_start, "amount": h.amount, "expires_at": expires_at}
            for h in holds]


def release(conn: Connection, request_ids: Sequence[str]) -> None:
    """Give back the holds of calls that never reached the provider."""
    if not request_ids:
        return
    rows = list(conn.execute(delete(budget_holds).where(
        budget_holds.c.request_id.in_(list(request_ids))).returning(
        budget_holds.c.budget_id, budget_holds.c.period_start, budget_holds.c.amount)))
    _apply(conn, {}, rows, [], datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Part:
    """An amount of one hold row: ``request_id`` holds it on a budget period."""

    request_id: str
    budget_id: str
    period_start: datetime
    amount: Decimal


def shrink(conn: Connection, parts: Sequence[Part]) -> None:
    """Give back parts of hold rows (a lease's unused part), where the row is still there (an
    expired row was released whole)."""
    c = budget_holds.c
    freed = [part for part in parts if conn.execute(
        update(budget_holds).where(c.request_id == part.request_id,
                                   c.budget_id == part.budget_id,
                                   c.period_start == part.period_start)
        .values(amount=c.amount - part.amount).returning(c.request_id)).first() is not None]
    _apply(conn, {}, freed, [], datetime.now(UTC))


def release_expired(conn: Connection, now: datetime | None = None) -> int:
    """Release holds whose call was never recorded in time (its process died)."""
    now = now or datetime.now(UTC)
    rows = list(conn.execute(delete(budget_holds).where(
        budget_holds.c.expires_at < now).returning(
        budget_holds.c.budget_id, budget_holds.c.period_start, budget_holds.c.amount)))
    _apply(conn, {}, rows, [], now)
    return len(rows)


def apply_records(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Count newly written ledger records against their budgets and release their holds.

    Runs in the ledger write's own transaction, so a record is counted exactly when it is
    written — once, however often it is delivered.
    """
    if not records:
        return
    all_budgets = [_budget(row) for row in conn.execute(select(budgets))]
    request_ids = [r["request_id"] for r in records if r.get("source") == "gateway"]
    released = []
    if request_ids:
        released = list(conn.execute(delete(budget_holds).where(
            budget_holds.c.request_id.in_(request_ids)).returning(
            budget_holds.c.budget_id, budget_holds.c.period_start, budget_holds.c.amount)))
    if not all_budgets and not released:
        return
    spent: dict[PeriodKey, Decimal] = defaultdict(Decimal)
    fx: list[FxTable] = []

    def table() -> FxTable:
        if not fx:
            fx.append(load_fx(conn))
        return fx[0]

    for record in records:
        if record.get("cost") is None:
            continue  # unpriced: counted when rerated
        for budget in all_budgets:
            if not budget.scope.covers(record["tenant_id"], record.get("user_id"),
                                       record.get("key_id"), record["provider"],
                                       record["model"]):
                continue
            try:
                amount = _in_currency(record, budget.currency, table)
            except FxRateMissing:
                # Not guessed: the budget cannot count this call until a rate covers it.
                continue
            start, _ = budget.bounds(record["occurred_at"])
            with localcontext(MONEY_CONTEXT):
                spent[(budget.id, start)] += amount
    _apply(conn, spent, released, all_budgets, datetime.now(UTC))


def _apply(conn: Connection, spent: Mapping[PeriodKey, Decimal], released: Sequence[Any],
           all_budgets: Sequence[Budget], now: datetime) -> None:
    freed: dict[PeriodKey, Decimal] = defaultdict(Decimal)
    with localcontext(MONEY_CONTEXT):
        for row in released:
            freed[(row.budget_id, row.period_start)] += row.amount
    keys = set(spent) | set(freed)
    if not keys:
        return
    found = _lock(conn, keys)
    changed = {}
    with localcontext(MONEY_CONTEXT):
        for key in keys:
            before = found[key]
            changed[key] = Counter(before.spent + spent.get(key, ZERO),
                                   max(ZERO, before.reserved - freed.get(key, ZERO)))
    _store(conn, changed)
    by_id = {b.id: b for b in all_budgets}
    for key, amount in spent.items():
        budget = by_id.get(key[0])
        if budget is not None and amount:
            _alert_crossings(conn, budget, key[1], found[key].spent, changed[key].spent, now)


def _alert_crossings(conn: Connection, budget: Budget, start: datetime, before: Decimal,
                     after: Decimal, now: datetime) -> None:
    label = period_label(budget.period, start, budget.zone)
    for level in crossed(budget.limit, budget.thresholds, before, after):
        add_alert(conn, threshold_alert(budget, start, level, after, label, now))
