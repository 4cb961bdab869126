"""API-key revocation at the gateway (issue 12): a revoked key is refused by every process within
the key check interval (1 s), whether it was revoked through the admin API, the CLI or another
process, without a database read per call; while the database is down, known keys keep working.

The gateway's key cache runs on a clock the test moves (``StoppedClock``), so "after the
interval" never depends on how fast the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import event

from meterline.api.app import create_app
from meterline.config import Config, Secret
from meterline.errors import AuthError
from meterline.gateway.keys import CHECK_CLAIM_SECONDS, CHECK_INTERVAL, KeyCache
from meterline.store import accounts
from meterline.store.engine import make_engine
from meterline.store.migrate import upgrade
from tests.conftest import ADMIN_TOKEN, Cli, LiveServer, fresh_database
from tests.faults import TcpProxy
from tests.gateway.conftest import Gateway, Upstream, providers, start_gateway

MODEL = "openai/gpt-5-nano"


class StoppedClock:
    """A monotonic clock that moves only when a test moves it (from where the real one is, so
    what a cache noted before it took over stays comparable)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def stop_clock(app: Any) -> tuple[KeyCache, StoppedClock]:
    keys: KeyCache = app.state.gateway.keys
    clock = StoppedClock()
    keys.clock = clock
    return keys, clock


def models(url: str, key: str) -> httpx.Response:
    """``GET /v1/models`` with ``key``: authenticated by the key cache, and nothing else read
    from the database."""
    with httpx.Client(base_url=url, timeout=30) as http:
        return http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})


def refused_as_revoked(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_api_key", error
    assert "revoked" in error["message"], error


def revoke(gw: Gateway, key_id: str) -> None:
    revoked = gw.admin.post(f"/api/keys/{key_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None


@contextmanager
def key_reads(keys: KeyCache) -> Iterator[list[str]]:
    """The statements the key cache's engine runs that read keys or the key generation."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement or "server_secrets" in statement:
            seen.append(statement)

    event.listen(keys.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(keys.engine, "before_cursor_execute", note)


def test_a_key_revoked_through_the_admin_api_is_refused_after_the_check_interval(
        gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    _, clock = stop_clock(gw.app)
    key, key_id = gw.new_key()
    with gw.openai(key) as client:
        assert client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]).choices
        revoke(gw, key_id)
        # Within the interval the key is served from memory: that is the price of no
        # database read per call, and what the interval bounds.
        assert models(gw.url, key).status_code == 200
        clock.now += CHECK_INTERVAL
        with pytest.raises(openai.AuthenticationError) as denied:
            client.chat.completions.create(model=MODEL,
                                           messages=[{"role": "user", "content": "hi"}])
    error = denied.value.response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "revoked" in error["message"]
    refused_as_revoked(models(gw.url, key))
    # The tenant's other key is read again and still works.
    assert models(gw.url, gw.key).status_code == 200


def test_calls_read_the_key_generation_at_most_once_per_interval(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    keys, clock = stop_clock(gw.app)
    assert models(gw.url, gw.key).status_code == 200  # cached, generation read
    with key_reads(keys) as reads:
        for _ in range(5):
            assert models(gw.url, gw.key).status_code == 200
        assert reads == []
        clock.now += CHECK_INTERVAL
        for _ in range(5):
            assert models(gw.url, gw.key).status_code == 200
    # One read of the generation, unchanged: the key stays cached.
    assert len(reads) == 1 and "server_secrets" in reads[0], reads


def test_a_key_revoked_with_the_cli_is_refused_after_the_check_interval(
        gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    keys, clock = stop_clock(gw.app)
    key, key_id = gw.new_key()
    assert models(gw.url, key).status_code == 200
    url = keys.engine.url.render_as_string(hide_password=False)
    result = Cli(url)("keys", "revoke", key_id)
    assert result.exit_code == 0, result.output
    clock.now += CHECK_INTERVAL
    refused_as_revoked(models(gw.url, key))


@contextmanager
def second_process(gw: Gateway, database_url: str, journal: Path) -> Iterator[tuple[str, Any]]:
    """Another gateway on the same database (its own key cache, as another worker has)."""
    config = Config(database_url=database_url, admin_token=Secret(ADMIN_TOKEN),
                    journal_dir=str(journal), providers=providers(gw.upstream.url))
    app = create_app(config)
    with LiveServer(app) as url:
        yield url, app


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_key_revoked_in_one_process_is_refused_by_another_after_the_check_interval(
        kind: str, upstream: Upstream, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url, \
            start_gateway(url, tmp_path / "journal-a", upstream) as first, \
            second_process(first, url, tmp_path / "journal-b") as (other_url, other_app):
        _, first_clock = stop_clock(first.app)
        _, other_clock = stop_clock(other_app)
        key, key_id = first.new_key()
        assert models(first.url, key).status_code == 200
        assert models(other_url, key).status_code == 200
        revoke(first, key_id)
        assert models(other_url, key).status_code == 200  # cached, within the interval
        other_clock.now += CHECK_INTERVAL
        refused_as_revoked(models(other_url, key))
        first_clock.now += CHECK_INTERVAL
        refused_as_revoked(models(first.url, key))
        # Revoking changed only the revoked key: the other one works in both.
        assert models(other_url, first.key).status_code == 200
        assert models(first.url, first.key).status_code == 200


def test_known_keys_keep_working_while_the_database_is_down(upstream: Upstream,
                                                            tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as direct:
        proxy, through = TcpProxy.to_url(direct)
        with proxy, start_gateway(through, tmp_path / "journal", upstream) as gw:
            _, clock = stop_clock(gw.app)
            key, key_id = gw.new_key()
            assert models(gw.url, key).status_code == 200
            proxy.cut()
            clock.now += CHECK_INTERVAL  # the generation is due and cannot be read
            assert models(gw.url, key).status_code == 200
            clock.now += CHECK_INTERVAL
            assert models(gw.url, key).status_code == 200
            unknown = models(gw.url, "ml-never-issued")
            assert unknown.status_code == 503, unknown.text
            proxy.restore()
            # Once the database is back, revocations are read again.
            revoke(gw, key_id)
            clock.now += CHECK_INTERVAL
            refused_as_revoked(models(gw.url, key))
            assert models(gw.url, gw.key).status_code == 200


def test_a_revocation_read_while_a_lookup_was_under_way_does_not_cache_the_old_key(
        database_url: str) -> None:
    """A lookup that began before the cache was forgotten may have read the key before its
    revocation: what it read is answered once but not kept."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            accounts.create_tenant(conn, "acme")
            secret, key = accounts.create_key(conn, "acme")
        clock = StoppedClock()
        cache = KeyCache(engine, clock=clock)
        cache.check()
        raced: list[bool] = []

        def race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # Right after the lookup read the key, still usable: the key is revoked, and
            # another call's check reads the new generation before the lookup stores its answer.
            if "FROM api_keys" in statement and not raced:
                raced.append(True)
                with engine.begin() as other:
                    accounts.revoke_key(other, key.id)
                clock.now += CHECK_INTERVAL
                cache.check()

        event.listen(engine, "after_cursor_execute", race)
        try:
            assert cache.load(secret).id == key.id
        finally:
            event.remove(engine, "after_cursor_execute", race)
        assert raced
        assert cache.cached(secret) is None
        with pytest.raises(AuthError, match="revoked"):
            cache.load(secret)
    finally:
        engine.dispose()


def test_one_call_reads_a_due_generation_while_the_others_are_answered_from_the_cache(
        database_url: str) -> None:
    """Calls arriving while the generation read is under way do not each take a thread to learn
    that another call is reading it; a claim that no read followed lapses."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            accounts.create_tenant(conn, "acme")
            secret, key = accounts.create_key(conn, "acme")
        clock = StoppedClock()
        cache = KeyCache(engine, clock=clock)
        assert cache.load(secret).id == key.id
        clock.now += CHECK_INTERVAL
        assert cache.cached(secret) is None  # this call reads the generation
        found = cache.cached(secret)  # meanwhile: the cached key
        assert found is not None and found.id == key.id
        # the claimant never read it: past the claim (by more than float rounding), another may
        clock.now += CHECK_CLAIM_SECONDS * 2
        assert cache.cached(secret) is None
        cache.load(secret)
        found = cache.cached(secret)
        assert found is not None and found.id == key.id  # read: nothing due any more
    finally:
        engine.dispose()
