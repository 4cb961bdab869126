"""``Idempotency-Key`` across processes (meterline/gateway/idempotency.py): two gateway
processes on one database, the official openai SDK as the client, the simulated provider
upstream. The key is claimed in the database, so whichever process a call reaches, the
provider is called once per key; a failed call gives its key back before its client hears of
it, so the retry may go to any process."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from meterline.api.app import create_app
from meterline.config import Config, Secret
from meterline.errors import StoreError
from meterline.gateway.idempotency import IdempotencyGuard
from meterline.store.engine import make_engine
from tests.conftest import ADMIN, ADMIN_TOKEN, LiveServer, fresh_database
from tests.gateway.conftest import Gateway, Upstream, add_test_prices, marker, providers

MODEL = "openai/gpt-5-nano"


@pytest.fixture(params=["sqlite", "postgresql"])
def two_gateways(request: pytest.FixtureRequest, upstream: Upstream, tmp_path: Path
                 ) -> Iterator[tuple[Gateway, Gateway]]:
    with fresh_database(request.param, tmp_path) as url:
        base = Config(database_url=url, admin_token=Secret(ADMIN_TOKEN),
                      providers=providers(upstream.url))
        with LiveServer(create_app(replace(base, journal_dir=str(tmp_path / "j1")))) as one, \
                LiveServer(create_app(replace(base, journal_dir=str(tmp_path / "j2")),
                                      prepare=False)) as two, \
                httpx.Client(base_url=one, headers=ADMIN, timeout=30) as admin_one, \
                httpx.Client(base_url=two, headers=ADMIN, timeout=30) as admin_two:
            assert admin_one.post("/api/tenants", json={"name": "acme"}).status_code == 201
            add_test_prices(admin_one)
            first = Gateway(one, admin_one, upstream)
            second = Gateway(two, admin_two, upstream)
            second.key = first.key  # one tenant key, two processes
            yield first, second


def _ask(gateway: Gateway, key: str, text: str) -> int:
    with gateway.openai() as client:
        try:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": text}],
                extra_headers={"Idempotency-Key": key})
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def test_the_same_key_at_two_processes_at_once_calls_the_provider_once(two_gateways):
    first, second = two_gateways
    for _ in range(3):
        key, word = f"idem-{marker()}", marker()
        # The provider takes 300 ms, so both calls are in flight together.
        text = f"hi {word} [[sim delay_ms=300]]"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(_ask, (first, second), [key] * 2, [text] * 2))
        assert statuses == [200, 409]
        assert len(first.upstream.requests(word)) == 1
        # and later, at either process, the key stays used
        assert _ask(second, key, text) == _ask(first, key, text) == 409
        assert len(first.upstream.requests(word)) == 1


def test_a_failed_call_gives_its_key_back_to_a_retry_at_another_process(two_gateways):
    first, second = two_gateways
    key = f"idem-{marker()}"
    assert _ask(first, key, "x [[sim status=500]]") == 500
    assert _ask(second, key, "hi") == 200  # at once: the claim was gone before the 500
    assert _ask(first, key, "hi") == 409


def test_a_key_that_cannot_be_checked_is_refused_not_let_through() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    guard = IdempotencyGuard(engine, claim_seconds=60)
    try:
        with pytest.raises(StoreError, match="cannot check the Idempotency-Key"):
            asyncio.run(guard.claim("acme", "k", "req_1"))
    finally:
        guard.close()
        engine.dispose()
