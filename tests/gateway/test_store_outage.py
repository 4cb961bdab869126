"""A database outage (issue 12.5): every answer that needs the database is a 503
``store_unavailable`` with ``Retry-After`` and without the driver's words, never a 500; calls
that no limit covers are served from memory and the journal, and reach the ledger once the
database is back.

The outage is a TCP proxy between the gateway and the test PostgreSQL, cut and restored by
the test (tests/faults.py); the shared server is never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from meterline.config import LimitsConfig
from tests.conftest import fresh_database
from tests.faults import TcpProxy
from tests.gateway.conftest import Gateway, Upstream, start_gateway

MODEL = "openai/gpt-5-nano"


@dataclass
class Outage:
    gateway: Gateway
    proxy: TcpProxy
    limited_key: str
    free_key: str


@pytest.fixture
def outage(upstream: Upstream, tmp_path: Path) -> Iterator[Outage]:
    with fresh_database("postgresql", tmp_path) as direct:
        proxy, through = TcpProxy.to_url(direct)
        # Budgets read on every call, and no leases: a limited call needs the database.
        limits = LimitsConfig(cache_seconds=0, lease_calls=1)
        # Keys read on every call too: one seen before the outage is served from memory.
        with proxy, start_gateway(through, tmp_path / "journal", upstream, limits=limits,
                                  key_cache_seconds=0) as gw:
            fx = gw.admin.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                                "effective_from": "2026-01-01T00:00:00Z"})
            assert fx.status_code == 201, fx.text
            limited, limited_id = gw.new_key()
            free, _ = gw.new_key()
            budget = gw.admin.post("/api/budgets", json={"key": limited_id, "amount": "100",
                                                         "currency": "USD"})
            assert budget.status_code == 201, budget.text
            yield Outage(gw, proxy, limited, free)
            proxy.restore()  # so that the gateway shuts down cleanly


def chat(gw: Gateway, key: str) -> httpx.Response:
    with gw.openai(key) as client:
        answer = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}])
        return answer.http_response


def unavailable(answer: httpx.Response) -> None:
    """A 503 in the error shape, saying the store is unavailable, with Retry-After and nothing
    of the driver's (its messages name the server: "connection", "127.0.0.1", "port")."""
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0
    error = answer.json()["error"]
    assert error["code"] in ("store_unavailable", "schema_incomplete"), error
    for word in ("Traceback", "psycopg", "127.0.0.1", "port", "connection to server"):
        assert word not in answer.text, answer.text


def test_an_outage_answers_503_and_serves_unlimited_calls(outage: Outage) -> None:
    gw = outage.gateway
    # Before: both keys work, and each key is now cached.
    assert chat(gw, outage.limited_key).status_code == 200
    assert chat(gw, outage.free_key).status_code == 200
    with gw.http() as http:
        report = http.post("/v1/usage", headers=gw.headers(outage.free_key), json={"events": [
            {"id": "before", "model": MODEL, "usage": {"input_tokens": 10}}]})
        assert report.status_code == 200, report.text

    outage.proxy.cut()

    # A call under a block budget cannot be held: refused with 503, not let through.
    with gw.openai(outage.limited_key) as client, \
            pytest.raises(openai.InternalServerError) as refused:
        client.chat.completions.create(model=MODEL,
                                       messages=[{"role": "user", "content": "hello"}])
    unavailable(refused.value.response)
    assert refused.value.response.headers["x-meterline-request-id"]
    # A call no limit covers is served from memory and journaled.
    served = chat(gw, outage.free_key)
    assert served.status_code == 200, served.text
    with gw.http() as http:
        unavailable(http.post("/v1/usage", headers=gw.headers(outage.free_key), json={
            "events": [{"id": "during", "model": MODEL, "usage": {"input_tokens": 10}}]}))
        unavailable(http.post("/v1/billing/quote", headers=gw.headers(outage.free_key), json={
            "model": MODEL, "usage": {"input_tokens": 10}}))
        # The model list is served from the key cache and the price book in memory.
        assert http.get("/v1/models", headers=gw.headers(outage.free_key)).status_code == 200
        unavailable(gw.admin.get("/api/budgets"))
        unavailable(gw.admin.get("/api/usage", params={"limit": 1}))
        unavailable(gw.admin.get("/api/summary"))
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert "127.0.0.1" not in ready.text

    outage.proxy.restore()

    # The served call reaches the ledger once the database is back; the refused one never
    # went upstream, and is not there.
    record = gw.record(served.headers["x-meterline-request-id"], timeout=30)
    assert record["status"] == "success"
    assert chat(gw, outage.limited_key).status_code == 200
