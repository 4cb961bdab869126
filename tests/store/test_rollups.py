"""meterline.store.rollups: daily rollups kept in step with the ledger equal a rebuild, exactly."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from meterline.domain.money import convert_at, convert_lines
from meterline.domain.rating import ChargeLine
from meterline.domain.usage import Meter
from meterline.errors import StoreError
from meterline.store import accounts, ledger, rollups
from meterline.store.ledger import NewRecord
from meterline.store.rollup_writes import MODEL_KEY, PEOPLE_KEY, REFUND_SOURCE, converted_sql
from meterline.store.rollups import SUM_CONTEXT
from meterline.store.schema import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    charge_lines,
    usage_daily,
    usage_daily_meters,
    usage_daily_models,
    usage_daily_people,
    usage_records,
)
from tests.conftest import PG_SERVER

D = Decimal
T0 = datetime(2026, 11, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai: days differ by timezone
RATES = (D("7.1234"), D("0.1388888888888888888888888889"))
PRICES = (("input_tokens", D("0.15")), ("output_tokens", D("0.6")),
          ("cached_input_tokens", D("0.075")), ("requests", D("0.000000333")))
_tenants = itertools.count()


def line(meter: str, quantity: int, unit_price: Decimal) -> ChargeLine:
    amount = SUM_CONTEXT.divide(SUM_CONTEXT.multiply(D(quantity), unit_price), D(1_000_000))
    return ChargeLine(meter, D(quantity), "1M tokens", unit_price, 1_000_000, amount)


def priced_values(lines: Sequence[ChargeLine], kind: str, rate: Decimal,
                  model: str = "acme/chat-1") -> dict[str, Any]:
    """The priced columns of a record in a CNY tenant whose prices are in USD."""
    cost = exact_sum(ln.amount for ln in lines)
    # Converted line by line, as pricing does (the one conversion, 10 places half-even).
    billed = convert_lines((ln.amount for ln in lines), rate) if kind == "converted" else None
    return {"model": model, "provider": model.split("/")[0], "cost": cost, "currency": "USD",
            "price_version_id": f"{model}@2026-01-01", "billed_cost": billed,
            "billed_currency": "CNY" if billed is not None else None,
            "fx_rate": rate if billed is not None else None,
            "fx_missing": billed is None, "warning": None}


def make(tenant: str, event_id: str, spec: dict[str, Any]) -> NewRecord:
    row: dict[str, Any] = {c.name: None for c in usage_records.columns}
    row.update({meter.value: 0 for meter in Meter})
    row.update({
        "request_id": f"req_{tenant}_{event_id}_{spec['delivery']}", "tenant_id": tenant,
        "event_id": event_id, "user_id": spec["user"], "key_id": spec["key"],
        "source": "ingest", "status": spec["status"], "pricing": ledger.PRICED,
        "occurred_at": T0 + timedelta(minutes=spec["minutes"]), "recorded_at": T0,
        "input_tokens": spec["input"], "cached_input_tokens": 0, "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": spec["output"], "reasoning_tokens": 0, "characters": 0, "images": 0,
        "seconds": D(spec["seconds"]), "requests": 1, "estimated": spec["estimated"],
        "cost_mismatch": False, "fx_missing": False, "latency_ms": spec["latency"],
        "tags": spec["tags"],
    })
    lines = [line(meter, quantity, price) for (meter, price), quantity
             in zip(PRICES, spec["quantities"], strict=False) if quantity]
    if spec["kind"] == "unpriced" or not lines:
        row.update(model="other/unknown", provider="other", pricing=ledger.UNPRICED,
                   warning="no price")
        return NewRecord(row, ())
    row.update(priced_values(lines, spec["kind"], spec["rate"], spec["model"]))
    return NewRecord(row, lines)


specs = st.fixed_dictionaries({
    "user": st.sampled_from([None, "alice", "bob"]),
    "key": st.sampled_from([None, "key_1"]),
    "model": st.sampled_from(["acme/chat-1", "acme/chat-2"]),
    "status": st.sampled_from(["success", "error", "refunded"]),
    "minutes": st.integers(0, 2 * 24 * 60),
    "input": st.integers(0, 10**9),
    "output": st.integers(0, 10**6),
    "seconds": st.sampled_from(["0", "1.5", "0.001"]),
    "estimated": st.booleans(),
    "latency": st.one_of(st.none(), st.integers(0, 200_000)),
    "tags": st.sampled_from([None, ["a"], ["a", "b"]]),
    "kind": st.sampled_from(["converted", "fx_missing", "unpriced"]),
    "rate": st.sampled_from(RATES),
    "quantities": st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
    "delivery": st.just(0),
})


def add_tenant(engine: Engine, zone: str) -> str:
    tenant = f"t{next(_tenants)}"
    with engine.begin() as conn:
        accounts.create_tenant(conn, tenant, "CNY", zone)
    return tenant


def rows_of(engine: Engine, tenant: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tenant's usage_daily and usage_daily_meters rows, having checked that its
    usage_daily_models rows are the same sums without users and keys."""
    with engine.connect() as conn:
        daily = rollups.all_rows(conn, usage_daily, tenant)
        assert rollups.all_rows(conn, usage_daily_models, tenant) == by_model(daily)
        assert rollups.all_rows(conn, usage_daily_people, tenant) == by_person(daily)
        return daily, rollups.all_rows(conn, usage_daily_meters, tenant)


def by_model(daily: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """usage_daily rows summed over users and keys, in usage_daily_models' key order."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in daily:
        coarse = {k: v for k, v in row.items() if k not in ("user_id", "key_id")}
        key = tuple(coarse[k] for k in MODEL_KEY)
        found = out.get(key)
        out[key] = coarse if found is None else {
            k: v if k in MODEL_KEY else SUM_CONTEXT.add(found[k], v) if isinstance(v, Decimal)
            else found[k] + v for k, v in coarse.items()}
    return [out[key] for key in sorted(out)]


def by_person(daily: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """usage_daily rows as usage_daily_people's: per user, key and currency pair, refunds
    records but not calls."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in daily:
        calls = row["calls"]
        values = {"records": calls, "calls": 0 if row["status"] == "refunded" else calls,
                  "successes": calls if row["status"] == "success" else 0,
                  **{k: row[k] for k in ("input_tokens", "output_tokens", "unpriced_calls",
                                         "cost", "billed_cost")}}
        key = tuple(row[k] for k in PEOPLE_KEY)
        found = out.get(key)
        out[key] = {**dict(zip(PEOPLE_KEY, key, strict=True)), **(values if found is None else {
            k: SUM_CONTEXT.add(found[k], v) if isinstance(v, Decimal) else found[k] + v
            for k, v in values.items()})}
    return [out[key] for key in sorted(out)]


def assert_rollups_equal_rebuild(engine: Engine, tenant: str) -> None:
    incremental = rows_of(engine, tenant)
    with engine.begin() as conn:
        seen = rollups.rebuild(conn, tenant)
    rebuilt = rows_of(engine, tenant)
    assert incremental == rebuilt
    assert_totals_match_ledger(engine, tenant, seen)


def exact_sum(values: Any) -> Decimal:
    """Sums Decimals exactly (the default context would round to 28 digits)."""
    total = D(0)
    for value in values:
        total = SUM_CONTEXT.add(total, value)
    return total


def assert_totals_match_ledger(engine: Engine, tenant: str, records: int) -> None:
    """Every rollup total equals the ledger's: records, charge lines, billed amounts."""
    daily, meters = rows_of(engine, tenant)
    with engine.connect() as conn:
        stored = list(conn.execute(select(usage_records).where(
            usage_records.c.tenant_id == tenant)))
        amounts = [r.amount for r in conn.execute(select(charge_lines.c.amount).join(
            usage_records, usage_records.c.request_id == charge_lines.c.request_id).where(
            usage_records.c.tenant_id == tenant))]
    assert len(stored) == records == sum(r["calls"] for r in daily)
    assert sum(r["input_tokens"] for r in daily) == sum(r.input_tokens for r in stored)
    total = exact_sum(amounts)
    assert exact_sum(r["cost"] for r in daily) == total
    assert exact_sum(r["amount"] for r in meters) == total
    billed = exact_sum(r.billed_cost for r in stored if r.billed_cost is not None)
    assert exact_sum(r["billed_cost"] for r in daily) == billed
    assert exact_sum(r["billed_amount"] for r in meters) == billed
    assert sum(r["unpriced_calls"] for r in daily) == sum(r.cost is None for r in stored)
    assert all(r["calls"] > 0 for r in daily) and all(r["lines"] > 0 for r in meters)


def write(engine: Engine, records: Sequence[NewRecord]) -> set[str]:
    for _ in range(5):
        try:
            with engine.begin() as conn:
                return ledger.write_records(conn, records)
        except StoreError as exc:
            if not exc.context.get("retryable"):
                raise
    raise AssertionError("ledger write kept conflicting")


def complete_some(engine: Engine, tenant: str, rerate: Sequence[bool]) -> None:
    """Rerate unpriced records and convert fx_missing ones, where ``rerate`` says so."""
    with engine.begin() as conn:
        stored = list(conn.execute(select(usage_records).where(
            usage_records.c.tenant_id == tenant).order_by(usage_records.c.request_id)))
        for record, chosen in zip(stored, rerate, strict=False):
            if not chosen:
                continue
            if record.pricing == ledger.UNPRICED:
                lines = [line("input_tokens", record.input_tokens or 1, D("0.15"))]
                assert ledger.price_unpriced(conn, record.request_id,
                                             priced_values(lines, "fx_missing", RATES[0]), lines)
            elif record.fx_missing:
                rate = RATES[1]
                assert ledger.fill_fx(conn, record.request_id, "CNY", rate)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/Los_Angeles"]),
       events=st.lists(specs, min_size=1, max_size=30),
       batches=st.lists(st.lists(st.integers(0, 29), max_size=12, unique=True), min_size=1,
                        max_size=6),
       rerate=st.lists(st.lists(st.booleans(), max_size=30), min_size=6, max_size=6))
def test_incremental_rollups_equal_a_rebuild(engine: Engine, zone: str,
                                             events: list[dict[str, Any]],
                                             batches: list[list[int]],
                                             rerate: list[list[bool]]) -> None:
    tenant = add_tenant(engine, zone)
    for number, batch in enumerate(batches):
        # Events delivered again come with new request ids (and may differ): the ledger keeps
        # the first delivery, and so must the rollups.
        chosen = [make(tenant, f"e{i}", {**events[i % len(events)], "delivery": number})
                  for i in sorted({i % len(events) for i in batch})]
        write(engine, chosen)
        complete_some(engine, tenant, rerate[number])
    assert_rollups_equal_rebuild(engine, tenant)


def spec(**overrides: Any) -> dict[str, Any]:
    base = {"user": "alice", "key": None, "model": "acme/chat-1", "status": "success",
            "minutes": 0, "input": 1000, "output": 500, "seconds": "0", "estimated": False,
            "latency": 120, "tags": None, "kind": "converted", "rate": RATES[0],
            "quantities": [1000, 500], "delivery": 0}
    return base | overrides


def test_a_day_is_the_tenants_calendar_day(engine: Engine) -> None:
    shanghai = add_tenant(engine, "Asia/Shanghai")
    utc = add_tenant(engine, "UTC")
    write(engine, [make(shanghai, "e1", spec(minutes=45))])  # 16:15 UTC = 00:15 next day
    write(engine, [make(utc, "e1", spec(minutes=45))])
    assert [r["day"] for r in rows_of(engine, shanghai)[0]] == [date(2026, 11, 2)]
    assert [r["day"] for r in rows_of(engine, utc)[0]] == [date(2026, 11, 1)]


def test_sums_of_one_key_and_the_latency_histogram(engine: Engine) -> None:
    tenant = add_tenant(engine, "UTC")
    write(engine, [make(tenant, "e1", spec(latency=40)), make(tenant, "e2", spec(latency=120)),
                   make(tenant, "e3", spec(latency=None, estimated=True))])
    write(engine, [make(tenant, "e1", spec(latency=40, delivery=1))])  # a duplicate
    (row,), meters = rows_of(engine, tenant)
    assert (row["calls"], row["input_tokens"], row["output_tokens"], row["requests"]) == \
        (3, 3000, 1500, 3)
    assert (row["latency_count"], row["latency_ms_total"]) == (2, 160)
    assert (row["latency_le_50"], row["latency_le_200"], row["latency_le_100"]) == (1, 1, 0)
    assert row["estimated_calls"] == 1 and row["unpriced_calls"] == 0
    assert row["cost"] == 3 * D("0.00045")
    assert row["billed_cost"] == 3 * (convert_at(D("0.00015"), RATES[0])
                                      + convert_at(D("0.0003"), RATES[0]))
    assert [(m["meter"], m["lines"], m["quantity"], m["amount"]) for m in meters] == [
        ("input_tokens", 3, D(3000), D("0.00045")), ("output_tokens", 3, D(1500), D("0.0009"))]
    assert_rollups_equal_rebuild(engine, tenant)


def test_latencies_on_the_bucket_bounds_and_refund_lines(engine: Engine) -> None:
    """A latency equal to a bound counts in the bucket that bound closes (PostgreSQL sums in
    SQL, SQLite in Python: both must agree with the rebuild); refund lines are kept apart."""
    tenant = add_tenant(engine, "UTC")
    latencies = [0, *(b for bound in LATENCY_BOUNDS_MS for b in (bound, bound + 1))]
    records = [make(tenant, f"e{n}", spec(latency=latency))
               for n, latency in enumerate(latencies)]
    refund = make(tenant, "r1", spec(latency=None))
    refund.row["source"] = REFUND_SOURCE
    write(engine, [*records, refund])
    (row,), meters = rows_of(engine, tenant)
    # each bucket holds its bound and the one above the bound below; the last, 120001 only
    assert [row[name] for name in LATENCY_BUCKETS] == [2] * len(LATENCY_BOUNDS_MS) + [1]
    assert row["latency_count"] == len(latencies) and row["calls"] == len(latencies) + 1
    assert [(m["meter"], m["refund"], m["lines"]) for m in meters] == [
        ("input_tokens", False, len(latencies)), ("input_tokens", True, 1),
        ("output_tokens", False, len(latencies)), ("output_tokens", True, 1)]
    assert_rollups_equal_rebuild(engine, tenant)


def test_rerate_and_late_fx_move_a_record_between_keys(engine: Engine) -> None:
    tenant = add_tenant(engine, "UTC")
    write(engine, [make(tenant, "e1", spec(kind="unpriced")),
                   make(tenant, "e2", spec(kind="fx_missing"))])
    before, _ = rows_of(engine, tenant)
    assert {(r["model"], r["currency"], r["billed_currency"]) for r in before} == {
        ("other/unknown", "", ""), ("acme/chat-1", "USD", "")}
    complete_some(engine, tenant, [True, True])
    after, meters = rows_of(engine, tenant)
    # The rerated one is priced without a rate (fx_missing); the other is now converted.
    assert sorted((r["model"], r["currency"], r["billed_currency"], r["calls"])
                  for r in after) == [("acme/chat-1", "USD", "", 1),
                                      ("acme/chat-1", "USD", "CNY", 1)]
    assert {m["billed_currency"] for m in meters} == {"", "CNY"}
    assert_rollups_equal_rebuild(engine, tenant)


def test_concurrent_writers_lose_nothing(engine: Engine) -> None:
    tenant = add_tenant(engine, "Asia/Shanghai")
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for batch in range(6):
                # Overlapping event ids across threads: each is charged once.
                write(engine, [make(tenant, f"e{(number * 7 + batch * 5 + i) % 60}",
                                    spec(user=f"u{i % 3}", minutes=i * 37, delivery=number))
                               for i in range(15)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(usage_records).where(
            usage_records.c.tenant_id == tenant)).scalar_one()
    assert sum(r["calls"] for r in rows_of(engine, tenant)[0]) == count
    assert_rollups_equal_rebuild(engine, tenant)


def test_rebuild_of_one_tenant_leaves_the_others(engine: Engine) -> None:
    first, second = add_tenant(engine, "UTC"), add_tenant(engine, "UTC")
    write(engine, [make(first, "e1", spec())])
    write(engine, [make(second, "e1", spec())])
    with engine.begin() as conn:
        for table in (usage_daily, usage_daily_models, usage_daily_people):
            conn.execute(table.delete().where(table.c.tenant_id == second))
        assert rollups.rebuild(conn, first) == 1
    assert rows_of(engine, second)[0] == []
    with engine.begin() as conn:
        assert rollups.rebuild(conn) == 2
        assert rollups.count_records(conn) == 2
    assert len(rows_of(engine, second)[0]) == 1


# PostgreSQL adds up the rollups of a ledger write itself; its conversion of a line must be
# money.convert_at's to the digit (ties included), or bills and records would drift apart.
_line_amounts = st.one_of(
    st.builds(lambda n, places: D(n).scaleb(-places), st.integers(-(10**18), 10**18),
              st.integers(0, 24)),
    st.builds(lambda n: D(n * 10 + 5).scaleb(-11), st.integers(-(10**12), 10**12)))
_rates = st.one_of(st.sampled_from((*RATES, D(1), D("0.5"), D("0.25"))),
                   st.builds(lambda n, places: D(n).scaleb(-places), st.integers(1, 10**12),
                             st.integers(0, 28)))


@settings(max_examples=20, deadline=None)
@given(pairs=st.lists(st.tuples(_line_amounts, _rates), min_size=1, max_size=60))
def test_postgresql_converts_a_line_as_convert_at_does(pairs: list[tuple[Decimal, Decimal]]
                                                       ) -> None:
    query = (f"SELECT {converted_sql('a', 'r')} FROM unnest(%s::numeric[], %s::numeric[]) "
             "WITH ORDINALITY AS v(a, r, n) ORDER BY n")
    with psycopg.connect(PG_SERVER) as conn:
        found = [row[0] for row in conn.execute(query, [[a for a, _ in pairs],
                                                        [r for _, r in pairs]])]
    assert found == [convert_at(a, r) for a, r in pairs]
