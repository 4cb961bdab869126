"""The audit log of admin actions."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    String,
    Table,
    Text,
)

from meterline.store.tables.base import metadata
from meterline.store.types import Json, UtcDateTime

# -- the audit log (store/audit.py) -------------------------------------------------------------

# Admin actions, one row each, newest the highest id: who (an admin token's name,
# ``session:<name>`` for a dashboard session, ``cli``), what (``bill.issue``, ``key.revoke``, …),
# on which object, with the request's meaningful fields (never a secret). Rows are only added.
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("actor", String(80), nullable=False),
    Column("action", String(64), nullable=False),
    Column("tenant_id", String(64), nullable=True, index=True),
    Column("target", Text, nullable=True),
    Column("details", Json, nullable=False),
    Column("request_id", String(40), nullable=True),
)
