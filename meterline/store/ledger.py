"""The ledger: usage records and their charge lines, written once, idempotently.

``write_records`` inserts a batch in one transaction: records whose (tenant, event id) already
exist are skipped by the database itself (``ON CONFLICT DO NOTHING``), so concurrent writers of
the same event can never charge twice, and charge lines are written only for records that went
in. Records are immutable, with two exceptions that complete a record rather than change it, each
at most once and guarded by the state they leave: ``price_unpriced`` fills in the cost of a
record stored as ``unpriced``, and ``fill_fx`` the billed amount of one stored as ``fx_missing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    cast,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from meterline.domain.money import convert_lines, format_decimal
from meterline.domain.rating import ChargeLine
from meterline.store import archive, budgets, bulk, quotas, rollups
from meterline.store.schema import (
    charge_lines,
    charge_lines_archive,
    usage_records,
    usage_records_archive,
)

PRICED = "priced"
UNPRICED = "unpriced"

if ["request_id", "line_no", *ChargeLine._fields] != bulk.LINE_COLUMNS:
    raise RuntimeError("charge_lines' columns must be request_id, line_no and ChargeLine's fields")


@dataclass(slots=True)
class NewRecord:
    """One row of ``usage_records`` (as a dict of columns) and its charge lines."""

    row: dict[str, Any]
    lines: Sequence[ChargeLine] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Existing:
    request_id: str
    cost: Decimal | None
    currency: str | None
    status: str
    pricing: str


def write_records(conn: Connection, records: Sequence[NewRecord]) -> set[str]:
    """Insert what is new; returns the event ids actually inserted (the rest were duplicates).

    All records of one call must belong to one tenant.
    """
    # A ChargeLine's fields are charge_lines' columns after (request_id, line_no).
    line_rows = [(r.row["request_id"], number, *line)
                 for r in records for number, line in enumerate(r.lines, start=1)]
    rows = [r.row for r in records]
    days = rollups.days(conn, rows) if bulk.keeps_rollups(conn) else []
    inserted = bulk.write(conn, rows, line_rows, days)
    # Budgets, quotas and rollups count what went in, in this same transaction (SPEC §7.3).
    written = [r for r in records if r.row["event_id"] in inserted]
    new = [r.row for r in written]
    budgets.apply_records(conn, new)
    quotas.apply_records(conn, new)
    if not bulk.keeps_rollups(conn):
        rollups.apply_records(conn, new, [r.lines for r in written])
    return inserted


def line_row(request_id: str, line_no: int, line: ChargeLine) -> dict[str, Any]:
    return {"request_id": request_id, "line_no": line_no, "meter": line.meter,
            "quantity": line.quantity, "unit": line.unit, "unit_price": line.unit_price,
            "per": line.per, "amount": line.amount}


def existing(conn: Connection, tenant_id: str, event_ids: Sequence[str]) -> dict[str, Existing]:
    if not event_ids:
        return {}
    c = usage_records.c
    rows = conn.execute(select(c.event_id, c.request_id, c.cost, c.currency, c.status, c.pricing)
                        .where(c.tenant_id == tenant_id, c.event_id.in_(list(event_ids))))
    return {r.event_id: Existing(r.request_id, r.cost, r.currency, r.status, r.pricing)
            for r in rows}


def unpriced(conn: Connection, limit: int = 1000, after: str = "") -> list[Any]:
    c = usage_records.c
    return list(conn.execute(
        select(usage_records).where(c.pricing == UNPRICED, c.request_id > after)
        .order_by(c.request_id).limit(limit)
    ))


def price_unpriced(conn: Connection, request_id: str, values: dict[str, Any],
                   lines: Sequence[ChargeLine]) -> bool:
    """Fill in an unpriced record's cost once; False if someone else already did."""
    c = usage_records.c
    # As it was, for the rollups: rerating may change its model as well as its cost.
    before = conn.execute(select(usage_records).where(c.request_id == request_id)).first()
    if before is None or before.pricing != UNPRICED:
        return False
    done = conn.execute(update(usage_records)
                        .where(c.request_id == request_id, c.pricing == UNPRICED)
                        .values(pricing=PRICED, **values))
    if done.rowcount != 1:
        return False
    if lines:
        conn.execute(charge_lines.insert(), [line_row(request_id, number, line)
                                             for number, line in enumerate(lines, start=1)])
    # Its cost now counts towards the budgets covering it (its quota units already did).
    priced = conn.execute(select(usage_records).where(c.request_id == request_id)).one()
    budgets.apply_records(conn, [{**priced._mapping, "source": "rerate"}])
    rollups.replace_record(conn, before._mapping, (), priced._mapping, lines)
    return True


def fx_missing(conn: Connection, limit: int = 1000, after: str = "") -> list[Any]:
    c = usage_records.c
    return list(conn.execute(
        select(c.request_id, c.tenant_id, c.cost, c.currency, c.occurred_at)
        .where(c.fx_missing.is_(True), c.request_id > after).order_by(c.request_id).limit(limit)
    ))


def fill_fx(conn: Connection, request_id: str, billed_currency: str, fx_rate: Decimal) -> bool:
    """Convert a record that had no FX rate, once, line by line (``convert_lines``, as
    pricing does); False if someone else already did."""
    c = usage_records.c
    lines = list(conn.execute(select(charge_lines).where(charge_lines.c.request_id == request_id)))
    billed_cost = convert_lines((line.amount for line in lines), fx_rate)
    done = conn.execute(update(usage_records)
                        .where(c.request_id == request_id, c.fx_missing.is_(True))
                        .values(fx_missing=False, billed_cost=billed_cost,
                                billed_currency=billed_currency, fx_rate=fx_rate, warning=None))
    if done.rowcount != 1:
        return False
    # Its lines move from "not converted" to the billed currency in the rollups.
    after = conn.execute(select(usage_records).where(c.request_id == request_id)).one()._mapping
    rollups.replace_record(conn, {**after, "billed_cost": None, "billed_currency": None,
                                  "fx_rate": None}, lines, after, lines)
    return True


def lines_of(conn: Connection, request_ids: Sequence[str],
             archived: bool = False) -> dict[str, list[dict[str, str]]]:
    """The charge lines of records (``archived``: of archived records too)."""
    out: dict[str, list[dict[str, str]]] = {rid: [] for rid in request_ids}
    if not request_ids:
        return out
    source = archive.all_lines() if archived else charge_lines
    c = source.c
    rows = conn.execute(select(source).where(c.request_id.in_(list(request_ids)))
                        .order_by(c.request_id, c.line_no))
    for r in rows:
        out[r.request_id].append({
            "meter": r.meter, "quantity": format_decimal(r.quantity), "unit": r.unit,
            "unit_price": format_decimal(r.unit_price), "amount": format_decimal(r.amount)})
    return out


def find_record(conn: Connection, request_id: str) -> tuple[Any, list[Any]] | None:
    """A record, hot or archived, with its charge line rows in order; None if there is none."""
    for records, lines in ((usage_records, charge_lines),
                           (usage_records_archive, charge_lines_archive)):
        row = conn.execute(select(records).where(records.c.request_id == request_id)).first()
        if row is not None:
            return row, list(conn.execute(select(lines).where(lines.c.request_id == request_id)
                                          .order_by(lines.c.line_no)))
    return None


def record_of_event(conn: Connection, tenant_id: str, event_id: str) -> Any:
    """The record of a tenant's event, hot or archived (it must exist)."""
    source = archive.all_records()
    c = source.c
    return conn.execute(select(source).where(c.tenant_id == tenant_id,
                                             c.event_id == event_id)).one()


def list_records(conn: Connection, *, tenant_id: str | None = None, user_id: str | None = None,
                 key_id: str | None = None, model: str | None = None,
                 provider: str | None = None, status: str | None = None,
                 request_id: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 100,
                 archived: bool = False, after: tuple[datetime, str] | None = None,
                 metadata_value: tuple[str, str] | None = None) -> list[Any]:
    """Records of the hot table, newest first (``archived``: of the archive too).

    ``after``: the (time, request id) of the last record of the page before, for keyset
    paging in this order; ``metadata_value``: records whose metadata has key = value."""
    source = archive.all_records() if archived else usage_records
    c = source.c
    query = select(source)
    for column, value in ((c.tenant_id, tenant_id), (c.user_id, user_id), (c.key_id, key_id),
                          (c.model, model), (c.provider, provider), (c.status, status),
                          (c.request_id, request_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(c.occurred_at >= since)
    if until is not None:
        query = query.where(c.occurred_at < until)
    if after is not None:
        at, last_id = after
        # The plain bound first, so the time index bounds the scan; then the tie on time.
        query = query.where(c.occurred_at <= at,
                            or_(c.occurred_at < at, c.request_id > last_id))
    if metadata_value is not None:
        query = query.where(_metadata_text(conn, c.metadata, metadata_value[0])
                            == metadata_value[1])
    return list(conn.execute(query.order_by(c.occurred_at.desc(), c.request_id).limit(limit)))


def _metadata_text(conn: Connection, column: Any, key: str) -> ColumnElement[Any]:
    """A record's metadata value under ``key``, as text (metadata is JSON stored as text)."""
    if conn.dialect.name == "postgresql":
        found: ColumnElement[Any] = cast(column, JSONB)[key].astext
        return found
    if '"' in key:  # not expressible as an SQLite JSON path: no record matches
        return null()
    return cast(func.json_extract(column, f'$."{key}"'), String)
