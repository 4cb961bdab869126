"""meterline.store.ledger: records and charge lines written once, idempotently, exactly."""

from __future__ import annotations

import random
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from meterline.domain.prices import PriceVersion
from meterline.domain.rating import ChargeLine
from meterline.domain.usage import Meter
from meterline.errors import StoreError
from meterline.services.metering import Metering
from meterline.store import accounts, bulk, ledger, pricing
from meterline.store.ledger import NewRecord
from meterline.store.schema import charge_lines, usage_records
from meterline.store.types import money_sum

D = Decimal
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def row(event_id: str, *, tenant: str = "acme", request_id: str | None = None,
        **overrides: Any) -> dict[str, Any]:
    """A complete usage_records row (every column present, as the metering service writes)."""
    out: dict[str, Any] = {c.name: None for c in usage_records.columns}
    out.update({meter.value: 0 for meter in Meter})
    out.update({
        "request_id": request_id or f"req_{tenant}_{event_id}", "tenant_id": tenant,
        "event_id": event_id, "provider": "acme", "model": "acme/chat-1", "source": "ingest",
        "status": "success", "pricing": ledger.PRICED, "occurred_at": T0,
        "recorded_at": T0 + timedelta(seconds=1), "input_tokens": 1000,
        "cached_input_tokens": 0, "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0, "output_tokens": 500,
        "reasoning_tokens": 0, "characters": 0, "images": 0, "seconds": D(0), "requests": 0,
        "cost": D("0.00045"), "currency": "USD", "price_version_id": "acme/chat-1@2026-01-01",
        "billed_cost": D("0.00045"), "billed_currency": "USD", "fx_missing": False,
        "estimated": False, "cost_mismatch": False,
    })
    out.update(overrides)
    return out


LINES = (
    ChargeLine("input_tokens", D(1000), "1M tokens", D("0.15"), 1_000_000, D("0.00015")),
    ChargeLine("output_tokens", D(500), "1M tokens", D("0.6"), 1_000_000, D("0.0003")),
)


def record(event_id: str, **kw: Any) -> NewRecord:
    return NewRecord(row(event_id, **kw), LINES)


def unpriced_record(event_id: str, **kw: Any) -> NewRecord:
    return NewRecord(row(event_id, pricing=ledger.UNPRICED, cost=None, currency=None,
                         price_version_id=None, billed_cost=None, billed_currency=None,
                         warning="unknown model 'acme/chat-1'", **kw))


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(usage_records)).scalar_one(),
                conn.execute(select(func.count()).select_from(charge_lines)).scalar_one())


def line_total(engine: Engine) -> Decimal | None:
    with engine.connect() as conn:
        return conn.execute(select(money_sum(charge_lines.c.amount))).scalar_one()


# --- write_records / existing ------------------------------------------------------------------

def test_bulk_write_refuses_to_run_where_nothing_would_commit_it(engine: Engine) -> None:
    # It talks to the driver directly: outside SQLAlchemy's transaction, conn.commit() would
    # commit nothing and the records would silently roll back when the connection is returned.
    with engine.connect() as conn, pytest.raises(RuntimeError, match="transaction"):
        bulk.write(conn, [row("e1")], [], [T0.date()])
    assert counts(engine) == (0, 0)


def test_write_records_inserts_records_and_lines(engine: Engine) -> None:
    with engine.begin() as conn:
        inserted = ledger.write_records(conn, [
            record("e1"), record("e2", cost=D("0.000000075")), unpriced_record("e3")])
    assert inserted == {"e1", "e2", "e3"}
    assert counts(engine) == (3, 4)
    assert line_total(engine) == D("0.0009")
    with engine.connect() as conn:
        stored = {r.event_id: r for r in conn.execute(select(usage_records))}
        lines = ledger.lines_of(conn, ["req_acme_e1", "req_acme_e3", "req_none"])
    assert stored["e2"].cost == D("0.000000075")
    assert stored["e1"].occurred_at == T0 and stored["e1"].occurred_at.tzinfo is UTC
    assert stored["e3"].pricing == "unpriced" and stored["e3"].cost is None
    assert lines == {
        "req_acme_e1": [
            {"meter": "input_tokens", "quantity": "1000", "unit": "1M tokens",
             "unit_price": "0.15", "amount": "0.00015"},
            {"meter": "output_tokens", "quantity": "500", "unit": "1M tokens",
             "unit_price": "0.6", "amount": "0.0003"},
        ],
        "req_acme_e3": [],
        "req_none": [],
    }


def test_large_batches_with_duplicates_on_both_sides_of_a_statement(engine: Engine) -> None:
    # SQLite takes many records per statement (as many as its parameter limit allows): the
    # duplicates of a redelivered batch are found in every statement of it.
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        assert len(ledger.write_records(conn, [record(f"e{i}") for i in range(0, 1500, 2)]
                                        )) == 750
    again = [record(f"e{i}", request_id=f"req_second_{i}") for i in range(1500)]
    with engine.begin() as conn:
        inserted = ledger.write_records(conn, again)
    assert inserted == {f"e{i}" for i in range(1, 1500, 2)}
    assert counts(engine) == (1500, 3000)
    with engine.connect() as conn:
        ids = {r.event_id: r.request_id for r in conn.execute(
            select(usage_records.c.event_id, usage_records.c.request_id))}
    assert ids["e0"] == "req_acme_e0" and ids["e1"] == "req_second_1"


def test_write_records_of_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ledger.write_records(conn, []) == set()
    assert counts(engine) == (0, 0)


def test_same_event_ids_again_insert_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        first = ledger.write_records(conn, [record("e1"), record("e2")])
    assert first == {"e1", "e2"}
    # a retry: new request ids, different amounts — still the same events
    with engine.begin() as conn:
        again = ledger.write_records(conn, [
            record("e1", request_id="req_retry_1", cost=D("99")),
            record("e2", request_id="req_retry_2", cost=D("99"))])
    assert again == set()
    assert counts(engine) == (2, 4)
    assert line_total(engine) == D("0.0009")
    with engine.connect() as conn:
        found = ledger.existing(conn, "acme", ["e1", "e2", "missing"])
        assert ledger.lines_of(conn, ["req_retry_1"]) == {"req_retry_1": []}
    assert found == {
        "e1": ledger.Existing("req_acme_e1", D("0.00045"), "USD", "success", "priced"),
        "e2": ledger.Existing("req_acme_e2", D("0.00045"), "USD", "success", "priced"),
    }


def test_mixed_batch_inserts_only_the_new_events(engine: Engine) -> None:
    with engine.begin() as conn:
        ledger.write_records(conn, [record("e1")])
    with engine.begin() as conn:
        inserted = ledger.write_records(conn, [record("e1", request_id="req_dup"),
                                               record("e2"), record("e3")])
    assert inserted == {"e2", "e3"}
    assert counts(engine) == (3, 6)
    with engine.connect() as conn:
        ids = conn.execute(select(usage_records.c.request_id)
                           .order_by(usage_records.c.request_id)).scalars().all()
        line_owners = set(conn.execute(select(charge_lines.c.request_id)).scalars())
    assert ids == ["req_acme_e1", "req_acme_e2", "req_acme_e3"]
    assert line_owners == {"req_acme_e1", "req_acme_e2", "req_acme_e3"}


def test_event_ids_are_idempotency_keys_per_tenant(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ledger.write_records(conn, [record("e1", tenant="acme")]) == {"e1"}
    with engine.begin() as conn:
        assert ledger.write_records(conn, [record("e1", tenant="beta")]) == {"e1"}
    with engine.connect() as conn:
        assert ledger.existing(conn, "acme", ["e1"])["e1"].request_id == "req_acme_e1"
        assert ledger.existing(conn, "beta", ["e1"])["e1"].request_id == "req_beta_e1"
        assert ledger.existing(conn, "gamma", ["e1"]) == {}
        assert ledger.existing(conn, "acme", []) == {}
    assert counts(engine) == (2, 4)


def test_a_rolled_back_batch_leaves_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        ledger.write_records(conn, [record("e1"), record("e2")])
        raise RuntimeError("crash before commit")
    assert counts(engine) == (0, 0)
    with engine.begin() as conn:
        assert ledger.write_records(conn, [record("e1")]) == {"e1"}
    assert counts(engine) == (1, 2)


def test_two_writes_in_one_transaction(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ledger.write_records(conn, [record("e1")]) == {"e1"}
        assert ledger.write_records(conn, [record("e1", request_id="x"), record("e2")]) == {"e2"}
    assert counts(engine) == (2, 4)


def test_a_broken_record_is_an_error_not_a_duplicate(engine: Engine) -> None:
    """Only a clash on (tenant, event id) means 'already recorded'; other violations raise."""
    with pytest.raises(StoreError) as raised, engine.begin() as conn:
        ledger.write_records(conn, [record("e1"), record("e2", provider=None)])
    assert isinstance(raised.value.__cause__,
                      sqlite3.IntegrityError | psycopg.errors.NotNullViolation)
    assert not raised.value.context.get("retryable")
    assert counts(engine) == (0, 0)


def test_a_clashing_request_id_is_an_error_not_a_duplicate(engine: Engine) -> None:
    with engine.begin() as conn:
        ledger.write_records(conn, [record("e1", request_id="req_same")])
    with pytest.raises(StoreError) as raised, engine.begin() as conn:
        # no charge lines: nothing later in the write trips over the clash
        ledger.write_records(conn, [NewRecord(row("e2", request_id="req_same"))])
    assert isinstance(raised.value.__cause__,
                      sqlite3.IntegrityError | psycopg.errors.UniqueViolation)
    assert counts(engine) == (1, 2)


def test_exact_money_survives_the_bulk_path(engine: Engine) -> None:
    tiny = ChargeLine("input_tokens", D(1), "token", D("0.000000075123456789012"), 1,
                      D("0.000000075123456789012"))
    huge = ChargeLine("output_tokens", D(10**12), "1M tokens", D("123.456789012345"),
                      1_000_000, D("123456.789012345"))
    with engine.begin() as conn:
        ledger.write_records(conn, [NewRecord(row("e1", cost=D("123456.789012420123456789012"),
                                                  seconds=D("2.5"), fx_rate=D("7.1")),
                                              (tiny, huge))])
    with engine.connect() as conn:
        stored = conn.execute(select(usage_records)).one()
        lines = conn.execute(select(charge_lines).order_by(charge_lines.c.line_no)).all()
    assert stored.cost == D("123456.789012420123456789012")
    assert stored.seconds == D("2.5")
    assert stored.fx_rate == D("7.1")
    assert [(ln.meter, ln.quantity, ln.unit_price, ln.per, ln.amount) for ln in lines] == [
        ("input_tokens", D(1), D("0.000000075123456789012"), 1, D("0.000000075123456789012")),
        ("output_tokens", D(10**12), D("123.456789012345"), 1_000_000, D("123456.789012345")),
    ]
    assert line_total(engine) == stored.cost
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            raw = conn.execute(text(
                "SELECT typeof(cost), cost, typeof(seconds), seconds, occurred_at "
                "FROM usage_records")).one()
            amounts = conn.execute(text(
                "SELECT typeof(amount), amount FROM charge_lines ORDER BY line_no")).all()
        assert tuple(raw) == ("text", "123456.789012420123456789012", "text", "2.5",
                              "2026-11-01 10:00:00.000000")
        assert [tuple(a) for a in amounts] == [("text", "0.000000075123456789012"),
                                               ("text", "123456.789012345")]


# --- concurrency -------------------------------------------------------------------------------

PRICE = PriceVersion.parse({
    "model": "acme/chat-1", "currency": "USD", "effective_from": "2026-01-01", "unit": "1M",
    "prices": {"input_tokens": "0.15", "output_tokens": "0.6"},
})


def _events(n: int, prefix: str = "evt") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i:04d}", "timestamp": "2026-11-01T10:00:00Z",
             "user": f"user-{i % 7}", "model": "acme/chat-1",
             "usage": {"input_tokens": 1000, "output_tokens": 500}}
            for i in range(n)]


def _ingest_concurrently(engine: Engine, batches: list[list[dict[str, Any]]]
                         ) -> list[list[dict[str, Any]]]:
    barrier = threading.Barrier(len(batches))
    results: list[list[dict[str, Any]] | None] = [None] * len(batches)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            metering = Metering(engine)
            barrier.wait(timeout=30)
            results[index] = [r.to_json() for r in metering.ingest("acme", batches[index])]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@pytest.fixture
def priced(engine: Engine) -> Engine:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        pricing.add_versions(conn, [PRICE], "test")
    return engine


ONE_EVENT = D("0.00045")  # 1000 × 0.15/1M + 500 × 0.6/1M


def _check_charged_once(engine: Engine, results: list[list[dict[str, Any]]], n: int) -> None:
    assert counts(engine) == (n, 2 * n)
    assert line_total(engine) == ONE_EVENT * n
    with engine.connect() as conn:
        assert conn.execute(select(money_sum(usage_records.c.cost))).scalar_one() == ONE_EVENT * n
        stored = {r.event_id: r.request_id for r in conn.execute(
            select(usage_records.c.event_id, usage_records.c.request_id))}
        assert accounts.list_users(conn, "acme") == [f"user-{i}" for i in range(7)]
    fresh = [r for batch in results for r in batch if not r["duplicate"]]
    assert sorted(r["id"] for r in fresh) == sorted(stored)  # each event new exactly once
    for batch in results:
        assert len(batch) == len(stored)
        for result in batch:
            assert "error" not in result
            assert result["request_id"] == stored[result["id"]]  # everyone sees the one record
            assert result["cost"] == "0.00045"


def test_concurrent_ingest_of_the_same_batch_charges_once(priced: Engine) -> None:
    results = _ingest_concurrently(priced, [_events(50) for _ in range(8)])
    _check_charged_once(priced, results, 50)
    assert line_total(priced) == D("0.0225")


def test_concurrent_ingest_in_different_orders_charges_once(priced: Engine) -> None:
    """Clients retry a batch in another order: no deadlock (PostgreSQL), no double charge."""
    events = _events(400)
    batches = [random.Random(seed).sample(events, len(events)) for seed in range(8)]
    results = _ingest_concurrently(priced, batches)
    _check_charged_once(priced, results, 400)


def test_concurrent_writers_in_different_orders_do_not_deadlock(engine: Engine) -> None:
    """Each writer inserts the same records in its own order, all at once, three times over.

    Without one lock order inside the bulk insert, PostgreSQL aborts some of them with
    'deadlock detected' (seen in most rounds of this size before the fix).
    """
    threads_n, size = 8, 300
    for round_no in range(3):
        records = [record(f"r{round_no}-{i:04d}") for i in range(size)]
        barrier = threading.Barrier(threads_n)
        errors: list[BaseException] = []
        inserted: list[set[str]] = []

        def worker(seed: int, records: list[NewRecord] = records,
                   barrier: threading.Barrier = barrier, errors: list[BaseException] = errors,
                   inserted: list[set[str]] = inserted) -> None:
            # every writer makes its own request ids, as the metering service does
            mine = [NewRecord(dict(r.row, request_id=f"{r.row['request_id']}-w{seed}"), r.lines)
                    for r in random.Random(seed).sample(records, len(records))]
            try:
                with engine.connect() as conn:
                    barrier.wait(timeout=30)
                    with conn.begin():
                        inserted.append(ledger.write_records(conn, mine))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert [type(e).__name__ for e in errors] == []
        every = [event for batch in inserted for event in batch]
        assert sorted(every) == sorted(r.row["event_id"] for r in records)  # each once
    assert counts(engine) == (3 * size, 6 * size)
    assert line_total(engine) == ONE_EVENT * 3 * size


# --- unpriced records --------------------------------------------------------------------------

def test_price_unpriced_fills_a_record_once(engine: Engine) -> None:
    with engine.begin() as conn:
        ledger.write_records(conn, [unpriced_record("e1"), unpriced_record("e2"), record("e3")])
    values = {"cost": D("0.00045"), "currency": "USD", "price_version_id": "v1",
              "billed_cost": D("0.00045"), "billed_currency": "USD", "warning": None}
    with engine.begin() as conn:
        assert [r.request_id for r in ledger.unpriced(conn)] == ["req_acme_e1", "req_acme_e2"]
        assert ledger.price_unpriced(conn, "req_acme_e1", values, LINES) is True
    with engine.begin() as conn:
        assert ledger.price_unpriced(conn, "req_acme_e1", values, LINES) is False
        assert ledger.price_unpriced(conn, "req_acme_e3", values, LINES) is False  # was priced
        assert ledger.price_unpriced(conn, "req_missing", values, LINES) is False
        assert [r.request_id for r in ledger.unpriced(conn)] == ["req_acme_e2"]
    with engine.connect() as conn:
        e1 = conn.execute(select(usage_records)
                          .where(usage_records.c.request_id == "req_acme_e1")).one()
        lines = ledger.lines_of(conn, ["req_acme_e1"])["req_acme_e1"]
    assert (e1.pricing, e1.cost, e1.currency, e1.price_version_id, e1.warning) == (
        "priced", D("0.00045"), "USD", "v1", None)
    assert [ln["amount"] for ln in lines] == ["0.00015", "0.0003"]
    assert counts(engine) == (3, 4)  # e1's lines once, e3's lines; e2 none
    assert line_total(engine) == D("0.0009")


def test_unpriced_pages_by_request_id(engine: Engine) -> None:
    with engine.begin() as conn:
        ledger.write_records(conn, [unpriced_record(f"e{i}") for i in range(5)])
    with engine.connect() as conn:
        first = [r.request_id for r in ledger.unpriced(conn, limit=2)]
        second = [r.request_id for r in ledger.unpriced(conn, limit=2, after=first[-1])]
        rest = [r.request_id for r in ledger.unpriced(conn, limit=2, after=second[-1])]
    assert first + second + rest == [f"req_acme_e{i}" for i in range(5)]
    assert len(rest) == 1


# --- list_records ------------------------------------------------------------------------------

@pytest.fixture
def history(engine: Engine) -> Engine:
    rows = [
        row("a1", user_id="alice", occurred_at=T0),
        row("a2", user_id="alice", occurred_at=T0 + timedelta(hours=1), model="acme/chat-2"),
        row("a3", user_id="bob", occurred_at=T0 + timedelta(hours=2), status="error",
            key_id="key_1"),
        row("a4", user_id="bob", occurred_at=T0 + timedelta(hours=3), provider="other",
            model="other/m"),
        row("a5", user_id=None, occurred_at=T0 + timedelta(hours=3)),  # same time as a4
    ]
    with engine.begin() as conn:
        ledger.write_records(conn, [NewRecord(r) for r in rows])
        ledger.write_records(conn, [NewRecord(row("b1", tenant="beta", user_id="alice",
                                                  occurred_at=T0 + timedelta(hours=5)))])
    return engine


def _ids(engine: Engine, **filters: Any) -> list[str]:
    with engine.connect() as conn:
        return [r.event_id for r in ledger.list_records(conn, **filters)]


def test_list_records_newest_first(history: Engine) -> None:
    assert _ids(history) == ["b1", "a4", "a5", "a3", "a2", "a1"]  # ties by request id
    assert _ids(history, tenant_id="acme") == ["a4", "a5", "a3", "a2", "a1"]
    assert _ids(history, tenant_id="acme", limit=2) == ["a4", "a5"]


def test_list_records_filters(history: Engine) -> None:
    assert _ids(history, tenant_id="acme", user_id="alice") == ["a2", "a1"]
    assert _ids(history, user_id="alice") == ["b1", "a2", "a1"]
    assert _ids(history, tenant_id="acme", model="acme/chat-2") == ["a2"]
    assert _ids(history, status="error") == ["a3"]
    assert _ids(history, status="success", user_id="bob") == ["a4"]
    assert _ids(history, key_id="key_1") == ["a3"]
    assert _ids(history, provider="other") == ["a4"]
    assert _ids(history, request_id="req_acme_a2") == ["a2"]
    assert _ids(history, tenant_id="nobody") == []


def test_list_records_time_range(history: Engine) -> None:
    one, three = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    assert _ids(history, tenant_id="acme", since=one) == ["a4", "a5", "a3", "a2"]  # inclusive
    assert _ids(history, tenant_id="acme", until=three) == ["a3", "a2", "a1"]  # exclusive
    assert _ids(history, tenant_id="acme", since=one, until=three) == ["a3", "a2"]
    # the same instants given in another offset select the same records
    shanghai = timezone(timedelta(hours=8))
    assert _ids(history, tenant_id="acme", since=one.astimezone(shanghai),
                until=three.astimezone(shanghai)) == ["a3", "a2"]
