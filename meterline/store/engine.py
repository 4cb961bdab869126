"""Engines for the two supported databases.

``sqlite:///path`` gets WAL mode, foreign keys, a busy timeout and the exact ``decimal_sum``
aggregate; ``postgresql://…`` is driven by psycopg 3. URLs are taken as users write them; the
driver is chosen here.

Every engine translates "the database cannot be used" (unreachable, shut down, out of disk, a
broken connection) into ``StoreError`` at one point, its ``handle_error`` event, so callers,
background loops, the CLI and the HTTP error table see one meterline error (HTTP: 503
``store_unavailable`` with ``Retry-After``, the driver's words in the log only). Lock conflicts
(deadlock, serialization failure, SQLite's "locked") are left to the callers that retry them.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError

from meterline.errors import InvalidInput, StoreError
from meterline.store.types import DecimalSum

#: What a client is told to wait (``Retry-After``) while the database cannot be used.
RETRY_AFTER_SECONDS = 5


#: What stands for a password in a URL shown anywhere.
MASK = "***"
#: ``scheme://user:PASSWORD@`` (to the last ``@`` of the authority) and ``password=PASSWORD``.
_USER_PASSWORD = re.compile(r"^([^:/?#]*://[^:/?#@]*):[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def redact_url(url: str | URL) -> str:
    """A database URL fit to print or log: its password (in the user info or a ``password=``
    query parameter) replaced by ``***``, whether or not the URL parses. Every place a
    database URL is shown goes through here."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    shown = _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", _USER_PASSWORD.sub(rf"\g<1>:{MASK}@", text))
    if shown != text:
        return shown
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        return shown
    return _scrub(shown, parsed)  # a password the patterns missed (an odd URL) is still hidden


def _scrub(text: str, url: URL | None) -> str:
    """``text`` (a driver's message) without ``url``'s password, should the driver quote it."""
    hidden = [url.password, url.query.get("password")] if url is not None else []
    for secret in hidden:
        if isinstance(secret, str) and secret:
            text = text.replace(secret, MASK)
    return text


def normalise_url(url: str) -> str:
    """Pick meterline's driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise InvalidInput(f"database.url: {redact_url(url)!r} is not a database URL",
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


#: SQLite's primary result codes of a database that cannot be used (not of a bad statement).
_SQLITE_OUTAGE = {3, 8, 10, 11, 13, 14, 26}  # PERM READONLY IOERR CORRUPT FULL CANTOPEN NOTADB


def _conflict(driver_error: BaseException) -> bool:
    """A lock conflict that its caller retries (store/bulk.py, store/rollup_writes.py)."""
    if isinstance(driver_error, psycopg.errors.TransactionRollback
                  | psycopg.errors.LockNotAvailable):
        return True
    return isinstance(driver_error, sqlite3.OperationalError) and "locked" in str(driver_error)


def _outage(context: ExceptionContext) -> bool:
    """The database cannot be used at all (rather than refusing one statement)."""
    error = context.original_exception
    if context.connection is None or context.is_disconnect:
        return True  # connecting failed, or the connection broke
    if isinstance(error, sqlite3.Error):
        return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_OUTAGE
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def unavailable(context: ExceptionContext) -> None:
    """``handle_error``: raise StoreError when the database cannot be used. Errors of one
    statement (bad data, constraint violations, a missing table) and lock conflicts, which
    callers retry, pass unchanged."""
    if context.is_pre_ping:
        return  # the pool replaces a dead pooled connection by itself
    driver_error = context.original_exception
    if not isinstance(driver_error, psycopg.Error | sqlite3.Error):
        return  # not the driver's: our own code's, raised while a statement was made
    if _conflict(driver_error) or not _outage(context):
        return
    # The driver's words are for the log and the command line; HTTP answers show `public`.
    words = _scrub(str(driver_error), context.engine.url if context.engine else None)
    raise StoreError(f"database unreachable: {words}",
                     public=f"the database is unavailable; retry in {RETRY_AFTER_SECONDS} s",
                     retry_after=RETRY_AFTER_SECONDS) from (context.sqlalchemy_exception
                                                            or driver_error)


def make_engine(url: str, **kwargs: Any) -> Engine:
    real = normalise_url(url)
    if real.startswith("sqlite"):
        engine = create_engine(real, connect_args={"check_same_thread": False,
                                                   "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
    else:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(real, **kwargs)
    event.listen(engine, "handle_error", unavailable)
    return engine
