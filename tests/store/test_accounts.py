"""meterline.store.accounts: tenants, users, API keys (shown once, stored hashed), admin tokens."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select

from meterline.errors import AuthError, Conflict, InvalidInput, NotFound, UnknownTenant
from meterline.store import accounts
from meterline.store.schema import admin_tokens, api_keys


def _tenant(engine: Engine, name: str = "acme", **kwargs: str) -> accounts.Tenant:
    with engine.begin() as conn:
        return accounts.create_tenant(conn, name, **kwargs)


def _key(engine: Engine, tenant: str = "acme", **kwargs: object) -> tuple[str, accounts.ApiKey]:
    with engine.begin() as conn:
        return accounts.create_key(conn, tenant, **kwargs)  # type: ignore[arg-type]


# --- tenants -----------------------------------------------------------------------------------

def test_create_and_list_tenants(engine: Engine) -> None:
    before = datetime.now(UTC)
    made = _tenant(engine, "zeta-corp", currency="cny", timezone="Asia/Shanghai")
    _tenant(engine, "acme")
    assert (made.id, made.currency, made.timezone) == ("zeta-corp", "CNY", "Asia/Shanghai")
    with engine.connect() as conn:
        listed = accounts.list_tenants(conn)
        got = accounts.get_tenant(conn, "zeta-corp")
    assert [(t.id, t.currency, t.timezone) for t in listed] == [
        ("acme", "USD", "UTC"), ("zeta-corp", "CNY", "Asia/Shanghai")]
    assert got.created_at.tzinfo is UTC
    assert before - timedelta(seconds=1) <= got.created_at <= datetime.now(UTC)
    assert got.to_json()["currency"] == "CNY"


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "ünïcode✓", "semi;colon"])
def test_bad_tenant_name_is_refused_naming_the_field(engine: Engine, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _tenant(engine, name)
    assert caught.value.field == "name"
    assert "name" in caught.value.message
    with engine.connect() as conn:
        assert accounts.list_tenants(conn) == []


def test_longest_allowed_name_and_punctuation_are_accepted(engine: Engine) -> None:
    _tenant(engine, "a" * 64)
    _tenant(engine, "Team_1.prod-eu")
    with engine.connect() as conn:
        assert [t.id for t in accounts.list_tenants(conn)] == ["Team_1.prod-eu", "a" * 64]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"currency": "XYZ"}, "currency"),
    ({"currency": ""}, "currency"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": ""}, "timezone"),
])
def test_unknown_currency_or_timezone_is_refused_naming_the_field(
        engine: Engine, kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _tenant(engine, "acme", **kwargs)
    assert caught.value.field == field
    assert field in caught.value.message
    with engine.connect() as conn:
        assert accounts.list_tenants(conn) == []


def test_duplicate_tenant_is_a_conflict_and_the_transaction_survives(engine: Engine) -> None:
    _tenant(engine, "acme", currency="USD")
    with engine.begin() as conn:
        with pytest.raises(Conflict, match="acme"):
            accounts.create_tenant(conn, "acme", currency="CNY")
        # the failed insert was rolled back to its savepoint only
        accounts.create_tenant(conn, "beta")
    with engine.connect() as conn:
        assert [(t.id, t.currency) for t in accounts.list_tenants(conn)] == [
            ("acme", "USD"), ("beta", "USD")]


def test_unknown_tenant(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(UnknownTenant):
        accounts.get_tenant(conn, "nobody")
    with engine.connect() as conn, pytest.raises(UnknownTenant):
        accounts.list_users(conn, "nobody")


def test_ensure_users_is_idempotent(engine: Engine) -> None:
    _tenant(engine)
    with engine.begin() as conn:
        accounts.ensure_users(conn, "acme", {"alice", "10023"})
        accounts.ensure_users(conn, "acme", {"alice", "bob"})
        accounts.ensure_users(conn, "acme", set())
    with engine.connect() as conn:
        assert accounts.list_users(conn, "acme") == ["10023", "alice", "bob"]


# --- keys --------------------------------------------------------------------------------------

def test_key_secret_is_shown_once_and_only_its_hash_is_stored(engine: Engine) -> None:
    _tenant(engine)
    secret, key = _key(engine, user_id="alice", models=["openai/gpt-4o-mini"], name="ci")
    assert secret.startswith(accounts.KEY_PREFIX)
    assert len(secret) >= 40
    assert key.prefix == secret[:10]
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key.id)).one()
        all_rows = conn.execute(select(api_keys)).all()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert len(all_rows) == 1
    stored = " ".join(str(value) for value in row)
    assert secret not in stored
    assert secret[10:] not in stored  # not even the part after the shown prefix
    assert row.tenant_id == "acme" and row.user_id == "alice" and row.name == "ci"
    assert row.models == ["openai/gpt-4o-mini"]
    # nothing returned to the caller after creation carries the secret
    assert secret not in str(key.to_json())
    with engine.connect() as conn:
        assert secret not in str([k.to_json() for k in accounts.list_keys(conn)])
        assert accounts.list_users(conn, "acme") == ["alice"]


def test_two_keys_have_different_secrets(engine: Engine) -> None:
    _tenant(engine)
    first, k1 = _key(engine)
    second, k2 = _key(engine)
    assert first != second and k1.id != k2.id


def test_authenticate_key(engine: Engine) -> None:
    _tenant(engine)
    secret, key = _key(engine, user_id="bob", models=["deepseek/deepseek-chat"])
    with engine.connect() as conn:
        found = accounts.authenticate_key(conn, secret)
    assert found == key
    assert (found.tenant_id, found.user_id, found.models) == ("acme", "bob",
                                                              ["deepseek/deepseek-chat"])


def test_unknown_key_is_refused(engine: Engine) -> None:
    _tenant(engine)
    secret, _ = _key(engine)
    with engine.connect() as conn:
        for wrong in (secret + "x", secret[:-1], "", "ml-nothing", secret.upper()):
            with pytest.raises(AuthError, match="invalid API key"):
                accounts.authenticate_key(conn, wrong)


def test_revoked_key_is_refused(engine: Engine) -> None:
    _tenant(engine)
    secret, key = _key(engine)
    other_secret, other = _key(engine)
    with engine.begin() as conn:
        revoked = accounts.revoke_key(conn, key.id)
    assert revoked.revoked_at is not None and revoked.revoked_at.tzinfo is UTC
    with engine.begin() as conn:
        again = accounts.revoke_key(conn, key.id)
    assert again.revoked_at == revoked.revoked_at  # revoking twice keeps the first time
    with engine.connect() as conn:
        with pytest.raises(AuthError, match="revoked"):
            accounts.authenticate_key(conn, secret)
        assert accounts.authenticate_key(conn, other_secret).id == other.id


def test_revoking_an_unknown_key_is_not_found(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(NotFound):
        accounts.revoke_key(conn, "key_missing")


def test_expired_key_is_refused(engine: Engine) -> None:
    _tenant(engine)
    now = datetime.now(UTC)
    expired, _ = _key(engine, expires_at=now - timedelta(seconds=1))
    valid, valid_key = _key(engine, expires_at=now + timedelta(hours=1))
    with engine.connect() as conn:
        with pytest.raises(AuthError, match="expired"):
            accounts.authenticate_key(conn, expired)
        found = accounts.authenticate_key(conn, valid)
    assert found.id == valid_key.id
    assert found.expires_at == valid_key.expires_at
    assert found.expires_at is not None and found.expires_at.tzinfo is UTC


def test_expiry_with_an_offset_is_kept_as_the_same_instant(engine: Engine) -> None:
    _tenant(engine)
    shanghai = timezone(timedelta(hours=8))
    at = (datetime.now(UTC) + timedelta(days=1)).astimezone(shanghai)
    _, key = _key(engine, expires_at=at)
    with engine.connect() as conn:
        [stored] = accounts.list_keys(conn, "acme")
    assert stored.expires_at == at
    assert stored.id == key.id


def test_naive_expiry_is_refused(engine: Engine) -> None:
    _tenant(engine)
    with pytest.raises(InvalidInput) as caught:
        _key(engine, expires_at=datetime(2030, 1, 1))
    assert caught.value.field == "expires_at"
    with engine.connect() as conn:
        assert accounts.list_keys(conn) == []


def test_key_for_unknown_tenant(engine: Engine) -> None:
    with pytest.raises(UnknownTenant):
        _key(engine, "nobody")
    with engine.connect() as conn:
        assert accounts.list_keys(conn) == []
        with pytest.raises(UnknownTenant):
            accounts.list_keys(conn, "nobody")


def test_list_keys_by_tenant(engine: Engine) -> None:
    _tenant(engine, "acme")
    _tenant(engine, "beta")
    _, a1 = _key(engine, "acme")
    _, b1 = _key(engine, "beta")
    _, a2 = _key(engine, "acme")
    with engine.connect() as conn:
        assert {k.id for k in accounts.list_keys(conn, "acme")} == {a1.id, a2.id}
        assert [k.id for k in accounts.list_keys(conn, "beta")] == [b1.id]
        assert {k.id for k in accounts.list_keys(conn)} == {a1.id, a2.id, b1.id}


# --- admin tokens ------------------------------------------------------------------------------

def test_admin_tokens_are_stored_hashed_and_idempotently(engine: Engine) -> None:
    token = "mla-super-secret-token"
    with engine.begin() as conn:
        assert accounts.active_admin_token_count(conn) == 0
        first = accounts.add_admin_token(conn, token)
        assert accounts.add_admin_token(conn, token) == first
    with engine.begin() as conn:
        assert accounts.active_admin_token_count(conn) == 1
        assert accounts.authenticate_admin(conn, token).id == first.id
        for wrong in (token + "x", ""):
            with pytest.raises(AuthError, match="invalid admin token"):
                accounts.authenticate_admin(conn, wrong)
        rows = conn.execute(select(admin_tokens)).all()
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in " ".join(str(v) for r in rows for v in r)


def test_a_revoked_admin_token_stays_revoked_when_stored_again(engine: Engine) -> None:
    with engine.begin() as conn:
        stored = accounts.add_admin_token(conn, "mla-token")
        accounts.revoke_admin_token(conn, str(stored.id))
        assert accounts.add_admin_token(conn, "mla-token").revoked_at is not None
        assert accounts.active_admin_token_count(conn) == 0
        with pytest.raises(AuthError, match="revoked"):
            accounts.authenticate_admin(conn, "mla-token")
