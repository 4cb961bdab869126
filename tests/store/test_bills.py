"""Stored bills, late usage carried as adjustments, refunds and void cycles, on SQLite and
PostgreSQL (meterline.store.bills, meterline.services.bills, meterline.services.refunds).

Every bill is checked against the ledger itself: what the issued and open bills of a tenant hold,
summed unrounded, is exactly the billed cost of its records — each call billed once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select

from meterline.domain.bills import Cycle
from meterline.errors import Conflict, InvalidInput, InvalidTransition, NotFound, UnknownUser
from meterline.services import bills as bill_service
from meterline.services import prices as price_service
from meterline.services import refunds as refund_service
from meterline.services.metering import AcceptedEvent, Metering
from meterline.store import accounts, rollups
from meterline.store import bills as store
from meterline.store.audit import Actor
from meterline.store.rollup_writes import SUM_CONTEXT
from meterline.store.schema import usage_daily_meters, usage_records
from meterline.store.types import money_sum

D = Decimal
ACTOR = Actor("test")


@pytest.fixture
def metering(engine: Engine) -> Metering:
    """Tenant acme (USD, Asia/Shanghai) with users; test/m1 priced in USD."""
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "Asia/Shanghai")
    price_service.add_version(engine, {
        "model": "test/m1", "unit": "1", "currency": "USD", "effective_from": "2020-01-01",
        "prices": {"input_tokens": "0.0000005", "output_tokens": "0.0000015"}}, actor=ACTOR)
    found = Metering(engine)
    found.refresh(force=True)
    return found


def ingest(metering: Metering, *events: dict[str, Any]) -> list[str]:
    results = metering.ingest("acme", list(events))
    assert all(isinstance(r, AcceptedEvent) for r in results), results
    return [r.request_id for r in results if isinstance(r, AcceptedEvent)]


def event(event_id: str, at: str, user: str = "alice", tokens: int = 1000) -> dict[str, Any]:
    return {"id": event_id, "timestamp": at, "user": user, "model": "test/m1",
            "usage": {"input_tokens": tokens, "output_tokens": tokens // 3 + 1}}


def ledger_total(engine: Engine, cycles: list[str], user: str | None = None) -> Decimal:
    """The billed cost of acme's records in these cycles (Asia/Shanghai months), from the
    records themselves."""
    c = usage_records.c
    total = D(0)
    with engine.connect() as conn:
        for name in cycles:
            start, end = Cycle(int(name[:4]), int(name[5:])).bounds("Asia/Shanghai")
            query = select(money_sum(c.billed_cost)).where(
                c.tenant_id == "acme", c.billed_currency == "USD", c.occurred_at >= start,
                c.occurred_at < end)
            if user is not None:
                query = query.where(c.user_id == user)
            total = SUM_CONTEXT.add(total, conn.execute(query).scalar_one() or D(0))
    return total


def bill(engine: Engine, cycle: str, user: str | None = None) -> dict[str, Any]:
    """The bill as the API answers it (SPEC §5)."""
    return bill_service.get_bill(engine, "acme", cycle, user).to_json()


def test_a_cycle_is_the_tenants_local_month(engine: Engine, metering: Metering) -> None:
    # 17:00 UTC on 31 October is 1 November in Shanghai.
    ingest(metering, event("a", "2026-10-31T15:59:59Z"), event("b", "2026-10-31T16:00:00Z"))
    october, november = bill(engine, "2026-10"), bill(engine, "2026-11")
    assert [line["quantity"] for line in october["lines"]] == ["1000", "334"]
    assert [line["quantity"] for line in november["lines"]] == ["1000", "334"]
    assert october["status"] == "open" and october["currency"] == "USD"
    assert D(october["total"]) == ledger_total(engine, ["2026-10"]) == D("0.000001001") * 1000


def test_late_usage_is_an_adjustment_of_the_next_open_cycle_once(
        engine: Engine, metering: Metering) -> None:
    ingest(metering, event("o1", "2026-10-03T01:00:00Z"),
           event("o2", "2026-10-20T01:00:00Z", "bob", 777777),
           event("n1", "2026-11-02T01:00:00Z", tokens=5))
    issued = bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ACTOR).to_json()
    assert issued["status"] == "issued" and issued["issued_at"] is not None
    assert D(issued["exact_total"]) == ledger_total(engine, ["2026-10"])
    assert sum(D(line["amount"]) for line in issued["lines"]) == D(issued["total"])

    ingest(metering, event("late", "2026-10-15T01:00:00Z", tokens=123456))
    assert bill(engine, "2026-10") == issued  # an issued bill never changes
    november = bill(engine, "2026-11")
    late = [line for line in november["lines"] if line["adjustment_of"]]
    assert [(line["adjustment_of"], line["quantity"]) for line in late] == [
        ("2026-10", "123456"), ("2026-10", "41153")]
    assert D(november["total"]) == SUM_CONTEXT.add(
        ledger_total(engine, ["2026-11"]),
        ledger_total(engine, ["2026-10"]) - D(issued["exact_total"]))
    assert bill(engine, "2026-11") == november  # reading computes the same bill again

    issued_nov = bill_service.set_status(engine, "acme", "2026-11", "issued",
                                         actor=ACTOR).to_json()
    assert D(issued_nov["exact_total"]) == D(november["total"])
    december = bill(engine, "2026-12")
    assert december["lines"] == [] and december["total"] == "0"  # nothing counted twice
    both = SUM_CONTEXT.add(D(issued["exact_total"]), D(issued_nov["exact_total"]))
    assert both == ledger_total(engine, ["2026-10", "2026-11"])

    # More late usage of October, after November was issued: only the new usage moves on.
    ingest(metering, event("later", "2026-10-16T01:00:00Z", tokens=3))
    december = bill(engine, "2026-12")
    assert [(ln["adjustment_of"], ln["quantity"]) for ln in december["lines"]] == [
        ("2026-10", "3"), ("2026-10", "2")]
    assert SUM_CONTEXT.add(both, D(december["total"])) == ledger_total(
        engine, ["2026-10", "2026-11", "2026-12"])


def test_refunds_are_their_own_negative_lines(engine: Engine, metering: Metering) -> None:
    october_id, november_id = ingest(metering, event("o", "2026-10-03T01:00:00Z"),
                                     event("n", "2026-11-03T01:00:00Z", tokens=3000))
    before = bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ACTOR).to_json()
    first = refund_service.refund(engine, october_id, "goodwill", actor=ACTOR)
    again = refund_service.refund(engine, october_id, actor=ACTOR)
    assert (first.refund_of, first.duplicate, again.duplicate) == (october_id, False, True)
    assert again.refund.request_id == first.refund.request_id
    record = first.refund
    assert (record.event_id, record.source, record.status) == (
        f"refund:{october_id}", "refund", "refunded")
    assert record.usage == {} and record.cost == -D(before["exact_total"])
    assert record.metadata == {"refund_of": october_id, "refund_reason": "goodwill"}
    assert record.lines and all(D(line["quantity"]) < 0 for line in record.lines)
    shown = first.to_json()
    assert (shown["refund_of"], shown["duplicate"]) == (october_id, False)
    assert D(shown["refund"]["cost"]) == -D(before["exact_total"])
    assert shown["refund"]["id"] == f"refund:{october_id}" and shown["refund"]["usage"] == {}
    refund_service.refund(engine, november_id, actor=ACTOR)

    assert bill(engine, "2026-10") == before
    lines = bill(engine, "2026-11")["lines"]
    refunds = [(ln["adjustment_of"], ln["quantity"], ln["status"]) for ln in lines
               if ln["status"] == "refunded"]
    assert refunds == [(None, "-3000", "refunded"), (None, "-1001", "refunded"),
                       ("2026-10", "-1000", "refunded"), ("2026-10", "-334", "refunded")]
    november = bill(engine, "2026-11")
    assert D(november["total"]) == -D(before["exact_total"])  # November's call nets to 0
    assert SUM_CONTEXT.add(D(before["exact_total"]), D(november["total"])) == ledger_total(
        engine, ["2026-10", "2026-11"]) == 0

    # Rollups keep refund lines apart, and a rebuild finds the same rows.
    with engine.connect() as conn:
        flags = sorted({r["refund"] for r in rollups.all_rows(conn, usage_daily_meters, "acme")})
        incremental = rollups.all_rows(conn, usage_daily_meters, "acme")
    assert flags == [False, True]
    with engine.begin() as conn:
        rollups.rebuild(conn, "acme")
    with engine.connect() as conn:
        assert rollups.all_rows(conn, usage_daily_meters, "acme") == incremental


def test_what_cannot_be_refunded(engine: Engine, metering: Metering) -> None:
    (request_id,) = ingest(metering, event("o", "2026-10-03T01:00:00Z"))
    (unpriced,) = ingest(metering, {"id": "u", "timestamp": "2026-10-03T01:00:00Z",
                                    "model": "test/unknown", "usage": {"input_tokens": 5}})
    refund = refund_service.refund(engine, request_id, actor=ACTOR).refund.request_id
    with pytest.raises(InvalidInput) as bad:
        refund_service.refund(engine, refund, actor=ACTOR)
    assert bad.value.field == "request_id" and "itself a refund" in bad.value.message
    with pytest.raises(Conflict) as conflict:
        refund_service.refund(engine, unpriced, actor=ACTOR)
    assert "rerate" in conflict.value.message
    with pytest.raises(NotFound):
        refund_service.refund(engine, "req_nothing", actor=ACTOR)
    with pytest.raises(InvalidInput) as bad:
        refund_service.refund(engine, "", actor=ACTOR)
    assert bad.value.field == "request_id"


def test_void_writes_a_cycle_off(engine: Engine, metering: Metering) -> None:
    ingest(metering, event("o", "2026-10-03T01:00:00Z"), event("s", "2026-09-03T01:00:00Z"))
    bill_service.set_status(engine, "acme", "2026-09", "issued", actor=ACTOR)
    void = bill_service.set_status(engine, "acme", "2026-10", "void", actor=ACTOR).to_json()
    assert void["status"] == "void" and void["voided_at"] is not None
    assert D(void["total"]) == ledger_total(engine, ["2026-10"])  # unrounded: never issued
    ingest(metering, event("late-oct", "2026-10-09T01:00:00Z"),
           event("late-sep", "2026-09-09T01:00:00Z", tokens=6))
    november = bill(engine, "2026-11")  # September's late usage, not October's
    assert {ln["adjustment_of"] for ln in november["lines"]} == {"2026-09"}
    assert [ln["quantity"] for ln in november["lines"]] == ["6", "3"]
    issued = bill_service.set_status(engine, "acme", "2026-11", "issued", actor=ACTOR).to_json()
    voided = bill_service.set_status(engine, "acme", "2026-11", "void", actor=ACTOR).to_json()
    assert voided["status"] == "void" and voided["lines"] == issued["lines"]
    assert voided["issued_at"] == issued["issued_at"]
    assert bill(engine, "2026-12")["lines"] == []  # voided adjustments are not carried again
    with pytest.raises(InvalidTransition) as refused:
        bill_service.set_status(engine, "acme", "2026-11", "paid", actor=ACTOR)
    assert refused.value.field == "status" and refused.value.allowed == []


def test_user_bills_add_up_to_the_tenant_bill(engine: Engine, metering: Metering) -> None:
    ingest(metering, *(event(f"e{i}", f"2026-10-{i + 1:02d}T01:00:00Z", ("ann", "bo", "cy")[i % 3],
                             1000 + 7 * i) for i in range(9)))
    tenant = bill(engine, "2026-10")
    users = [bill(engine, "2026-10", user) for user in ("ann", "bo", "cy")]
    assert all(u["user"] for u in users)
    per_user = D(0)
    for found in users:
        assert D(found["total"]) == ledger_total(engine, ["2026-10"], found["user"])
        per_user = SUM_CONTEXT.add(per_user, D(found["total"]))
    assert per_user == D(tenant["total"]) == ledger_total(engine, ["2026-10"])
    # A user's bill is its own: issuing it leaves the tenant's open.
    assert bill_service.set_status(engine, "acme", "2026-10", "issued", "ann",
                                   actor=ACTOR).bill.user == "ann"
    assert bill(engine, "2026-10")["status"] == "open"
    with pytest.raises(UnknownUser):
        bill(engine, "2026-10", "nobody")


def test_a_ledger_that_lost_billed_usage_is_a_conflict_not_a_credit(
        engine: Engine, metering: Metering) -> None:
    ingest(metering, event("o", "2026-10-03T01:00:00Z"))
    bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ACTOR)
    with engine.begin() as conn:
        conn.execute(delete(usage_daily_meters))
    with pytest.raises(Conflict) as lost:
        bill(engine, "2026-11")
    assert "2026-10" in lost.value.message


def test_a_snapshot_is_stored_once(engine: Engine, metering: Metering) -> None:
    ingest(metering, event("o", "2026-10-03T01:00:00Z"))
    bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ACTOR)
    with engine.connect() as conn:
        stored = store.get(conn, "acme", None, "2026-10")
    assert stored is not None and stored.pers == (1, 1)
    with engine.begin() as conn, pytest.raises(Conflict):
        store.insert_snapshot(conn, stored.bill, stored.pers, datetime.now(UTC))
    with pytest.raises(InvalidTransition):
        bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ACTOR)
    listed = bill_service.list_bills(engine, "acme", "issued")
    assert [(b.cycle, b.status, b.lines) for b in listed] == [("2026-10", "issued", 2)]
    assert bill_service.list_bills(engine, status="paid") == []
