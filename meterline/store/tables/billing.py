"""Provider bills: imported or synced bill lines, sync runs, balances."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, Money, UtcDateTime

# -- provider bills (store/provider_bills.py) -----------------------------------------------------

# What providers billed, per model and charge period, imported from their bill files: the other
# side of reconciliation. An import replaces the lines of its providers over the days it covers.
provider_bill_lines = Table(
    "provider_bill_lines", metadata,
    Column("provider", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("amount", Money, nullable=False),
    Column("source", String(16), nullable=False),
    Column("imported_at", UtcDateTime, nullable=False),
    # The provider's rows the line sums (a list of JSON objects; None for older imports).
    Column("raw", Json, nullable=True),
)


# -- bill syncs and balances (store/sync_runs.py, store/provider_bills.py) -----------------------

# One row per sync of a provider account's bill (``meterline sync --provider``, ``POST
# /api/sync``, the daily schedule), newest the highest id. A scheduled run is claimed by its
# (provider, account, cycle, day, trigger) row, so among several processes one runs a day's
# sync; other runs have no day (NULLs never clash). ``error`` is scrubbed of credentials.
sync_runs = Table(
    "sync_runs", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("cycle", String(7), nullable=False),
    Column("day", Date, nullable=True),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("lines", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("progress", Json, nullable=True),
    Column("summary", Json, nullable=True),
    UniqueConstraint("provider", "account", "cycle", "day", "trigger"),
)

# What each provider account held, as its provider said it, appended on every sync.
provider_balances = Table(
    "provider_balances", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Index("ix_provider_balances_account_at", "provider", "account", "at"),
)
