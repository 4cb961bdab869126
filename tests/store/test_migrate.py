"""meterline.store.migrate: Alembic upgrade and the schema check that trusts the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text

from meterline.errors import StoreError
from meterline.store.engine import make_engine
from meterline.store.migrate import (
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from meterline.store.schema import metadata, tenants

ALL_TABLES = [t.name for t in metadata.sorted_tables]


def test_upgrade_creates_every_table_and_column(engine: Engine) -> None:
    report = check_schema(engine)
    assert report.ok
    assert report.revision == head_revision() == current_revision(engine)
    assert report.missing_tables == []
    assert report.missing_columns == []
    assert report.problems() == []
    with engine.connect() as conn:
        inspector = inspect(conn)
        present = set(inspector.get_table_names())
        assert set(ALL_TABLES) <= present
        assert set(ALL_TABLES) == {
            "tenants", "users", "api_keys", "admin_tokens", "providers", "models",
            "model_aliases", "price_versions", "fx_rates", "usage_records", "charge_lines",
            "budgets", "budget_periods", "budget_holds", "alerts", "plans", "tenant_plans",
            "quota_grants", "quota_entries", "quota_counters", "quota_holds", "rate_windows",
            "usage_daily", "usage_daily_meters", "usage_daily_models", "usage_daily_people",
            "bills", "bill_lines",
            "usage_records_archive", "charge_lines_archive", "archive_state",
            "idempotency_claims", "provider_bill_lines", "model_rules", "catalog_syncs",
            "sessions", "server_secrets", "calls_started", "audit_log", "sync_runs",
            "provider_balances", "upstream_responses", "batch_files", "batches",
        }
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(tenants.insert().values(id="acme", currency="USD", timezone="UTC",
                                             created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    upgrade(engine)
    upgrade(engine)
    assert check_schema(engine).ok
    with engine.connect() as conn:
        assert conn.execute(select(tenants.c.id)).scalars().all() == ["acme"]
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [head_revision()]


def test_empty_database_reports_no_revision_and_every_table_missing(bare_engine: Engine) -> None:
    report = check_schema(bare_engine)
    assert report.revision is None
    assert current_revision(bare_engine) is None
    assert report.head == head_revision()
    assert not report.ok
    assert report.missing_tables == ALL_TABLES
    assert report.missing_columns == []
    problems = report.problems()
    assert problems[:-1] == [f"missing table: {name}" for name in ALL_TABLES]
    assert problems[-1] == (f"migration revision is none, the code needs {head_revision()}: "
                            "run `meterline db upgrade`")


def test_dropped_table_is_caught_though_the_version_table_says_applied(engine: Engine) -> None:
    """The production failure: alembic_version at head, a table gone."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE charge_lines"))
    report = check_schema(engine)
    assert report.revision == head_revision()  # Alembic alone would call this fine
    assert not report.ok
    assert report.missing_tables == ["charge_lines"]
    assert report.missing_columns == []
    assert report.problems() == ["missing table: charge_lines"]


def test_dropped_column_is_caught_though_the_version_table_says_applied(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE usage_records DROP COLUMN fx_rate"))
    report = check_schema(engine)
    assert report.revision == head_revision()
    assert not report.ok
    assert report.missing_tables == []
    assert report.missing_columns == ["usage_records.fx_rate"]
    assert report.problems() == ["missing column: usage_records.fx_rate"]


def test_several_problems_are_all_named(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE charge_lines"))
        conn.execute(text("ALTER TABLE api_keys DROP COLUMN name"))
        conn.execute(text("ALTER TABLE tenants DROP COLUMN timezone"))
    report = check_schema(engine)
    assert report.missing_tables == ["charge_lines"]
    assert sorted(report.missing_columns) == ["api_keys.name", "tenants.timezone"]
    assert sorted(report.problems()) == ["missing column: api_keys.name",
                                         "missing column: tenants.timezone",
                                         "missing table: charge_lines"]


def test_revision_behind_head_is_a_problem(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    report = check_schema(engine)
    assert report.missing_tables == [] and report.missing_columns == []
    assert report.revision is None
    assert not report.ok
    assert report.problems() == [f"migration revision is none, the code needs {head_revision()}: "
                                 "run `meterline db upgrade`"]


@pytest.fixture
def unreachable(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine of the same backend that cannot connect."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'meterline.db'}"
    else:
        url = "postgresql://postgres@127.0.0.1:1/x"
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_unreachable_database_raises_store_error(unreachable: Engine) -> None:
    with pytest.raises(StoreError, match="database unreachable"):
        check_schema(unreachable)
    with pytest.raises(StoreError, match="database unreachable"):
        upgrade(unreachable)
    with pytest.raises(StoreError, match="database unreachable"):
        current_revision(unreachable)


def test_store_error_says_what_failed_and_hides_the_password(database_url: str,
                                                             tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        url, expected = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}", "unable to open database"
    else:
        url, expected = "postgresql://meterline:s3cret-pw@127.0.0.1:1/x", "Connection refused"
    engine = make_engine(url)
    try:
        with pytest.raises(StoreError) as caught:
            check_schema(engine)
    finally:
        engine.dispose()
    assert expected in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)
    assert not (tmp_path / "nowhere").exists()
