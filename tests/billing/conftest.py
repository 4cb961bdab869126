"""Fixtures of the billing tests: a fake provider served on loopback, a clock that moves only
when the code under test sleeps (so nothing waits and nothing depends on the wall clock), a
[[bill_sources]] entry pointing at the fake, and a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from meterline.config import ACCESS_KEY_PROVIDERS, BillSourceConfig, Config, Secret, SyncConfig
from meterline.simulator import serve_in_thread
from meterline.store.engine import make_engine
from meterline.store.migrate import upgrade
from tests.billing.data import KEY_ID, NOW, SECRET, Case
from tests.billing.fakes import Account


@dataclass
class Clock:
    """``time.monotonic`` and ``time.sleep`` for the code under test: sleeping moves it."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def source(provider: str, endpoint: str, secret: str = SECRET, key_id: str = KEY_ID,
           **settings: Any) -> BillSourceConfig:
    if provider in ACCESS_KEY_PROVIDERS:
        return BillSourceConfig(provider=provider, account="main", endpoint=endpoint,
                                access_key_id=Secret(key_id), access_key_secret=Secret(secret),
                                credential_env={"access_key_id": "TEST_KEY_ID",
                                                "access_key_secret": "TEST_KEY_SECRET"},
                                **settings)
    return BillSourceConfig(provider=provider, account="main", endpoint=endpoint,
                            api_key=Secret(secret), credential_env={"api_key": "TEST_API_KEY"},
                            **settings)


@contextmanager
def serving(case: Case, account: Account | None = None) -> Iterator[tuple[str, Account]]:
    """The case's fake on loopback: its URL and the account it serves."""
    served = account or case.account()
    with serve_in_thread(case.app(served)) as url:
        yield url, served


def options(clock: Clock) -> dict[str, Any]:
    """``fetch`` options: the fixed now, the clock and its sleep."""
    return {"now": lambda: NOW, "clock": clock, "sleep": clock.sleep}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite and PostgreSQL)."""
    found = make_engine(database_url)
    upgrade(found)
    try:
        yield found
    finally:
        found.dispose()


def config_of(database_url: str, *sources: BillSourceConfig, **sync: Any) -> Config:
    """A config with these ``[[bill_sources]]`` and ``[sync]`` settings."""
    return Config(database_url=database_url, bill_sources=sources, sync=SyncConfig(**sync))
