"""Stored bills and what bills are built from.

Only bills that left ``open`` are stored (``bills``, ``bill_lines``): a snapshot of their lines
taken at that moment, never changed afterwards except for the status and its time. An open bill
is summed live from ``usage_daily_meters`` (:func:`meter_sums`) by meterline.services.bills.

``user_id`` is ``''`` for a tenant's own bill (NULL would defeat the primary key).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from meterline.domain.bills import Bill, BillLine, BillStatus
from meterline.domain.money import MONEY_CONTEXT
from meterline.errors import Conflict, StoreError
from meterline.store.schema import bill_lines, bills, usage_daily, usage_daily_meters
from meterline.store.types import money_sum

#: The time column each stored status fills in.
STATUS_TIME = {BillStatus.ISSUED: "issued_at", BillStatus.PAID: "paid_at",
               BillStatus.VOID: "voided_at"}


@dataclass(frozen=True, slots=True)
class StoredBill:
    """A stored bill, its lines (in their canonical order) and the times of its changes."""

    bill: Bill
    pers: tuple[int, ...]
    exact_total: Decimal
    issued_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None


def _user(user: str | None) -> str:
    return user or ""


def meter_sums(conn: Connection, tenant: str, user: str | None, first: date,
               last: date) -> list[Any]:
    """The rollup of a range of tenant-local days (a cycle), summed per line key and currency
    pair: ``model, meter, unit, per, unit_price, currency, billed_currency, refund`` →
    ``lines, quantity, amount, billed_amount`` (exact: NUMERIC, or the Decimal aggregate)."""
    c = usage_daily_meters.c
    keys = [c.model, c.meter, c.unit, c.per, c.unit_price, c.currency, c.billed_currency,
            c.refund]
    query = (select(*keys, cast(func.sum(c.lines), BigInteger).label("lines"),
                    money_sum(c.quantity).label("quantity"), money_sum(c.amount).label("amount"),
                    money_sum(c.billed_amount).label("billed_amount"))
             .where(c.tenant_id == tenant, c.day >= first, c.day <= last))
    if user is not None:
        query = query.where(c.user_id == user)
    return list(conn.execute(query.group_by(*keys)))


def unpriced_calls(conn: Connection, tenant: str, user: str | None, first: date,
                   last: date) -> int:
    """Calls of a range of days still without a price (no charge lines yet)."""
    c = usage_daily.c
    query = select(cast(func.coalesce(func.sum(c.unpriced_calls), 0), BigInteger)).where(
        c.tenant_id == tenant, c.day >= first, c.day <= last)
    if user is not None:
        query = query.where(c.user_id == user)
    return int(conn.execute(query).scalar_one())


def statuses(conn: Connection, tenant: str, user: str | None) -> dict[str, BillStatus]:
    """cycle -> status of every stored bill of one tenant (or one user of it)."""
    c = bills.c
    rows = conn.execute(select(c.cycle, c.status).where(c.tenant_id == tenant,
                                                        c.user_id == _user(user)))
    return {r.cycle: BillStatus(r.status) for r in rows}


def _line(row: Any) -> BillLine:
    return BillLine(row.model, row.meter, row.quantity, row.unit, row.unit_price, row.amount,
                    adjustment_of=row.adjustment_of, refund=bool(row.refund),
                    unrounded=row.unrounded, price_currency=row.price_currency)


def lines_of(conn: Connection, tenant: str, user: str | None,
             cycles: Iterable[str]) -> dict[str, list[Any]]:
    """The stored line rows of some bills, by cycle, in line order."""
    c = bill_lines.c
    return _rows_by(conn, tenant, user, cycles, c.cycle, (c.cycle, c.line_no))


def carried(conn: Connection, tenant: str, user: str | None,
            cycles: Iterable[str]) -> dict[str, list[Any]]:
    """Stored adjustment line rows, by the cycle they adjust (``adjustment_of``)."""
    c = bill_lines.c
    return _rows_by(conn, tenant, user, cycles, c.adjustment_of, ())


def _rows_by(conn: Connection, tenant: str, user: str | None, cycles: Iterable[str],
             column: Any, order: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Line rows of one tenant's (or user's) bills whose ``column`` is one of ``cycles``."""
    wanted = sorted(set(cycles))
    out: dict[str, list[Any]] = {cycle: [] for cycle in wanted}
    if wanted:
        c = bill_lines.c
        for row in conn.execute(select(bill_lines).where(
                c.tenant_id == tenant, c.user_id == _user(user), column.in_(wanted))
                .order_by(*order)):
            out[getattr(row, column.name)].append(row)
    return out


def get(conn: Connection, tenant: str, user: str | None, cycle: str) -> StoredBill | None:
    c = bills.c
    row = conn.execute(select(bills).where(c.tenant_id == tenant, c.user_id == _user(user),
                                           c.cycle == cycle)).first()
    if row is None:
        return None
    rows = lines_of(conn, tenant, user, [cycle])[cycle]
    bill = Bill(row.tenant_id, row.user_id or None, row.cycle, row.currency,
                BillStatus(row.status), tuple(_line(r) for r in rows), row.total)
    return StoredBill(bill, tuple(r.per for r in rows), row.exact_total, row.issued_at,
                      row.paid_at, row.voided_at)


def _write_error(exc: Exception, bill: Bill) -> Exception:
    if isinstance(exc, IntegrityError):
        return Conflict(f"bill {bill.label()} changed meanwhile (another request stored it "
                        "first); read it again", tenant=bill.tenant, cycle=str(bill.cycle))
    cause = getattr(exc, "orig", exc)
    return StoreError(f"storing bill {bill.label()} failed: {cause}", retryable=True)


def insert_snapshot(conn: Connection, bill: Bill, pers: Sequence[int], at: datetime) -> None:
    """Store a bill that just left ``open`` (issued or void), with its lines as they are."""
    exact = Decimal(0)
    for line in bill.lines:
        exact = MONEY_CONTEXT.add(exact, line.exact_amount)
    values: dict[str, Any] = {
        "tenant_id": bill.tenant, "user_id": _user(bill.user), "cycle": str(bill.cycle),
        "currency": bill.currency, "status": bill.status.value, "total": bill.total,
        "exact_total": exact, "issued_at": None, "paid_at": None, "voided_at": None}
    values[STATUS_TIME[bill.status]] = at
    rows = [{"tenant_id": bill.tenant, "user_id": _user(bill.user), "cycle": str(bill.cycle),
             "line_no": number, "model": line.model, "meter": line.meter, "unit": line.unit,
             "per": per, "unit_price": line.unit_price,
             "price_currency": line.price_currency or bill.currency, "refund": line.refund,
             "adjustment_of": line.adjustment_of, "quantity": line.quantity,
             "amount": line.amount, "unrounded": line.exact_amount}
            for number, (line, per) in enumerate(zip(bill.lines, pers, strict=True), start=1)]
    try:
        conn.execute(insert(bills).values(values))
        if rows:
            conn.execute(insert(bill_lines), rows)
    except (IntegrityError, OperationalError) as exc:
        raise _write_error(exc, bill) from exc


def set_status(conn: Connection, bill: Bill, before: BillStatus, at: datetime) -> None:
    """A stored bill's new status (its lines stay); refused if someone changed it meanwhile."""
    c = bills.c
    try:
        done = conn.execute(update(bills).where(
            c.tenant_id == bill.tenant, c.user_id == _user(bill.user),
            c.cycle == str(bill.cycle), c.status == before.value)
            .values({"status": bill.status.value, STATUS_TIME[bill.status]: at}))
    except OperationalError as exc:
        raise _write_error(exc, bill) from exc
    if done.rowcount != 1:
        raise Conflict(f"bill {bill.label()} is no longer {before}; read it again",
                       tenant=bill.tenant, cycle=str(bill.cycle))


def list_stored(conn: Connection, tenant: str | None, user: str | None,
                status: BillStatus | None, limit: int) -> list[Any]:
    """Stored bills (with their number of lines), newest cycle first."""
    c = bills.c
    count = (select(func.count()).where(bill_lines.c.tenant_id == c.tenant_id,
                                        bill_lines.c.user_id == c.user_id,
                                        bill_lines.c.cycle == c.cycle)
             .scalar_subquery().label("lines"))
    query = select(bills, count)
    if tenant is not None:
        query = query.where(c.tenant_id == tenant)
    if user is not None:
        query = query.where(c.user_id == user)
    if status is not None:
        query = query.where(c.status == status.value)
    return list(conn.execute(query.order_by(c.cycle.desc(), c.tenant_id, c.user_id)
                             .limit(limit)))
