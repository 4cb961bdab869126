"""``INSERT … ON CONFLICT DO NOTHING`` for whichever backend a connection uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, conflict: list[str]) -> Any:
    """An insert that skips rows clashing on the ``conflict`` columns."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
