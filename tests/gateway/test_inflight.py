"""Calls in flight when their process is killed become ``interrupted`` records (issue 12.3c).

A real ``meterline serve`` is SIGKILLed while the provider holds a call (the simulator answers
after a minute); a new process on the same database and journal records that call as
``interrupted``, with the request's estimated input priced, frees its Idempotency-Key, and
leaves the calls that had ended alone. Calls that end normally leave nothing in flight."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import Engine, func, select

from meterline.domain.usage import Usage
from meterline.gateway.inflight import sweep
from meterline.gateway.journal import Journal
from meterline.gateway.recorder import Recorder, ledger_sink
from meterline.providers.estimate import estimate_prompt_tokens
from meterline.services.metering import Metering
from meterline.store.engine import make_engine
from meterline.store.schema import calls_started, usage_records
from tests.conftest import ADMIN, fresh_database
from tests.gateway.conftest import Gateway, Upstream, marker, money
from tests.gateway.test_kill import Gateway as Served
from tests.gateway.test_kill import serve_env
from tests.gateway.test_recorder import call

MODEL = "openai/gpt-5-nano"


def in_flight(database_url: str) -> int:
    store = make_engine(database_url)
    try:
        with store.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(calls_started)) or 0)
    finally:
        store.dispose()


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def test_a_call_in_flight_at_sigkill_is_recorded_as_interrupted(database: str,
                                                                 upstream: Upstream,
                                                                 tmp_path: Path) -> None:
    env = serve_env(database, upstream, tmp_path)
    log = tmp_path / "gateway.log"
    first = Served(env, log)
    word = marker()
    prompt = f"{word} [[sim delay_ms=120000]] tell me a long story"
    messages = [{"role": "user", "content": prompt}]
    outcome: list[BaseException] = []
    try:
        with httpx.Client(base_url=first.url, headers=ADMIN, timeout=30) as admin:
            assert admin.post("/api/tenants", json={"name": "acme"}).status_code == 201
            key = admin.post("/api/keys", json={"tenant": "acme"}).json()["key"]
        with openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0,
                           timeout=30) as client:
            done = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "answered"}])
            answered = done.headers["x-meterline-request-id"]

        def held_call() -> None:
            with openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0,
                               timeout=180) as client:
                try:
                    client.chat.completions.create(
                        model=MODEL, messages=messages,  # type: ignore[arg-type]
                        extra_headers={"Idempotency-Key": f"order-{word}"})
                except openai.APIError as exc:
                    outcome.append(exc)

        caller = threading.Thread(target=held_call)
        caller.start()
        wait_for(lambda: upstream.requests(word), "the provider received the call")
        first.kill()  # the provider holds the call; its process is gone
        caller.join(60)
        assert outcome and isinstance(outcome[0], openai.APIConnectionError)
    finally:
        first.kill()

    second = Served(env, log)
    try:
        with httpx.Client(base_url=second.url, headers=ADMIN, timeout=30) as admin:
            def interrupted() -> list[dict[str, Any]]:
                records = admin.get("/api/usage", params={"tenant": "acme"}).json()["records"]
                return [r for r in records if r["status"] == "interrupted"]

            (record,) = wait_for(interrupted, "the interrupted record")
            records = admin.get("/api/usage", params={"tenant": "acme"}).json()["records"]
            # The Idempotency-Key of the interrupted call is free again: a retry is served.
            with openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0,
                               timeout=30) as client:
                retried = client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": "again"}],
                    extra_headers={"Idempotency-Key": f"order-{word}"})
                assert retried.http_response.status_code == 200
    finally:
        second.stop()

    assert sorted(r["status"] for r in records) == ["interrupted", "success"]
    assert [r["request_id"] for r in records if r["status"] == "success"] == [answered]
    assert record["estimated"] is True
    assert "process ended" in record["error"]
    expected_input = estimate_prompt_tokens({"model": MODEL, "messages": messages}, "openai")
    assert expected_input > 0
    assert record["usage"] == {"input_tokens": expected_input}
    assert money(record["cost"]) > 0
    assert in_flight(database) == 0
    # The killed writer was dealt with; only the second process's (stopped, not swept) stays.
    assert not list((tmp_path / "journal").glob(f"writer-{first.process.pid}-*"))


def test_a_call_is_in_flight_until_it_is_recorded(gateway: Gateway) -> None:
    state = gateway.app.state.meterline

    def started(request_id: str) -> bool:
        with state.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(calls_started).where(
                calls_started.c.request_id == request_id)) == 1

    # A paced stream (one word every 3 s): in flight, and noted so, until its client leaves.
    with gateway.http() as http, http.stream(
            "POST", "/v1/chat/completions", headers=gateway.headers(),
            json={"model": MODEL, "stream": True,
                  "messages": [{"role": "user", "content": "[[sim chunk_delay_ms=3000]]"}]}
    ) as response:
        request_id = response.headers["x-meterline-request-id"]
        chunks = response.iter_raw()  # kept: a generator dropped here would hang up
        next(chunks)
        wait_for(lambda: started(request_id), "the call noted as in flight")
    record = gateway.record(request_id, timeout=30)
    assert record["status"] == "cancelled"
    assert not started(request_id)
    with gateway.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "quick"}])
    quick = raw.headers["x-meterline-request-id"]
    assert gateway.record(quick)["status"] == "success"
    assert not started(quick)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


# -- the sink and the sweep, in process --------------------------------------------------------


def started_then(engine: Engine, tmp_path: Path, *, finish: list[str], start: list[str]
                 ) -> tuple[Journal, Recorder]:
    metering = Metering(engine)
    metering.refresh(force=True)
    journal = Journal(tmp_path / "journal")
    recorder = Recorder(metering, journal)
    for request_id in start:
        recorder.start(call(request_id), Usage.of(input_tokens=2000))
    for request_id in finish:
        recorder.record(call(request_id))
    return journal, recorder


def rows_in_flight(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(calls_started.c.request_id)))


def statuses(engine: Engine) -> dict[str, tuple[str, bool, Decimal]]:
    with engine.connect() as conn:
        c = usage_records.c
        return {r.request_id: (r.status, r.estimated, r.cost) for r in conn.execute(
            select(c.request_id, c.status, c.estimated, c.cost))}


def test_a_start_and_its_record_in_any_order_leave_nothing_in_flight(engine: Engine,
                                                                     tmp_path: Path) -> None:
    journal, recorder = started_then(engine, tmp_path, start=["req_a", "req_b"],
                                     finish=["req_a"])
    sink = ledger_sink(engine, tmp_path / "rejected.jsonl")
    batches: list[list[dict[str, Any]]] = []
    journal.drain(batches.append)
    sink(batches[0])
    assert rows_in_flight(engine) == ["req_b"]  # req_a's record came in the same batch
    recorder.record(call("req_b"))
    journal.drain(sink)
    assert rows_in_flight(engine) == []
    sink(batches[0])  # a replay brings req_b's start again, after its record
    assert rows_in_flight(engine) == []
    journal.close()
    assert sweep(engine, tmp_path / "journal") == 0  # a clean close leaves nothing to record
    assert sorted(statuses(engine)) == ["req_a", "req_b"]


def test_the_calls_of_a_dead_writer_are_recorded_interrupted_once(engine: Engine,
                                                                  tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: starts two calls, finishes one, dies
        try:
            engine.dispose(close=False)  # the parent's connections stay the parent's
            started_then(engine, tmp_path, start=["req_lost", "req_done"], finish=["req_done"])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    live, _ = started_then(engine, tmp_path, start=["req_live"], finish=[])
    sink = ledger_sink(engine, tmp_path / "rejected.jsonl")
    assert sweep(engine, directory) == 0  # nothing drained yet: nothing is known finished
    live.drain(sink)
    assert rows_in_flight(engine) == ["req_live", "req_lost"]
    assert sweep(engine, directory) == 1
    assert sweep(engine, directory) == 0
    recorded = statuses(engine)
    assert recorded["req_done"][:2] == ("success", False)
    status, estimated, cost = recorded["req_lost"]
    assert (status, estimated) == ("interrupted", True)
    assert cost == Decimal("0.0001")  # 2,000 input tokens of gpt-5-nano at $0.05 per 1M
    assert "req_live" not in recorded and rows_in_flight(engine) == ["req_live"]
    live.close()
