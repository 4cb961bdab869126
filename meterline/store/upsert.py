"""``INSERT … ON CONFLICT DO NOTHING`` for whichever backend a connection uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, conflict: list[str] | None) -> Any:
    """An insert that skips rows clashing on the ``conflict`` columns (None: on any unique
    constraint of the table)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)


def upsert(conn: Connection, table: Table) -> Any:
    """The backend's ``INSERT`` with ``on_conflict_do_update`` (and ``.excluded``)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


class PerDialect:
    """A statement built once per backend, so SQLAlchemy's compiled cache serves it."""

    def __init__(self, build: Callable[[Connection], Any]) -> None:
        self.build = build
        self._built: dict[str, Any] = {}

    def get(self, conn: Connection) -> Any:
        found = self._built.get(conn.dialect.name)
        if found is None:
            found = self._built[conn.dialect.name] = self.build(conn)
        return found
