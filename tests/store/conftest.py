"""Engines for the store tests: each test runs on SQLite and on PostgreSQL (``database_url``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from meterline.store.engine import make_engine
from meterline.store.migrate import upgrade


@pytest.fixture
def bare_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database (nothing migrated)."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    """An engine on a database migrated to head (no prices loaded)."""
    upgrade(bare_engine)
    return bare_engine
