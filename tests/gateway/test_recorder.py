"""The drainer's ledger sink: a record the database refuses is set aside, the rest flow."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
from sqlalchemy import Engine, func, select

from meterline.domain.usage import Usage
from meterline.gateway.journal import Journal
from meterline.gateway.recorder import Call, Recorder, ledger_sink
from meterline.services.metering import Metering
from meterline.store.schema import usage_records


def call(request_id: str, **fields: object) -> Call:
    base = Call(request_id=request_id, tenant_id="acme", tenant_currency="USD", key_id="key_1",
                user_id="alice", requested_model="openai/gpt-5-nano", model="openai/gpt-5-nano",
                provider="openai", endpoint="chat", started_at=datetime(2026, 11, 2, tzinfo=UTC),
                usage=Usage.of(input_tokens=1000, output_tokens=500))
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def test_refused_record_is_set_aside_and_the_rest_reach_the_ledger(engine: Engine,
                                                                    tmp_path: Path) -> None:
    metering = Metering(engine)
    metering.refresh(force=True)
    journal = Journal(tmp_path / "journal")
    recorder = Recorder(metering, journal)
    recorder.record(call("req_ok_1"))
    recorder.record(call("req_bad", provider=None))  # NOT NULL: the database refuses it
    recorder.record(call("req_ok_2"))
    rejected = tmp_path / "rejected.jsonl"
    delivered = journal.drain(ledger_sink(engine, rejected))
    journal.close()

    assert delivered == 3
    with engine.connect() as conn:
        ids = set(conn.scalars(select(usage_records.c.request_id)))
        total = conn.scalar(select(func.count()).select_from(usage_records))
    assert ids == {"req_ok_1", "req_ok_2"} and total == 2
    [line] = rejected.read_bytes().splitlines()
    refused = orjson.loads(line)
    assert refused["record"]["row"]["request_id"] == "req_bad"
    assert "provider" in refused["error"]


def test_a_redelivered_batch_is_charged_once(engine: Engine, tmp_path: Path) -> None:
    metering = Metering(engine)
    metering.refresh(force=True)
    journal = Journal(tmp_path / "journal")
    priced = Recorder(metering, journal).record(call("req_once"))
    batches: list[list[dict[str, object]]] = []
    journal.drain(batches.append)
    journal.close()
    rejected = tmp_path / "rejected.jsonl"
    sink = ledger_sink(engine, rejected)
    sink(batches[0])
    sink(batches[0])  # a crash between commit and checkpoint delivers the batch again
    assert not rejected.exists()  # a duplicate is not a refusal
    with engine.connect() as conn:
        costs = list(conn.scalars(select(usage_records.c.cost)))
    assert priced.rating is not None
    assert costs == [priced.rating.total.number]
    assert costs[0] == Decimal("0.00025")
