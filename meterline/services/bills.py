"""Bills of a tenant, or of one user of it, per cycle (docs/bills.md).

* **Open** bills are computed, never stored: the ``usage_daily_meters`` rows of the cycle's days
  (tenant-local days, so a cycle is exactly a range of rollup days), summed per model, meter,
  unit, unit price, price currency and refund, in the tenant's currency (``billed_amount``).
  Lines the ledger could not convert (no FX rate at the call's time) are left out and listed
  under ``unconverted`` in their price currency; no rate is ever guessed.
* **Late usage**: a cycle C that left ``open`` is carried by the next cycle N that has not. N's
  bill gets, per line key, the adjustment ``rollups of C − C's own snapshot lines − adjustment
  lines of C already stored on later bills`` (exact, unrounded amounts), so each unit of usage
  is billed exactly once however often bills are read or issued. Void cycles are written off:
  nothing of them is carried.
* **Issued, paid, void** bills are snapshots (meterline.store.bills); a status change only
  changes the status and its time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Engine

from meterline.domain.bills import (
    MIN_YEAR,
    Bill,
    BillLine,
    BillStatus,
    Cycle,
    adjustment_lines,
    bill_status,
    open_bill,
    parse_cycle,
    to_json,
    transition,
    transition_many,
)
from meterline.domain.money import format_decimal
from meterline.errors import BatchRefused, Conflict, InvalidInput, UnknownUser
from meterline.store import audit
from meterline.store import bills as store
from meterline.store.accounts import Tenant, get_tenant, has_user
from meterline.store.audit import Actor, Change
from meterline.store.rollup_writes import SUM_CONTEXT, ZERO

#: model, meter, unit, per, unit_price, price currency, refund
Key = tuple[str, str, str, int, Decimal, str, bool]
Sums = dict[Key, tuple[Decimal, Decimal]]
MAX_LIST = 10_000


def days(cycle: Cycle) -> tuple[date, date]:
    """The first and last tenant-local day of a cycle."""
    following = cycle.next()
    return date(cycle.year, cycle.month, 1), date(following.year, following.month, 1) - \
        timedelta(days=1)


def _text(value: object, name: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > longest \
            or "\x00" in value:
        raise InvalidInput(f"{name}: give an id of 1 to {longest} characters", field=name)
    return value


def tenant_of(conn: Connection, name: object) -> Tenant:
    return get_tenant(conn, _text(name, "tenant", 64))  # UnknownTenant: 404


def user_of(conn: Connection, tenant: Tenant, user: object) -> str | None:
    """None (the tenant's bill) or a user the tenant has had; "" counts as none."""
    if user is None or user == "":
        return None
    found = _text(user, "user", 128)
    if not has_user(conn, tenant.id, found):
        raise UnknownUser(f"tenant {tenant.id!r} has no user {found!r}", field="user")
    return found


@dataclass
class _Cycle:
    """A cycle's rollups: billable sums per key, and what could not be converted."""

    lines: Sums = field(default_factory=dict)
    per: dict[str, int] = field(default_factory=dict)
    unconverted: dict[tuple[str, str], tuple[Decimal, int]] = field(default_factory=dict)


def _add(into: Sums, key: Key, quantity: Decimal, amount: Decimal) -> None:
    q, a = into.get(key, (ZERO, ZERO))
    into[key] = (SUM_CONTEXT.add(q, quantity), SUM_CONTEXT.add(a, amount))


def _sums(conn: Connection, tenant: Tenant, user: str | None, cycle: Cycle) -> _Cycle:
    out = _Cycle()
    for row in store.meter_sums(conn, tenant.id, user, *days(cycle)):
        out.per[row.unit] = row.per
        if row.billed_currency == tenant.currency:
            key = (row.model, row.meter, row.unit, row.per, row.unit_price, row.currency,
                   bool(row.refund))
            _add(out.lines, key, row.quantity, row.billed_amount)
        else:  # not converted (yet): never guessed
            amount, count = out.unconverted.get((row.model, row.currency), (ZERO, 0))
            out.unconverted[(row.model, row.currency)] = (SUM_CONTEXT.add(amount, row.amount),
                                                          count + row.lines)
    return out


def _line(key: Key, quantity: Decimal, amount: Decimal, adjustment_of: str | None) -> BillLine:
    model, meter, unit, _, unit_price, price_currency, refund = key
    return BillLine(model, meter, quantity, unit, unit_price, amount,
                    adjustment_of=adjustment_of, refund=refund, price_currency=price_currency)


def _stored_key(row: Any) -> Key:
    return (row.model, row.meter, row.unit, row.per, row.unit_price, row.price_currency,
            bool(row.refund))


def carried_cycles(cycle: Cycle, closed: Mapping[str, BillStatus]) -> list[Cycle]:
    """The closed cycles whose next not-closed cycle is ``cycle`` (void ones written off)."""
    found: list[Cycle] = []
    earlier = cycle.previous()
    while str(earlier) in closed:
        if closed[str(earlier)] is not BillStatus.VOID:
            found.append(earlier)
        if earlier == Cycle(MIN_YEAR, 1):
            break
        earlier = earlier.previous()
    return found


def _late(conn: Connection, tenant: Tenant, user: str | None, cycles: Sequence[Cycle],
          sums_of: dict[Cycle, _Cycle]) -> list[BillLine]:
    names = [str(c) for c in cycles]
    snapshots = store.lines_of(conn, tenant.id, user, names)
    already = store.carried(conn, tenant.id, user, names)
    out: list[BillLine] = []
    for cycle in cycles:
        sums = sums_of[cycle]
        late = dict(sums.lines)
        billed = [r for r in snapshots[str(cycle)] if r.adjustment_of is None]
        for row in (*billed, *already[str(cycle)]):
            _add(late, _stored_key(row), row.quantity.copy_negate(),
                 row.unrounded.copy_negate())
        found = []
        for key, (quantity, amount) in late.items():
            if not quantity and not amount:
                continue
            refund = key[6]
            if (quantity > 0 or amount > 0) if refund else (quantity < 0 or amount < 0):
                kind = "refunds" if refund else "usage"
                raise Conflict(
                    f"cycle {cycle} of {tenant.id}: the ledger's {kind} of {key[0]} {key[1]} "
                    f"differ from its closed bills by {format_decimal(quantity)} units, "
                    f"{format_decimal(amount)} {tenant.currency}, against the direction "
                    "usage only grows in; were records of a closed cycle removed? "
                    "`meterline stats rebuild` recomputes the rollups from the records",
                    cycle=str(cycle))
            found.append(_line(key, quantity, amount, None))
        out.extend(adjustment_lines(cycle, found))
    return out


class Unconverted(NamedTuple):
    """Lines of a model that no FX rate converted: their amount in the price ``currency``
    (``adjustment_of``: the earlier cycle they were carried from)."""

    model: str
    currency: str
    amount: Decimal
    lines: int
    adjustment_of: str | None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "currency": self.currency,
                "amount": format_decimal(self.amount), "lines": self.lines,
                "adjustment_of": self.adjustment_of}


@dataclass(frozen=True, slots=True)
class BillView:
    """A bill as the API and CLI show it, and what they need besides (timezone, unit sizes)."""

    tenant: Tenant
    bill: Bill
    per: Mapping[str, int]
    unconverted: list[Unconverted]
    unpriced_calls: int
    stored: store.StoredBill | None = None

    @property
    def pers(self) -> list[int]:
        return [self.per.get(line.unit, line.per) for line in self.bill.lines]

    def to_json(self) -> dict[str, Any]:
        out = to_json(self.bill)
        exact = ZERO
        for body, line in zip(out["lines"], self.bill.lines, strict=True):
            body["unrounded"] = format_decimal(line.exact_amount)
            exact = SUM_CONTEXT.add(exact, line.exact_amount)
        out["exact_total"] = format_decimal(exact)
        out["unconverted"] = [item.to_json() for item in self.unconverted]
        out["unpriced_calls"] = self.unpriced_calls
        stored = self.stored
        for name in ("issued_at", "paid_at", "voided_at"):
            at = getattr(stored, name) if stored is not None else None
            out[name] = at.isoformat() if at is not None else None
        return out


def _unconverted(sums: _Cycle, adjustment_of: str | None) -> list[Unconverted]:
    return [Unconverted(model, currency, amount, count, adjustment_of)
            for (model, currency), (amount, count) in sorted(sums.unconverted.items())]


def load(conn: Connection, tenant_name: object, cycle_name: object,
         user_name: object = None) -> BillView:
    """The bill: stored if it left ``open``, else computed from the rollups now."""
    tenant = tenant_of(conn, tenant_name)
    cycle = parse_cycle(cycle_name)
    user = user_of(conn, tenant, user_name)
    first, last = days(cycle)
    unpriced = store.unpriced_calls(conn, tenant.id, user, first, last)
    closed = store.statuses(conn, tenant.id, user)
    own = _sums(conn, tenant, user, cycle)
    unconverted = _unconverted(own, None)
    if str(cycle) in closed:
        stored = store.get(conn, tenant.id, user, str(cycle))
        if stored is not None:
            per = {line.unit: p for line, p in zip(stored.bill.lines, stored.pers, strict=True)}
            return BillView(tenant, stored.bill, per, unconverted, unpriced, stored)
    lines = [_line(key, q, a, None) for key, (q, a) in own.lines.items() if q or a]
    per = dict(own.per)
    carried = carried_cycles(cycle, closed)
    if carried:
        sums_of = {c: _sums(conn, tenant, user, c) for c in carried}
        lines += _late(conn, tenant, user, carried, sums_of)
        for c in carried:
            per.update(sums_of[c].per)
            unconverted += _unconverted(sums_of[c], str(c))
    bill = open_bill(tenant.id, cycle, tenant.currency, lines, user=user)
    return BillView(tenant, bill, per, unconverted, unpriced)


def get_bill(engine: Engine, tenant: object, cycle: object, user: object = None) -> BillView:
    with engine.connect() as conn:
        return load(conn, tenant, cycle, user)


def _store(conn: Connection, view: BillView, new: Bill, at: datetime) -> BillView:
    if view.bill.status is BillStatus.OPEN:
        store.insert_snapshot(conn, new, view.pers, at)
    else:
        store.set_status(conn, new, view.bill.status, at)
    stored = store.get(conn, new.tenant, new.user, str(new.cycle))
    return BillView(view.tenant, new, view.per, view.unconverted, view.unpriced_calls, stored)


#: The audit log's action of each status a bill is moved to.
ACTIONS: Final = {BillStatus.ISSUED: "bill.issue", BillStatus.PAID: "bill.pay",
                  BillStatus.VOID: "bill.void"}


def _change(before: BillView, after: BillView, batch: int | None = None) -> Change:
    """The audit entry of a status change: the bill ``tenant/cycle`` (``/user`` for a user's)."""
    bill = after.bill
    details: dict[str, Any] = {"tenant": bill.tenant, "cycle": str(bill.cycle),
                               "user": bill.user, "from": before.bill.status.value,
                               "to": bill.status.value, "total": format_decimal(bill.total),
                               "currency": bill.currency}
    if batch is not None:
        details["batch"] = batch
    target = f"{bill.tenant}/{bill.cycle}" + (f"/{bill.user}" if bill.user else "")
    return Change(ACTIONS[bill.status], target, bill.tenant, details)


def set_status(engine: Engine, tenant: object, cycle: object, status: object,
               user: object = None, now: datetime | None = None, *,
               actor: Actor | None) -> BillView:
    """One bill's status change (InvalidTransition, 400, when the life cycle refuses it)."""
    target = bill_status(status)
    at = now or datetime.now(UTC)
    with engine.begin() as conn:
        view = load(conn, tenant, cycle, user)
        done = _store(conn, view, transition(view.bill, target), at)
        audit.record_all(conn, actor, [_change(view, done)])
        return done


def _item(raw: object, index: int) -> tuple[object, object, object]:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"bills[{index}]: must be an object with tenant, cycle and "
                           "optionally user", field="bills")
    unknown = set(raw) - {"tenant", "cycle", "user"}
    if unknown:
        raise InvalidInput(f"bills[{index}]: unknown field {sorted(unknown)[0]!r}",
                           field="bills")
    return raw.get("tenant"), raw.get("cycle"), raw.get("user")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The bills a batch changed, all to ``status``."""

    status: BillStatus
    bills: list[BillView]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "bills": [v.to_json() for v in self.bills]}


def set_status_many(engine: Engine, status: object, items: object,
                    now: datetime | None = None, *, actor: Actor | None) -> StatusChange:
    """All or nothing: every bill changes, or none does and every refusal is listed."""
    target = bill_status(status)
    if not isinstance(items, list) or not items or len(items) > 1000:
        raise InvalidInput("bills: give a list of 1 to 1000 bills", field="bills")
    wanted = [_item(raw, i) for i, raw in enumerate(items)]
    at = now or datetime.now(UTC)
    with engine.begin() as conn:
        views = []
        for index, (tenant, cycle, user) in enumerate(wanted):
            try:
                views.append(load(conn, tenant, cycle, user))
            except InvalidInput as exc:
                raise InvalidInput(f"bills[{index}].{exc.message}", field=exc.field) from None
        changed, refusals = transition_many([v.bill for v in views], target)
        if refusals:
            raise BatchRefused(
                f"status: {len(refusals)} of {len(views)} bills cannot become {target}; "
                "none was changed", field="status", refusals=[r.to_json() for r in refusals])
        done = [_store(conn, view, new, at) for view, new in zip(views, changed, strict=True)]
        audit.record_all(conn, actor, [_change(view, after, len(done))
                                       for view, after in zip(views, done, strict=True)])
    return StatusChange(target, done)


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """A stored bill as the list shows it: its totals and line count, not its lines."""

    tenant: str
    user: str | None
    cycle: str
    currency: str
    status: str
    total: Decimal
    exact_total: Decimal
    lines: int
    issued_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "user": self.user, "cycle": self.cycle,
                "currency": self.currency, "status": self.status,
                "total": format_decimal(self.total),
                "exact_total": format_decimal(self.exact_total), "lines": self.lines,
                **{name: (at.isoformat() if at else None) for name, at in (
                    ("issued_at", self.issued_at), ("paid_at", self.paid_at),
                    ("voided_at", self.voided_at))}}


def _summary(row: Any) -> StoredSummary:
    return StoredSummary(row.tenant_id, row.user_id or None, row.cycle, row.currency,
                         row.status, row.total, row.exact_total, row.lines, row.issued_at,
                         row.paid_at, row.voided_at)


def list_bills(engine: Engine, tenant: object = None, status: object = None,
               user: object = None, limit: int = 1000) -> list[StoredSummary]:
    """Stored (issued, paid, void) bills, newest cycle first; open bills are not stored."""
    wanted = None if status in (None, "") else bill_status(status)
    if wanted is BillStatus.OPEN:
        raise InvalidInput("status: open bills are not stored (GET /api/bills/{tenant}/{cycle} "
                           "computes them); list issued, paid or void", field="status")
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: 1 to {MAX_LIST}", field="limit")
    with engine.connect() as conn:
        found = None if tenant in (None, "") else tenant_of(conn, tenant)
        if found is None and user not in (None, ""):
            raise InvalidInput("user: name the tenant too", field="user")
        who = None if found is None else user_of(conn, found, user)
        rows = store.list_stored(conn, found.id if found else None, who, wanted, limit)
    return [_summary(row) for row in rows]
