"""Engines for the two supported databases.

``sqlite:///path`` gets WAL mode, foreign keys, a busy timeout and the exact ``decimal_sum``
aggregate; ``postgresql://…`` is driven by psycopg 3. URLs are taken as users write them; the
driver is chosen here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from meterline.errors import InvalidInput
from meterline.store.types import DecimalSum


def normalise_url(url: str) -> str:
    """Pick meterline's driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"database.url: {url!r} is not a database URL",
                           field="database.url") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    raise InvalidInput(f"database.url: {backend!r} is not supported; use sqlite:/// or "
                       "postgresql://", field="database.url")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    conn: sqlite3.Connection = dbapi_connection
    conn.create_aggregate("decimal_sum", 1, DecimalSum)  # type: ignore[arg-type]
    cursor = conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    real = normalise_url(url)
    if real.startswith("sqlite"):
        engine = create_engine(real, connect_args={"check_same_thread": False,
                                                   "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(real, **kwargs)
