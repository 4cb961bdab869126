"""The audit log (meterline.store.audit, meterline.services.audit) on SQLite and PostgreSQL:
entries written in the transaction of their change, read newest first with filters and pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from meterline.errors import InvalidInput, InvalidTransition, UnknownTenant
from meterline.services import audit as audit_service
from meterline.services import bills as bill_service
from meterline.store import accounts
from meterline.store.audit import Actor, Change, list_entries, record, record_all, record_done

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALICE = Actor("alice", "req_1")


@pytest.fixture
def logged(engine: Engine) -> Engine:
    """Six entries an hour apart, the first at T0: ids 1 to 6."""
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
        accounts.create_tenant(conn, "beta", "USD", "UTC")
        for hour, (who, action, tenant) in enumerate([
                (ALICE, "tenant.create", "acme"), (ALICE, "bill.issue", "acme"),
                (Actor("cli"), "bill.pay", "acme"), (Actor("session:bob"), "bill.void", "beta"),
                (Actor("cli"), "billing.other", None), (ALICE, "key.create", "beta")]):
            record_all(conn, who, [Change(action, f"t{hour}", tenant, {"n": hour})],
                       at=T0 + timedelta(hours=hour))
    return engine


def actions(engine: Engine, **filters: object) -> list[str]:
    with engine.connect() as conn:
        return [e.action for e in list_entries(conn, **filters)]  # type: ignore[arg-type]


def test_an_entry_keeps_who_what_and_where(engine: Engine) -> None:
    with engine.begin() as conn:
        record(conn, ALICE, "key.create", target="key_1", tenant="acme",
               details={"user": "ann", "models": ["a/b"], "rpm": None})
        record(conn, Actor("cli"), "fx.set", target="USD/CNY", details={"rate": "7.1"})
    with engine.connect() as conn:
        newest, oldest = list_entries(conn)
    assert newest.id > oldest.id
    assert (newest.actor, newest.action, newest.tenant, newest.target, newest.request_id) == (
        "cli", "fx.set", None, "USD/CNY", None)
    assert oldest.to_json() == {
        "id": oldest.id, "at": oldest.at.isoformat(), "actor": "alice", "action": "key.create",
        "tenant": "acme", "target": "key_1",
        "details": {"user": "ann", "models": ["a/b"], "rpm": None}, "request_id": "req_1"}
    assert oldest.at.tzinfo is not None
    assert abs(oldest.at - datetime.now(UTC)) < timedelta(minutes=1)


def test_nothing_is_recorded_without_an_actor_or_after_a_rollback(engine: Engine) -> None:
    with engine.begin() as conn:
        record(conn, None, "fx.set")  # meterline's own work (the demo's seed)
        record_all(conn, ALICE, [])
    record_done(engine, None, "usage.rerate")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record(conn, ALICE, "tenant.create", target="gone")
        raise RuntimeError("the change failed")
    # A refused change writes no entry: its transaction rolled back with it.
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme", "USD", "UTC")
    bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ALICE)
    with pytest.raises(InvalidTransition):
        bill_service.set_status(engine, "acme", "2026-10", "issued", actor=ALICE)
    assert actions(engine) == ["bill.issue"]
    record_done(engine, ALICE, "usage.rerate", details={"priced": 0})
    assert actions(engine) == ["usage.rerate", "bill.issue"]


def test_filters(logged: Engine) -> None:
    assert actions(logged) == ["key.create", "billing.other", "bill.void", "bill.pay",
                               "bill.issue", "tenant.create"]
    # a family of actions, never a mere prefix of a word
    for family in ("bill", "bill."):
        assert actions(logged, action=family) == ["bill.void", "bill.pay", "bill.issue"]
    assert actions(logged, action="bill.pay") == ["bill.pay"]
    assert actions(logged, action="bil") == []
    assert actions(logged, action="billing") == ["billing.other"]
    assert actions(logged, action="k_y") == []  # LIKE's wildcards are plain characters
    assert actions(logged, actor="cli") == ["billing.other", "bill.pay"]
    assert actions(logged, actor="session:bob") == ["bill.void"]
    assert actions(logged, tenant="beta") == ["key.create", "bill.void"]
    # since included, until excluded
    assert actions(logged, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4)) == [
        "bill.void", "bill.pay"]
    assert actions(logged, tenant="acme", actor="alice", action="bill") == ["bill.issue"]


def test_pages_newest_first(logged: Engine) -> None:
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = audit_service.entries(logged, limit=4, before=before)
        seen += [e.action for e in page.entries]
        pages += 1
        before = page.next_before
        if before is None:
            break
        assert before == page.entries[-1].id
    assert pages == 2
    assert seen == actions(logged)
    exact = audit_service.entries(logged, limit=6)
    assert len(exact.entries) == 6 and exact.next_before is None
    filtered = audit_service.entries(logged, action="bill", limit=2)
    assert [e.action for e in filtered.entries] == ["bill.void", "bill.pay"]
    rest = audit_service.entries(logged, action="bill", limit=2,
                                 before=filtered.next_before)
    assert [e.action for e in rest.entries] == ["bill.issue"]
    assert rest.next_before is None


def test_filters_as_typed(logged: Engine) -> None:
    found = audit_service.entries(logged, since="2026-12-01T11:00:00Z",
                                  until="2026-12-01T13:00:00+00:00", tenant="beta")
    assert [e.action for e in found.entries] == ["bill.void"]
    assert audit_service.entries(logged, since="", until="").entries  # empty: no filter
    for bad, field in (({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until"),
                       ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
                       ({"action": "Bill.Issue"}, "action"), ({"action": "bill..issue"},
                                                              "action"),
                       ({"action": "bill;drop"}, "action"), ({"actor": ""}, "actor"),
                       ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                       ({"before": 0}, "before")):
        with pytest.raises(InvalidInput) as refused:
            audit_service.entries(logged, **bad)  # type: ignore[arg-type]
        assert refused.value.field == field, bad
    with pytest.raises(UnknownTenant):
        audit_service.entries(logged, tenant="nobody")
