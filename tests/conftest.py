"""Shared fixtures.

``database_url`` runs a test once on SQLite (a fresh file) and once on PostgreSQL (a fresh
schema in the ``test`` database, dropped afterwards), so the suite can run twice in a row and in
parallel. ``METERLINE_TEST_PG`` overrides the PostgreSQL server URL.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from click.testing import CliRunner, Result

from meterline.api.app import create_app
from meterline.cli.main import cli
from meterline.config import Config, Secret

PG_SERVER = os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_TOKEN = "test-admin-token"


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A new SQLite file in ``directory``, or a new PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'meterline.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    return Config(database_url=database_url, admin_token=Secret(ADMIN_TOKEN),
                  journal_dir=str(tmp_path / "journal"))


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread of the test process."""

    def __init__(self, app: object) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def client(config: Config) -> Iterator[httpx.Client]:
    """The app served over real HTTP, on a migrated database with the shipped catalog."""
    with LiveServer(create_app(config)) as base_url, httpx.Client(base_url=base_url,
                                                                  timeout=60) as http:
        yield http


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def tenant_key(client: httpx.Client) -> str:
    """A key of tenant ``acme`` (USD)."""
    created = client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key = client.post("/api/keys", json={"tenant": "acme"}, headers=ADMIN)
    assert key.status_code == 201, key.text
    secret: str = key.json()["key"]
    return secret


class Cli:
    """Runs ``meterline …`` in-process against one database."""

    def __init__(self, database_url: str) -> None:
        self.env = {"METERLINE_DATABASE_URL": database_url, "METERLINE_CONFIG": ""}
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(cli, list(args), env=self.env, input=input,
                                  catch_exceptions=False, prog_name="meterline")


@pytest.fixture
def run_cli(database_url: str) -> Cli:
    return Cli(database_url)
