"""meterline.store.claims: one Idempotency-Key claim per tenant and key, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from meterline.store import accounts, claims, ledger
from meterline.store.schema import idempotency_claims
from tests.store.test_ledger import record

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=15)


def claim(engine: Engine, request_id: str, *, key: str = "k1", now: datetime = T0) -> str | None:
    with engine.begin() as conn:
        return claims.claim(conn, "acme", key, request_id, now, now + timedelta(minutes=15))


def holders(engine: Engine) -> list[tuple[str, str, str]]:
    c = idempotency_claims.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(c.tenant_id, c.key, c.request_id).order_by(c.tenant_id, c.key))]


def test_the_first_claim_of_a_key_wins_until_it_expires(engine: Engine) -> None:
    assert claim(engine, "req_a") is None
    assert claim(engine, "req_b") == "req_a"
    assert claim(engine, "req_c", key="k2") is None  # another key
    with engine.begin() as conn:
        assert claims.claim(conn, "other", "k1", "req_d", T0, LATER) is None  # another tenant
    # A claim past its expiry (its process died) is taken over.
    assert claim(engine, "req_e", now=LATER + timedelta(seconds=1)) is None
    assert claim(engine, "req_f", now=LATER + timedelta(seconds=2)) == "req_e"
    assert holders(engine) == [("acme", "k1", "req_e"), ("acme", "k2", "req_c"),
                               ("other", "k1", "req_d")]


def test_a_released_key_is_free_and_only_its_holder_releases_it(engine: Engine) -> None:
    assert claim(engine, "req_a") is None
    with engine.begin() as conn:
        claims.release(conn, "acme", "k1", "req_other")
    assert claim(engine, "req_b") == "req_a"
    with engine.begin() as conn:
        claims.release(conn, "acme", "k1", "req_a")
    assert claim(engine, "req_b") is None


def test_a_key_in_the_ledger_is_held_by_its_record(engine: Engine) -> None:
    with engine.begin() as conn:
        accounts.create_tenant(conn, "acme")
        ledger.write_records(conn, [record("k1", request_id="req_recorded")])
    assert claim(engine, "req_a") == "req_recorded"
    assert holders(engine) == []


def test_expired_claims_are_deleted(engine: Engine) -> None:
    assert claim(engine, "req_a") is None
    assert claim(engine, "req_b", key="k2", now=LATER) is None
    with engine.begin() as conn:
        claims.delete_expired(conn, LATER + timedelta(seconds=1))
    assert holders(engine) == [("acme", "k2", "req_b")]
