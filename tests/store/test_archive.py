"""meterline.store.archive: old records move out of the hot tables, and nothing else changes.

Each test runs on SQLite and on PostgreSQL. Records are written as clients send them (through
``Metering.ingest``, or ``POST /v1/usage`` in the HTTP test at the end), months before today.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from meterline.domain.fx import FxRate
from meterline.domain.prices import PriceVersion
from meterline.errors import InvalidInput
from meterline.gateway.recorder import ledger_sink
from meterline.services.metering import Metering
from meterline.store import accounts, archive, horizon, ledger, pricing, rollups
from meterline.store.engine import make_engine
from meterline.store.rollup_writes import SUM_CONTEXT
from meterline.store.schema import (
    charge_lines,
    charge_lines_archive,
    usage_daily,
    usage_daily_meters,
    usage_records,
    usage_records_archive,
)

D = Decimal
NOW = datetime.now(UTC)
CUTOFF = archive.older_than(2, NOW)  # the first instant of (this month - 2), UTC
CYCLE = f"{CUTOFF:%Y-%m}"
#: Around the cutoff: four before it (one a second before), three at or after it.
OFFSETS = (timedelta(days=-150), timedelta(days=-40), timedelta(hours=-20),
           timedelta(seconds=-1), timedelta(0), timedelta(days=20), NOW - CUTOFF)
OLD = sum(offset < timedelta(0) for offset in OFFSETS)


@pytest.fixture
def metering(engine: Engine) -> Metering:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        # A call a second before the cutoff is on the cutoff month's first day in Shanghai.
        accounts.create_tenant(conn, "shop-cn", currency="CNY", timezone="Asia/Shanghai")
        accounts.create_tenant(conn, "eu", currency="EUR")  # no USD→EUR rate: fx_missing
        pricing.add_versions(conn, [PriceVersion.parse({
            "model": "acme/chat-1", "currency": "USD", "effective_from": "2020-01-01",
            "unit": "1M", "prices": {"input_tokens": "0.15", "output_tokens": "0.6"}})], "test")
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "7.1234",
                                               datetime(2020, 1, 1, tzinfo=UTC)))
    return Metering(engine)


def event(event_id: str, at: datetime, model: str = "acme/chat-1", **fields: Any
          ) -> dict[str, Any]:
    return {"id": event_id, "timestamp": at.isoformat(), "model": model, "user": "alice",
            "usage": {"input_tokens": 1234567, "output_tokens": 7654321}, "tags": ["a", "b"],
            "metadata": {"purpose": "chat"}} | fields


def ingest(metering: Metering, tenant: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """The results as POST /v1/usage answers them."""
    return [result.to_json() for result in metering.ingest(tenant, list(events))]


def fill(metering: Metering) -> int:
    """Calls around the cutoff in two tenants, and two old ones that stay hot: returns how many
    records should move."""
    for tenant in ("acme", "shop-cn"):
        results = ingest(metering, tenant, *(event(f"e{i}", CUTOFF + offset,
                                                   user=f"u{i % 3}")
                                             for i, offset in enumerate(OFFSETS)))
        assert all("error" not in r and not r["duplicate"] for r in results), results
    old = CUTOFF - timedelta(days=3)
    assert ingest(metering, "acme", event("unpriced", old, model="other/x"))[0]["status"] == \
        "unpriced"
    assert ingest(metering, "eu", event("fx", old))[0]["warning"]  # no FX rate: fx_missing
    return 2 * OLD


def everything(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record and charge line, hot and archived, in a stable order."""
    with engine.connect() as conn:
        records = [dict(r._mapping) for table in (usage_records, usage_records_archive)
                   for r in conn.execute(select(table))]
        lines = [dict(r._mapping) for table in (charge_lines, charge_lines_archive)
                 for r in conn.execute(select(table))]
    return (sorted(records, key=lambda r: r["request_id"]),
            sorted(lines, key=lambda r: (r["request_id"], r["line_no"])))


def hot_and_archived(engine: Engine) -> tuple[list[Any], list[Any], int, int]:
    with engine.connect() as conn:
        hot = list(conn.execute(select(usage_records)))
        cold = list(conn.execute(select(usage_records_archive)))
        hot_lines = len(list(conn.execute(select(charge_lines))))
        cold_lines = len(list(conn.execute(select(charge_lines_archive))))
    return hot, cold, hot_lines, cold_lines


def rollup_rows(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with engine.connect() as conn:
        return rollups.all_rows(conn, usage_daily), rollups.all_rows(conn, usage_daily_meters)


def exact_sum(values: Any) -> Decimal:
    total = D(0)
    for value in values:
        total = SUM_CONTEXT.add(total, value)
    return total


def test_archiving_moves_old_complete_records_and_changes_no_rollup(
        engine: Engine, metering: Metering) -> None:
    moving = fill(metering)
    records, lines = everything(engine)
    before = rollup_rows(engine)
    old_ids = {r["request_id"] for r in records
               if r["occurred_at"] < CUTOFF and r["pricing"] == "priced" and not r["fx_missing"]}
    assert len(old_ids) == moving
    old_lines = [ln for ln in lines if ln["request_id"] in old_ids]
    assert archive.archive(engine, CYCLE, dry_run=True).to_json() == {
        "before": CYCLE, "cutoff": CUTOFF.isoformat(), "records": moving,
        "lines": len(old_lines), "kept_incomplete": 2, "dry_run": True}
    assert everything(engine) == (records, lines)  # a dry run changes nothing

    seen: list[int] = []
    counts = archive.archive(engine, CYCLE, progress=seen.append, batch=3)
    assert (counts.records, counts.lines, counts.kept) == (moving, len(old_lines), 2)
    assert sum(seen) == moving and max(seen) == 3
    hot, cold, hot_lines, cold_lines = hot_and_archived(engine)
    assert {r.request_id for r in cold} == old_ids
    assert cold_lines == len(old_lines) and hot_lines + cold_lines == len(lines)
    # What stays hot from before the cutoff: the unpriced record and the unconverted one.
    assert sorted(r.event_id for r in hot if r.occurred_at < CUTOFF) == ["fx", "unpriced"]
    # Nothing lost, nothing duplicated, every value as it was (Decimal money included).
    assert everything(engine) == (records, lines)
    assert exact_sum(ln.amount for ln in _lines(engine, charge_lines_archive)) == exact_sum(
        ln["amount"] for ln in old_lines)
    assert rollup_rows(engine) == before
    with engine.begin() as conn:
        assert rollups.rebuild(conn) == len(records) == rollups.count_records(conn)
    assert rollup_rows(engine) == before
    with engine.connect() as conn:
        assert horizon.horizon(conn) == CUTOFF
        listed = ledger.list_records(conn, tenant_id="acme", limit=1000)
        assert {r.event_id for r in listed} == {f"e{i}" for i in range(OLD, len(OFFSETS))} | {
            "unpriced"}
        listed = ledger.list_records(conn, tenant_id="acme", limit=1000, archived=True,
                                     until=CUTOFF)
        assert {r.event_id for r in listed} == {f"e{i}" for i in range(OLD)} | {"unpriced"}
        found = ledger.lines_of(conn, [r.request_id for r in listed], archived=True)
        assert all(found[r.request_id] for r in listed if r.event_id != "unpriced")
    assert archive.archive(engine, CYCLE).records == 0  # run again: nothing left to move


def _lines(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)))


def test_an_archived_event_sent_again_is_not_charged_again(
        engine: Engine, metering: Metering) -> None:
    fill(metering)
    first = {r["id"]: r for r in ingest(metering, "acme", *(
        event(f"e{i}", CUTOFF + offset) for i, offset in enumerate(OFFSETS)))}
    archive.archive(engine, CYCLE)
    records, lines = everything(engine)
    before = rollup_rows(engine)
    again = ingest(metering, "acme", event("e0", CUTOFF + OFFSETS[0]),
                   event("e1", NOW),  # the same id with another time: still the same event
                   event("unpriced", CUTOFF - timedelta(days=3), model="other/x"),
                   event("late", CUTOFF - timedelta(days=1)), event("new", NOW))
    by_id = {r["id"]: r for r in again}
    for event_id in ("e0", "e1"):
        assert by_id[event_id]["duplicate"] is True
        assert by_id[event_id]["request_id"] == first[event_id]["request_id"]
        assert by_id[event_id]["cost"] == first[event_id]["cost"]
    assert by_id["unpriced"]["duplicate"] is True  # old, but still hot
    assert by_id["late"] == {"id": "late", "field": "timestamp", "error": (
        f"events[3].timestamp: older than the archived period (before {CUTOFF.isoformat()}); "
        "the ledger takes no new events from it")}
    assert by_id["new"]["duplicate"] is False
    after, after_lines = everything(engine)
    assert [r for r in after if r["event_id"] != "new"] == records
    assert len(after) == len(records) + 1 and len(after_lines) == len(lines) + 2
    daily, _ = rollup_rows(engine)
    assert sum(r["calls"] for r in daily) == sum(r["calls"] for r in before[0]) + 1


def test_the_drainer_skips_archived_calls_and_sets_aside_older_ones(
        engine: Engine, metering: Metering, tmp_path: Path) -> None:
    fill(metering)
    archive.archive(engine, CYCLE)
    with engine.connect() as conn:
        stored = conn.execute(select(usage_records_archive).where(
            usage_records_archive.c.tenant_id == "acme", usage_records_archive.c.event_id == "e0"
        )).one()._mapping
    row = {str(name): value for name, value in stored.items()}  # plain str keys for orjson
    item = orjson.loads(orjson.dumps({"row": row, "lines": []}, default=str))
    late = {"row": item["row"] | {"request_id": "req_late", "event_id": "req_late"}, "lines": []}
    new = {"row": item["row"] | {"request_id": "req_new", "event_id": "req_new",
                                 "occurred_at": NOW.isoformat()}, "lines": []}
    records, _ = everything(engine)
    rejected = tmp_path / "rejected.jsonl"
    ledger_sink(engine, rejected)([item, late, new])
    after, _ = everything(engine)
    assert [r["request_id"] for r in after if r not in records] == ["req_new"]
    set_aside = [orjson.loads(line) for line in rejected.read_bytes().splitlines()]
    assert [s["record"]["row"]["request_id"] for s in set_aside] == ["req_late"]
    assert "older than the archived period" in set_aside[0]["error"]


def test_an_interrupted_archive_resumes(engine: Engine, metering: Metering) -> None:
    moving = fill(metering)
    records, lines = everything(engine)
    before = rollup_rows(engine)
    # A batch that fails half-way is rolled back whole.
    with pytest.raises(RuntimeError), engine.begin() as conn:
        archive.raise_horizon(conn, CUTOFF)
        assert archive.move_batch(conn, CUTOFF, size=2)[0] == 2
        raise RuntimeError("crash")
    assert hot_and_archived(engine)[1] == []

    def stop(_: int) -> None:
        raise KeyboardInterrupt  # the process stops after its first batch

    with pytest.raises(KeyboardInterrupt):
        archive.archive(engine, CYCLE, progress=stop, batch=2)
    assert len(hot_and_archived(engine)[1]) == 2
    assert everything(engine) == (records, lines)
    counts = archive.archive(engine, CYCLE, batch=2)
    assert counts.records == moving - 2
    assert len(hot_and_archived(engine)[1]) == moving
    assert everything(engine) == (records, lines)
    assert rollup_rows(engine) == before


def test_a_writer_holds_off_the_horizon_until_it_commits(engine: Engine) -> None:
    done = threading.Event()

    def raise_it() -> None:
        with engine.begin() as conn:
            archive.raise_horizon(conn, CUTOFF)
        done.set()

    with engine.begin() as conn:
        assert horizon.guard(conn, []).cutoff is None  # as every ledger writer does first
        worker = threading.Thread(target=raise_it)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
    worker.join(10)
    assert done.is_set()
    with engine.connect() as conn:
        assert horizon.horizon(conn) == CUTOFF


def test_cutoffs() -> None:
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert archive.older_than(1, now) == datetime(2026, 2, 1, tzinfo=UTC)
    assert archive.older_than(3, now) == datetime(2025, 12, 1, tzinfo=UTC)
    assert archive.older_than(15, now) == datetime(2024, 12, 1, tzinfo=UTC)
    assert archive.cutoff_of("2026-02", now) == datetime(2026, 2, 1, tzinfo=UTC)
    assert archive.cutoff_of(datetime(2025, 7, 1, tzinfo=UTC), now).month == 7
    for bad, needle in ((0, "at least 1"),):
        with pytest.raises(InvalidInput, match=needle):
            archive.older_than(bad, now)
    for value, needle in (("2026-03", "too recent"), ("2026-13", "not a cycle"),
                          ("march", "not a cycle"), (datetime(2025, 7, 2, tzinfo=UTC),
                                                     "not the start of a UTC month"),
                          (datetime(2025, 7, 1), "timezone")):
        with pytest.raises(InvalidInput, match=needle):
            archive.cutoff_of(value, now)


# -- over HTTP: statistics, summary, trend, bills and exports stay identical -------------------

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests/conftest.py's ADMIN_TOKEN


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json() if "json" in answer.headers["content-type"] else answer.content


@pytest.fixture
def http_engine(client: httpx.Client, database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_statistics_and_bills_are_the_same_after_archiving(
        client: httpx.Client, http_engine: Engine) -> None:
    assert client.post("/api/prices", headers=ADMIN, json={
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}
        ).status_code == 201
    keys = {}
    for tenant, zone in (("acme", "UTC"), ("shop", "Asia/Shanghai")):
        assert client.post("/api/tenants", headers=ADMIN,
                           json={"name": tenant, "timezone": zone}).status_code == 201
        key = client.post("/api/keys", headers=ADMIN, json={"tenant": tenant}).json()["key"]
        keys[tenant] = {"Authorization": f"Bearer {key}"}
        events = [event(f"e{i}-{n}", CUTOFF + offset, model="test/m1",
                        user=f"u{n}", tags=[f"t{n}"], metadata={"purpose": f"p{i % 2}"})
                  for i, offset in enumerate(OFFSETS) for n in range(3)]
        answer = client.post("/v1/usage", json={"events": events}, headers=keys[tenant])
        assert answer.status_code == 200 and not any("error" in r for r in
                                                     answer.json()["results"])
    start = (CUTOFF - timedelta(days=200)).date().isoformat()
    views = [("/api/summary", {}), ("/api/trend/daily", {"days": 200})]
    views += [("/api/stats", {"group_by": g, "start": start})
              for g in ("provider", "model", "user", "status", "day", "meter", "tag", "purpose")]
    views += [(path, params | {"tenant": tenant}) for path, params in views
              for tenant in ("acme", "shop")]
    cycles = sorted({f"{(CUTOFF + offset):%Y-%m}" for offset in OFFSETS})
    views += [(f"/api/bills/{tenant}/{cycle}{export}", params)
              for tenant in ("acme", "shop") for cycle in cycles
              for export, params in (("", {}), ("", {"user": "u1"}),
                                     ("/export", {"format": "csv"}))]
    # An old record refunded (a new, negative record on its day) and an old bill issued, both
    # before archiving: the refund is archived too, and the issued bill is a stored snapshot.
    old = _get(client, "/api/usage", tenant="acme", limit=1, end=CUTOFF.isoformat())
    assert client.post(f"/api/usage/{old['records'][0]['request_id']}/refund", headers=ADMIN,
                       json={"reason": "test"}).status_code == 201
    assert client.post(f"/api/bills/acme/{cycles[0]}/status", headers=ADMIN,
                       json={"status": "issued"}).status_code == 200

    def snapshot() -> list[Any]:
        return [_get(client, path, **params) for path, params in views]

    before, rows, records = snapshot(), rollup_rows(http_engine), everything(http_engine)
    counts = archive.archive(http_engine, CYCLE, batch=4)
    assert counts.records == 2 * 3 * OLD + 1 and counts.kept == 0  # and the refund
    assert snapshot() == before
    assert rollup_rows(http_engine) == rows and everything(http_engine) == records
    hot = _get(client, "/api/usage", tenant="acme", limit=1000)["records"]
    both = _get(client, "/api/usage", tenant="acme", limit=1000, archived="true")["records"]
    assert len(hot) == 3 * (len(OFFSETS) - OLD) and len(both) == 3 * len(OFFSETS) + 1
    assert all(r["lines"] for r in both)
    again = client.post("/v1/usage", json={"events": [event("e0-0", CUTOFF + OFFSETS[0],
                                                            model="test/m1")]},
                        headers=keys["acme"]).json()["results"][0]
    assert again["duplicate"] is True
    refused = client.post("/v1/usage", json={"events": [event("x", CUTOFF - timedelta(days=1),
                                                              model="test/m1")]},
                          headers=keys["acme"])
    assert refused.status_code == 400
    assert "older than the archived period" in refused.json()["results"][0]["error"]
    assert snapshot() == before

    # Archived records can still be refunded, once: the one refunded before archiving answers
    # with its archived refund; another is refunded on its own (archived) day, so the issued
    # bill stays and the next open cycle shows the refund as an adjustment.
    first = old["records"][0]["request_id"]
    again = client.post(f"/api/usage/{first}/refund", headers=ADMIN, json={})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["refund"]["lines"] and again.json()["refund"]["cost"].startswith("-")
    other = next(r for r in both if r["timestamp"].startswith(cycles[0])
                 and r["request_id"] != first and r["status"] != "refunded")
    issued = _get(client, f"/api/bills/acme/{cycles[0]}")
    answer = client.post(f"/api/usage/{other['request_id']}/refund", headers=ADMIN, json={})
    assert answer.status_code == 201, answer.text
    refund = answer.json()
    assert refund["duplicate"] is False and refund["refund_of"] == other["request_id"]
    assert refund["refund"]["cost"] == f"-{other['cost']}"
    assert refund["refund"]["timestamp"] == other["timestamp"]
    twice = client.post(f"/api/usage/{other['request_id']}/refund", headers=ADMIN, json={})
    assert twice.json()["duplicate"] is True and twice.json()["refund"] == refund["refund"]
    assert _get(client, f"/api/bills/acme/{cycles[0]}") == issued
    year, month = map(int, cycles[0].split("-"))
    following = f"{year + month // 12}-{month % 12 + 1:02d}"
    adjustments = [line for line in _get(client, f"/api/bills/acme/{following}")["lines"]
                   if line["adjustment_of"] == cycles[0] and line["status"] == "refunded"]
    assert adjustments and sum(Decimal(line["amount"]) for line in adjustments) == -Decimal(
        other["cost"])
    assert archive.archive(http_engine, CYCLE, batch=4).records == 1  # the new refund
