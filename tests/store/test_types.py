"""meterline.store.types: exact money and aware UTC times, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.exc import StatementError

from meterline.store.schema import charge_lines, fx_rates, usage_records
from meterline.store.types import Json, Money, UtcDateTime, money_sum

D = Decimal

probe_metadata = MetaData()
probe = Table(
    "money_probe", probe_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("grp", String(8), nullable=False, default="a"),
    Column("amount", Money, nullable=True),
    Column("at", UtcDateTime, nullable=True),
    Column("doc", Json, nullable=True),
)

EXACT_VALUES = [
    D("0.000000075"),
    D("123456789012.123456789012345678"),
    D("-0.5"),
    D("0"),
    D("0.000000000000000001"),
    D("99999999999999999999.999999999999999999"),
    D("1E-30"),
]


@pytest.fixture
def probe_engine(bare_engine: Engine) -> Engine:
    probe_metadata.create_all(bare_engine)
    return bare_engine


def _insert(engine: Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as conn:
        conn.execute(probe.insert(), rows)


# --- Money -------------------------------------------------------------------------------------

def test_money_round_trips_exactly(probe_engine: Engine) -> None:
    _insert(probe_engine, [{"id": i, "amount": v} for i, v in enumerate(EXACT_VALUES)])
    with probe_engine.connect() as conn:
        got = [r.amount for r in conn.execute(select(probe.c.amount).order_by(probe.c.id))]
    assert all(type(v) is Decimal for v in got)
    assert got == EXACT_VALUES
    # exact digit for digit, not just numerically close
    assert got[1].as_tuple().digits == D("123456789012.123456789012345678").as_tuple().digits


def test_money_accepts_int_and_keeps_null(probe_engine: Engine) -> None:
    _insert(probe_engine, [{"id": 1, "amount": 42}, {"id": 2, "amount": None}])
    with probe_engine.connect() as conn:
        got = [r.amount for r in conn.execute(select(probe.c.amount).order_by(probe.c.id))]
    assert got == [D(42), None]
    assert type(got[0]) is Decimal


def test_money_refuses_float(probe_engine: Engine) -> None:
    with pytest.raises(StatementError) as caught, probe_engine.begin() as conn:
        conn.execute(probe.insert(), [{"id": 1, "amount": 0.1}])
    assert isinstance(caught.value.orig, TypeError)
    with probe_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(probe)).scalar_one() == 0


def test_money_is_stored_as_text_on_sqlite_and_numeric_on_postgresql(
        probe_engine: Engine) -> None:
    _insert(probe_engine, [{"id": i, "amount": v} for i, v in enumerate(EXACT_VALUES)])
    if probe_engine.dialect.name == "postgresql":
        with probe_engine.connect() as conn:
            kinds = conn.execute(text(
                "SELECT pg_typeof(amount)::text FROM money_probe ORDER BY id")).scalars().all()
        assert kinds == ["numeric"] * len(EXACT_VALUES)
        return
    with probe_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT typeof(amount) AS kind, amount AS raw FROM money_probe ORDER BY id")).all()
    assert [r.kind for r in rows] == ["text"] * len(EXACT_VALUES)
    # plain notation, no exponent, no float artefacts
    assert [r.raw for r in rows] == [
        "0.000000075",
        "123456789012.123456789012345678",
        "-0.5",
        "0",
        "0.000000000000000001",
        "99999999999999999999.999999999999999999",
        "0." + "0" * 29 + "1",
    ]


def test_migrated_money_columns_are_text_on_sqlite_and_numeric_on_postgresql(
        engine: Engine) -> None:
    """The columns the migration really created, not just the type in Python."""
    with engine.begin() as conn:
        conn.execute(fx_rates.insert().values(
            base="USD", quote="CNY", rate=D("7.123456789012345678901"),
            effective_from=datetime(2026, 1, 1, tzinfo=UTC),
            created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        if engine.dialect.name == "sqlite":
            kind, raw = conn.execute(text("SELECT typeof(rate), rate FROM fx_rates")).one()
            assert (kind, raw) == ("text", "7.123456789012345678901")
        else:
            kind = conn.execute(text("SELECT pg_typeof(rate)::text FROM fx_rates")).scalar_one()
            assert kind == "numeric"
            columns = conn.execute(text(
                "SELECT table_name || '.' || column_name, data_type "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name IN "
                "('usage_records', 'charge_lines') AND column_name IN "
                "('cost', 'billed_cost', 'fx_rate', 'seconds', 'quantity', 'unit_price', 'amount')"
            )).all()
            assert sorted(columns) == [
                ("charge_lines.amount", "numeric"), ("charge_lines.quantity", "numeric"),
                ("charge_lines.unit_price", "numeric"), ("usage_records.billed_cost", "numeric"),
                ("usage_records.cost", "numeric"), ("usage_records.fx_rate", "numeric"),
                ("usage_records.seconds", "numeric"),
            ]
        assert conn.execute(select(fx_rates.c.rate)).scalar_one() == D("7.123456789012345678901")
    assert isinstance(usage_records.c.cost.type, Money)
    assert isinstance(charge_lines.c.amount.type, Money)


# --- money_sum ---------------------------------------------------------------------------------

def test_money_sum_of_ten_tenths_is_exactly_one(probe_engine: Engine) -> None:
    _insert(probe_engine, [{"id": i, "amount": D("0.1")} for i in range(10)])
    with probe_engine.connect() as conn:
        total = conn.execute(select(money_sum(probe.c.amount))).scalar_one()
    assert type(total) is Decimal
    assert total == D("1")


def test_money_sum_keeps_1e18_digits_beside_large_values(probe_engine: Engine) -> None:
    values = [D("1000000000000"), D("0.000000000000000001"), D("0.000000000000000002"),
              D("0.000000000000000003"), D("-0.000000000000000001")]
    _insert(probe_engine, [{"id": i, "amount": v} for i, v in enumerate(values)])
    with probe_engine.connect() as conn:
        total = conn.execute(select(money_sum(probe.c.amount))).scalar_one()
    assert total == D("1000000000000.000000000000000005")


def test_money_sum_groups_skips_nulls_and_is_null_for_no_rows(probe_engine: Engine) -> None:
    _insert(probe_engine, [
        {"id": 1, "grp": "a", "amount": D("0.000000075")},
        {"id": 2, "grp": "a", "amount": D("0.000000025")},
        {"id": 3, "grp": "a", "amount": None},
        {"id": 4, "grp": "b", "amount": D("-0.5")},
        {"id": 5, "grp": "b", "amount": D("0.25")},
    ])
    with probe_engine.connect() as conn:
        grouped = conn.execute(select(probe.c.grp, money_sum(probe.c.amount))
                               .group_by(probe.c.grp).order_by(probe.c.grp)).all()
        empty = conn.execute(select(money_sum(probe.c.amount))
                             .where(probe.c.grp == "none")).scalar_one()
    assert [(g, v) for g, v in grouped] == [("a", D("0.0000001")), ("b", D("-0.25"))]
    assert empty is None


# --- UtcDateTime -------------------------------------------------------------------------------

def test_utc_datetime_returns_aware_utc(probe_engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    given = datetime(2026, 3, 1, 7, 30, 15, 123456, tzinfo=shanghai)
    _insert(probe_engine, [{"id": 1, "at": given},
                           {"id": 2, "at": datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)}])
    with probe_engine.connect() as conn:
        got = [r.at for r in conn.execute(select(probe.c.at).order_by(probe.c.id))]
    assert got[0] == given
    assert got[0].tzinfo is UTC
    assert (got[0].year, got[0].month, got[0].day, got[0].hour) == (2026, 2, 28, 23)
    assert got[0].microsecond == 123456
    assert got[1] == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert got[1].tzinfo is UTC


def test_utc_datetime_compares_instants_across_offsets(probe_engine: Engine) -> None:
    tokyo = timezone(timedelta(hours=9))
    _insert(probe_engine, [{"id": 1, "at": datetime(2026, 1, 1, 8, 0, tzinfo=tokyo)},   # 23:00 UTC
                           {"id": 2, "at": datetime(2026, 1, 1, 0, 30, tzinfo=UTC)}])
    with probe_engine.connect() as conn:
        later = conn.execute(select(probe.c.id).where(
            probe.c.at >= datetime(2026, 1, 1, tzinfo=UTC))).scalars().all()
    assert later == [2]


def test_utc_datetime_refuses_naive(probe_engine: Engine) -> None:
    with pytest.raises(StatementError) as caught, probe_engine.begin() as conn:
        conn.execute(probe.insert(), [{"id": 1, "at": datetime(2026, 1, 1, 12, 0)}])
    assert isinstance(caught.value.orig, ValueError)
    assert "naive" in str(caught.value.orig)
    with probe_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(probe)).scalar_one() == 0


# --- Json --------------------------------------------------------------------------------------

def test_json_round_trips_and_keeps_money_strings(probe_engine: Engine) -> None:
    doc = {"purpose": "chat", "cost": "0.000000075", "n": 3, "tags": ["a", "b"], "none": None}
    _insert(probe_engine, [{"id": 1, "doc": doc}, {"id": 2, "doc": None}])
    with probe_engine.connect() as conn:
        got = [r.doc for r in conn.execute(select(probe.c.doc).order_by(probe.c.id))]
    assert got == [doc, None]
