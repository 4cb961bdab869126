"""Stored (issued) bills and their lines."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Money, UtcDateTime

# -- bills ---------------------------------------------------------------------------------------

# Issued, paid and void bills, each a snapshot taken when it left ``open`` (an open bill is
# computed from the rollups and never stored). ``user_id`` '' is the tenant's own bill. A
# status change fills in its time; lines and totals never change (services/bills.py).
bills = Table(
    "bills", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("cycle", String(7), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(8), nullable=False),
    Column("total", Money, nullable=False),
    Column("exact_total", Money, nullable=False),
    Column("issued_at", UtcDateTime, nullable=True),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    Index("ix_bills_status", "status", "tenant_id"),
)

# The lines of a stored bill as issued (``amount`` rounded, ``unrounded`` exact), in the bill's
# canonical order. ``adjustment_of``: the earlier cycle whose late usage (or refund) the line
# carries; late usage of a cycle is what its rollups hold beyond these snapshots.
bill_lines = Table(
    "bill_lines", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("cycle", String(7), primary_key=True),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("model", String(200), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("per", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("refund", Boolean, nullable=False),
    Column("adjustment_of", String(7), nullable=True),
    Column("quantity", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("unrounded", Money, nullable=False),
    Index("ix_bill_lines_adjustment_of", "tenant_id", "user_id", "adjustment_of"),
)
