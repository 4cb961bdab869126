"""Upgrades from every earlier migration head (issue 12): a database built at revision R, holding
data valid at R, upgraded to the current head keeps every record, bill and total identical.

The revisions come from Alembic's script directory, so a new migration is covered without
touching this file. For each earlier revision R, on SQLite and PostgreSQL:

1. a fresh database is migrated to R and filled with the fixture below, each row cut down to
   the tables and columns R has (a row marked ``NEEDS`` only where R has the columns it needs;
   records archived at head are hot before the archive existed);
2. it is upgraded to head;
3. every row inserted reads back with the fixture's values, columns added after R holding what
   their migration gives old rows (the fixture is written so that those are its values: layer
   of an origin, name ``admin``, zero one-hour cache writes);
4. the product's own totals — statistics, open and stored bills, budgets — equal the totals
   computed here from the fixture's records, after the rollups are rebuilt where R predates
   them (the documented step of that upgrade, docs/stats.md).

The fixture's base rows are written out below. The rollups and the stored bill snapshots
derived from them are made once by the product itself on a scratch database at head (so that
they are exactly what the product would have stored), then inserted like the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, MetaData, Table, delete, inspect, select

from meterline.services import bills as bill_service
from meterline.services import budgets as budget_service
from meterline.services import stats as stat_service
from meterline.store import rollups
from meterline.store.engine import make_engine
from meterline.store.migrate import alembic_config, check_schema, head_revision, upgrade
from meterline.store.schema import metadata
from tests.conftest import fresh_database

D = Decimal
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
#: Tables a migration fills itself: their fixture rows replace the migration's.
PRESEEDED = {"archive_state"}
#: A row's optional ``NEEDS``: the columns of its table it only makes sense with.
NEEDS = "_needs"
#: Tables whose fixture rows are derived on the scratch database.
DERIVED = ("usage_daily", "usage_daily_models", "usage_daily_people", "usage_daily_meters",
           "bills", "bill_lines")
#: Where archived records and lines live at head, and where they were before the archive.
ARCHIVE = {"usage_records_archive": "usage_records", "charge_lines_archive": "charge_lines"}


def earlier_revisions() -> list[str]:
    """Every revision but the head, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    found = [r.revision for r in script.walk_revisions()]
    return [r for r in reversed(found) if r != head_revision()]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- the fixture ----------------------------------------------------------------------------------

T0 = at("2026-08-01T09:00:00+00:00")


def record(request_id: str, tenant: str, when: str, model: str, *, user: str | None,
           key: str | None, lines: list[tuple[str, int, str, str]] | None,
           currency: str | None, billed_currency: str | None = None, fx_rate: str | None = None,
           status: str = "success", **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A usage record and its charge lines: (meter, quantity, unit price per 1M, amount)."""
    charge = [{"request_id": request_id, "line_no": i, "meter": meter, "quantity": D(quantity),
               "unit": "1M tokens", "unit_price": D(price), "per": 1_000_000,
               "amount": D(amount)}
              for i, (meter, quantity, price, amount) in enumerate(lines or [])]
    cost = sum((line["amount"] for line in charge), D(0)) if lines is not None else None
    billed_currency = billed_currency or currency
    billed = None
    if cost is not None:
        billed = cost if billed_currency == currency else cost * D(fx_rate or "0")
    usage = {meter: quantity for meter, quantity, _, _ in lines or []}
    row = {
        "request_id": request_id, "tenant_id": tenant, "event_id": f"ev-{request_id}",
        "user_id": user, "key_id": key, "provider": model.split("/")[0], "model": model,
        "endpoint": "chat/completions", "source": "gateway", "status": status,
        "pricing": "priced" if cost is not None else "unpriced", "occurred_at": at(when),
        "recorded_at": at(when), "input_tokens": usage.get("input_tokens", 0),
        "cached_input_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
        "output_tokens": usage.get("output_tokens", 0), "reasoning_tokens": 0,
        "characters": 0, "images": 0, "seconds": D(0), "requests": 1,
        "attributes": {"temperature": "0.2"}, "cost": cost, "currency": currency,
        "price_version_id": f"{model}@2026-01-01T00:00:00+00:00" if cost is not None else None,
        "billed_cost": billed, "billed_currency": billed_currency if cost is not None else None,
        "fx_rate": D(fx_rate) if fx_rate else None, "fx_missing": False, "estimated": False,
        "upstream_cost": None, "cost_mismatch": False, "http_status": 200, "error": None,
        "warning": None, "latency_ms": 420, "ttft_ms": 120, "tags": ["upgrade"],
        "metadata": {"purpose": "fixture"},
    }
    return row | extra, charge


RECORDS = [
    # acme (USD, UTC): September (archived at head), October (billed), November (open)
    record("req-a1", "acme", "2026-09-15T10:00:00+00:00", "openai/gpt-5-nano", user="bob",
           key="key_acme_bob", currency="USD",
           lines=[("input_tokens", 1000, "1", "0.001"), ("output_tokens", 500, "2", "0.001")]),
    record("req-a2", "acme", "2026-10-03T08:00:00+00:00", "deepseek/deepseek-chat",
           user="bob", key="key_acme_bob", currency="CNY", billed_currency="USD",
           fx_rate="0.14", lines=[("input_tokens", 1_000_000, "2", "2"),
                                  ("output_tokens", 50_000, "2", "0.1")]),
    record("req-a3", "acme", "2026-10-20T23:30:00+00:00", "openai/gpt-5-nano", user="carol",
           key=None, currency="USD",
           lines=[("input_tokens", 2_000_000, "1", "2"), ("output_tokens", 1_000_000, "2", "2")]),
    record("req-a4", "acme", "2026-11-02T12:00:00+00:00", "openrouter/some/model", user="bob",
           key="key_acme_bob", currency=None, lines=None),
    record("req-a5", "acme", "2026-11-15T09:00:00+00:00", "openai/gpt-5-nano", user=None,
           key="key_acme_old", currency="USD",
           lines=[("input_tokens", 123_456, "1", "0.123456"),
                  ("output_tokens", 7_000, "2", "0.014")]),
    record("req-a6", "acme", "2026-11-15T10:00:00+00:00", "openai/gpt-5-nano", user="bob",
           key="key_acme_bob", currency="USD", status="error", http_status=500,
           error="upstream failed", lines=[]),
    # shop (CNY, Asia/Shanghai): 2026-10-31 20:00 UTC is 1 November there
    record("req-s1", "shop", "2026-10-10T02:00:00+00:00", "deepseek/deepseek-chat", user="li",
           key="key_shop", currency="CNY",
           lines=[("input_tokens", 1_000_000, "2", "2"), ("output_tokens", 50_000, "2", "0.1")]),
    # Reported (POST /v1/usage), not through the gateway: the rollup's reported calls of its
    # local day, which migration 0017 counts from the records.
    record("req-s2", "shop", "2026-10-31T20:00:00+00:00", "deepseek/deepseek-chat", user="li",
           key="key_shop", currency="CNY", source="ingest",
           lines=[("input_tokens", 500_000, "2", "1"), ("output_tokens", 25_000, "2", "0.05")]),
    record("req-s3", "shop", "2026-11-10T01:00:00+00:00", "openai/gpt-5-nano", user=None,
           key="key_shop", currency="USD", billed_currency="CNY", fx_rate="7.1",
           lines=[("input_tokens", 1_000_000, "1", "1"), ("output_tokens", 500_000, "2", "1")]),
]
#: Before this instant records are archived at head (a month boundary, as the archive's are).
ARCHIVE_CUTOFF = at("2026-10-01T00:00:00+00:00")
TENANTS = {"acme": ("USD", "UTC"), "shop": ("CNY", "Asia/Shanghai")}


def price_body(model: str, currency: str, start: str) -> dict[str, Any]:
    return {"model": model, "billing_type": "token", "currency": currency, "unit": "1M",
            "effective_from": start, "prices": {"input_tokens": "1", "output_tokens": "2"}}


def price(model: str, currency: str, origin: str, layer: str,
          start: str = "2026-01-01T00:00:00+00:00", **extra: Any) -> dict[str, Any]:
    return {"id": f"{model}@{start}/{currency}/{layer}",
            "model_id": model, "currency": currency, "effective_from": at(start),
            "body": price_body(model, currency, start), "origin": origin, "layer": layer,
            "created_at": T0, **extra}


BASE: dict[str, list[dict[str, Any]]] = {
    "tenants": [{"id": name, "currency": currency, "timezone": zone, "created_at": T0}
                for name, (currency, zone) in TENANTS.items()],
    "users": [{"tenant_id": t, "id": u, "created_at": T0}
              for t, u in (("acme", "bob"), ("acme", "carol"), ("shop", "li"))],
    "api_keys": [
        {"id": "key_acme_bob", "tenant_id": "acme", "user_id": "bob", "name": "bob's",
         "prefix": "ml-bobbob1", "key_hash": "a" * 64, "models": ["openai/gpt-5-nano"],
         "expires_at": at("2027-01-01T00:00:00+00:00"), "revoked_at": None, "created_at": T0,
         "rpm": None, "tpm": None},
        {"id": "key_acme_old", "tenant_id": "acme", "user_id": None, "name": None,
         "prefix": "ml-oldold1", "key_hash": "b" * 64, "models": None, "expires_at": None,
         "revoked_at": at("2026-11-15T11:00:00+00:00"), "created_at": T0, "rpm": None,
         "tpm": None},
        {"id": "key_shop", "tenant_id": "shop", "user_id": None, "name": "shop",
         "prefix": "ml-shopsh1", "key_hash": "c" * 64, "models": None, "expires_at": None,
         "revoked_at": None, "created_at": T0, "rpm": 60, "tpm": 100_000,
         NEEDS: ("rpm", "tpm")},
    ],
    "admin_tokens": [
        {"id": 1, "token_hash": "d" * 64, "created_at": T0, "name": "admin",
         "last_used_at": None, "revoked_at": None},
        {"id": 2, "token_hash": "e" * 64, "created_at": T0, "name": "ci",
         "last_used_at": at("2026-11-01T00:00:00+00:00"),
         "revoked_at": at("2026-11-02T00:00:00+00:00"),
         NEEDS: ("name", "last_used_at", "revoked_at")},
    ],
    "sessions": [{"id_hash": "f" * 64, "admin_token_id": 1, "created_at": T0,
                  "expires_at": at("2026-12-01T00:00:00+00:00"), "revoked_at": None}],
    "server_secrets": [{"name": "session_signing_key", "value": "0f" * 32, "created_at": T0}],
    "providers": [{"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
                   "created_at": T0},
                  {"name": "deepseek", "kind": "openai", "base_url": None, "created_at": T0}],
    "models": [{"id": "openai/gpt-5-nano", "provider": "openai", "billing_type": "token",
                "created_at": T0},
               {"id": "deepseek/deepseek-chat", "provider": "deepseek",
                "billing_type": "token", "created_at": T0}],
    "model_aliases": [{"alias": "gpt-5-nano", "model_id": "openai/gpt-5-nano"}],
    "price_versions": [
        # Layers are what migration 0009 gives each origin (manual → operator, catalog →
        # curated, …litellm → litellm).
        price("openai/gpt-5-nano", "USD", "manual", "operator"),
        price("deepseek/deepseek-chat", "CNY", "catalog", "curated"),
        price("openai/gpt-4o-mini", "USD", "import:litellm", "litellm",
              "2026-02-01T00:00:00+00:00"),
        # Only since 0009: another layer and currency at the same moment as an existing one.
        {**price("openai/gpt-5-nano", "EUR", "genai-prices", "genai-prices"),
         NEEDS: ("layer",)},
    ],
    "model_rules": [{"layer": "genai-prices", "provider": "openai",
                     "model_id": "openai/gpt-5-nano", "position": 0,
                     "rule": '{"starts_with": "gpt-5-nano"}'}],
    "catalog_syncs": [{"layer": "curated", "fingerprint": "fp-1", "synced_at": T0}],
    "fx_rates": [
        {"id": 1, "base": "CNY", "quote": "USD", "rate": D("0.14"),
         "effective_from": at("2026-01-01T00:00:00+00:00"), "created_at": T0},
        {"id": 2, "base": "USD", "quote": "CNY", "rate": D("7.1"),
         "effective_from": at("2026-01-01T00:00:00+00:00"), "created_at": T0},
    ],
    "budgets": [{"id": "bud_acme", "scope_key": "tenant=acme;user=;key=;provider=;model=",
                 "tenant_id": "acme", "user_id": None, "key_id": None, "provider": None,
                 "model": None, "period": "month", "mode": "block", "amount": D("100"),
                 "currency": "USD", "thresholds": ["0.5", "0.8"], "timezone": "UTC",
                 "created_at": T0, "updated_at": T0}],
    # Spent per period: what the ledger holds for acme (Oct: a2 + a3; Nov: a5).
    "budget_periods": [
        {"budget_id": "bud_acme", "period_start": at("2026-10-01T00:00:00+00:00"),
         "spent": D("4.294"), "reserved": D(0)},
        {"budget_id": "bud_acme", "period_start": at("2026-11-01T00:00:00+00:00"),
         "spent": D("0.137456"), "reserved": D("0.25")},
    ],
    "budget_holds": [{"request_id": "req-held", "budget_id": "bud_acme",
                      "period_start": at("2026-11-01T00:00:00+00:00"), "amount": D("0.25"),
                      "expires_at": at("2026-11-15T12:05:00+00:00")}],
    "alerts": [{"id": "alert_1", "budget_id": "bud_acme", "tenant_id": "acme",
                "scope": "tenant acme", "kind": "threshold", "level": "warning",
                "threshold": D("0.5"), "percentage": D("50.1"), "amount": D("50.1"),
                "limit_amount": D("100"), "currency": "USD", "period": "month",
                "period_start": at("2026-10-01T00:00:00+00:00"), "message": "half spent",
                "created_at": T0, "notified_at": None, "resolved_at": None}],
    "plans": [{"id": "starter", "allowances": {"text_token": 1_000_000}, "created_at": T0}],
    "tenant_plans": [{"tenant_id": "shop", "plan_id": "starter", "since": T0}],
    "quota_grants": [{"id": "grant_1", "tenant_id": "shop", "user_id": None,
                      "type": "text_token", "source": "plan", "amount": 1_000_000, "bonus": 0,
                      "remaining": 400_000, "reference": None, "reason": None,
                      "cycle": "2026-11", "granted_at": at("2026-11-01T00:00:00+00:00"),
                      "expires_at": None}],
    "quota_entries": [
        {"id": 1, "grant_id": "grant_1", "tenant_id": "shop", "type": "text_token",
         "kind": "grant", "delta": 1_000_000, "at": at("2026-11-01T00:00:00+00:00"),
         "request_id": None, "note": None},
        {"id": 2, "grant_id": "grant_1", "tenant_id": "shop", "type": "text_token",
         "kind": "use", "delta": -600_000, "at": at("2026-11-10T01:00:00+00:00"),
         "request_id": "req-s3", "note": None}],
    "quota_counters": [{"tenant_id": "shop", "type": "text_token", "reserved": 0}],
    "quota_holds": [{"request_id": "req-qheld", "type": "text_token", "tenant_id": "shop",
                     "amount": 10, "expires_at": at("2026-11-15T12:05:00+00:00")}],
    "rate_windows": [{"key_id": "key_shop", "window_start": at("2026-11-15T11:59:00+00:00"),
                      "requests": 3, "tokens": 1234}],
    "idempotency_claims": [{"tenant_id": "acme", "key": "idem-1", "request_id": "req-a5",
                            "expires_at": at("2026-11-16T00:00:00+00:00")}],
    "calls_started": [{"request_id": "req-flight", "writer": "w-1", "tenant_id": "acme",
                       "started_at": at("2026-11-15T11:59:59+00:00"),
                       "record": {"model": "openai/gpt-5-nano", "input_tokens": 5}}],
    "provider_bill_lines": [{"provider": "openai", "model": "openai/gpt-5-nano",
                             "period_start": date(2026, 10, 1), "period_end": date(2026, 10, 31),
                             "currency": "USD", "amount": D("4.01"), "source": "csv",
                             "imported_at": T0}],
    "archive_state": [{"id": 1, "cutoff": ARCHIVE_CUTOFF,
                       "updated_at": at("2026-11-01T03:00:00+00:00")}],
    "usage_records": [r for r, _ in RECORDS if r["occurred_at"] >= ARCHIVE_CUTOFF],
    "charge_lines": [line for r, lines in RECORDS for line in lines
                     if r["occurred_at"] >= ARCHIVE_CUTOFF],
    "usage_records_archive": [r for r, _ in RECORDS if r["occurred_at"] < ARCHIVE_CUTOFF],
    "charge_lines_archive": [line for r, lines in RECORDS for line in lines
                             if r["occurred_at"] < ARCHIVE_CUTOFF],
}
#: The bills stored at head (issued, then one paid), made on the scratch database.
STORED_BILLS = (("acme", "2026-10", ("issued",)), ("shop", "2026-10", ("issued", "paid")))
STORED = {(tenant, cycle): steps for tenant, cycle, steps in STORED_BILLS}


# -- writing and reading rows --------------------------------------------------------------------

def shape(conn: Connection) -> dict[str, set[str]]:
    """The tables of the database and their columns."""
    inspector = inspect(conn)
    return {name: {c["name"] for c in inspector.get_columns(name)}
            for name in inspector.get_table_names()}


def cut_table(name: str, columns: set[str]) -> Table:
    """Head's table ``name`` with only ``columns``: head's types, none of its Python-side
    defaults (which would name columns an older schema lacks)."""
    head = metadata.tables[name]
    return Table(name, MetaData(), *(Column(c.name, c.type, primary_key=c.primary_key,
                                            autoincrement=False)
                                     for c in head.columns if c.name in columns))


def fill(conn: Connection, rows_by_table: Mapping[str, list[dict[str, Any]]]
         ) -> dict[str, list[dict[str, Any]]]:
    """Insert each row where the schema has its table and what it needs; returns the rows
    inserted, per table at head (archived rows where the archive belongs)."""
    present = shape(conn)
    inserted: dict[str, list[dict[str, Any]]] = {}
    for head_table in metadata.sorted_tables:  # parents before children
        name = head_table.name
        rows = rows_by_table.get(name, [])
        target = name if name in present else ARCHIVE.get(name)
        if not rows or target not in present:
            continue
        columns = present[target]
        kept = [r for r in rows if set(r.get(NEEDS, ())) <= columns]
        if not kept:
            continue
        table = cut_table(target, columns)
        if target in PRESEEDED:
            conn.execute(delete(table))
        conn.execute(table.insert(), [{k: v for k, v in r.items() if k in columns}
                                      for r in kept])
        inserted.setdefault(name if name in present else target, []).extend(
            {k: v for k, v in r.items() if k != NEEDS} for r in kept)
    return inserted


def primary_key(name: str, row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[c.name]) for c in metadata.tables[name].primary_key.columns)


def read(conn: Connection, name: str) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(select(metadata.tables[name]))]
    return sorted(rows, key=lambda r: primary_key(name, r))


def same_rows(conn: Connection, name: str, expected: list[dict[str, Any]]) -> None:
    """The table holds exactly ``expected`` (in the columns the fixture names)."""
    found = read(conn, name)
    wanted = sorted(expected, key=lambda r: primary_key(name, r))
    assert [primary_key(name, r) for r in found] == [primary_key(name, r) for r in wanted], name
    for got, row in zip(found, wanted, strict=True):
        differing = {k: (got[k], v) for k, v in row.items() if got[k] != v
                     or (v is not None and type(got[k]) is not type(v))}
        assert not differing, f"{name} {primary_key(name, row)}: (found, fixture) {differing}"


# -- the derived rows, made by the product at head ------------------------------------------------

@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Rollups and stored bills of the fixture, as the product makes them at head."""
    directory = tmp_path_factory.mktemp("upgrade-scratch")
    with fresh_database("sqlite", directory) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            with engine.begin() as conn:
                fill(conn, BASE)
                rollups.rebuild(conn)
            for tenant, cycle, steps in STORED_BILLS:
                for status in steps:
                    bill_service.set_status(engine, tenant, cycle, status, now=NOW, actor=None)
            with engine.connect() as conn:
                return {name: read(conn, name) for name in DERIVED}
        finally:
            engine.dispose()


# -- totals computed from the fixture ----------------------------------------------------------

def local_day(tenant: str, when: datetime) -> date:
    return when.astimezone(ZoneInfo(TENANTS[tenant][1])).date()


def billed_lines(tenant: str, cycle: str) -> Decimal:
    """The tenant's charge lines of a cycle (tenant-local month) in its currency."""
    total = D(0)
    for row, lines in RECORDS:
        if row["tenant_id"] != tenant or local_day(tenant, row["occurred_at"]).strftime(
                "%Y-%m") != cycle:
            continue
        rate = D(1) if row["currency"] == row["billed_currency"] else row["fx_rate"]
        total += sum((line["amount"] * rate for line in lines), D(0))
    return total


def cents(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def expected_summary(tenant: str) -> dict[str, Any]:
    rows = [r for r, _ in RECORDS if r["tenant_id"] == tenant]
    today = local_day(tenant, NOW)

    def billed(keep: Any) -> Decimal:
        return sum((r["billed_cost"] for r in rows
                    if r["billed_cost"] is not None and keep(local_day(tenant,
                                                                      r["occurred_at"]))),
                   D(0))

    return {"total": billed(lambda day: True),
            "month": billed(lambda day: day.replace(day=1) == today.replace(day=1)),
            "today": billed(lambda day: day == today), "calls": len(rows),
            "unpriced_calls": sum(r["cost"] is None for r in rows),
            "successes": sum(r["status"] == "success" for r in rows)}


def check_totals(engine: Engine, inserted: Mapping[str, list[dict[str, Any]]]) -> None:
    for tenant in TENANTS:
        found = stat_service.summary(engine, tenant, "USD", now=NOW)
        wanted = expected_summary(tenant)
        assert (found.total, found.month, found.today) == (
            wanted["total"], wanted["month"], wanted["today"]), (tenant, found)
        assert (found.calls, found.unpriced_calls) == (
            wanted["calls"], wanted["unpriced_calls"]), (tenant, found)
        assert found.success_rate == round(wanted["successes"] / wanted["calls"], 4)
        assert found.unconverted == [], found
        for cycle in ("2026-09", "2026-10", "2026-11"):
            bill = bill_service.get_bill(engine, tenant, cycle).to_json()
            exact = billed_lines(tenant, cycle)
            # A stored bill was rounded once, when issued; an open one is exact.
            steps = STORED.get((tenant, cycle)) if "bills" in inserted else None
            assert bill["status"] == (steps[-1] if steps else "open"), bill
            total = cents(exact) if steps else exact
            assert (D(bill["total"]), D(bill["exact_total"])) == (total, exact), (
                tenant, cycle, bill)
            # Nothing carried over: the stored bills hold exactly their cycles' usage.
            assert all(line["adjustment_of"] is None for line in bill["lines"]), bill
    if "budgets" not in inserted:
        return
    budget = budget_service.list_state(engine, "acme", now=NOW)[0]
    november = sum((r["billed_cost"] for r, _ in RECORDS if r["tenant_id"] == "acme"
                    and r["billed_cost"] is not None and r["occurred_at"] >= at(
                        "2026-11-01T00:00:00+00:00")), D(0))
    assert (budget.spent, budget.reserved) == (november, D("0.25")), budget


# -- the test -------------------------------------------------------------------------------------

@pytest.fixture
def fresh_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", earlier_revisions())
def test_an_upgrade_keeps_every_record_bill_and_total(
        revision: str, fresh_engine: Engine, derived: dict[str, list[dict[str, Any]]]) -> None:
    upgrade(fresh_engine, revision)
    with fresh_engine.begin() as conn:
        inserted = fill(conn, BASE | derived)
        had_rollups = "usage_daily" in shape(conn)
    assert "usage_records" in inserted and "tenants" in inserted

    upgrade(fresh_engine)

    assert check_schema(fresh_engine).ok
    with fresh_engine.connect() as conn:
        for name, rows in inserted.items():
            same_rows(conn, name, rows)
        if not had_rollups:  # the migration that made them left them empty (docs/stats.md)
            assert read(conn, "usage_daily") == []
        else:  # the rollups without models or without people, summed by their migration
            for name in ("usage_daily_models", "usage_daily_people"):
                same_rows(conn, name, derived[name])
    with fresh_engine.begin() as conn:
        rollups.rebuild(conn)
    with fresh_engine.connect() as conn:
        # Rebuilt from the upgraded records, the rollups are what the product made at head.
        for name in ("usage_daily", "usage_daily_models", "usage_daily_people",
                     "usage_daily_meters"):
            same_rows(conn, name, derived[name])
    check_totals(fresh_engine, inserted)


def test_every_earlier_revision_is_covered() -> None:
    """The revisions are Alembic's own, oldest first, ending just before the head."""
    revisions = earlier_revisions()
    assert revisions[0] == "0001"
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_revision(head_revision())
    assert head is not None and head.down_revision == revisions[-1]
    assert len(set(revisions)) == len(revisions)


def test_the_fixture_is_checked_against_the_head_schema() -> None:
    """Every fixture column exists at head, so no value is silently left out anywhere."""
    for name, rows in BASE.items():
        columns = {c.name for c in metadata.tables[name].columns}
        for row in rows:
            assert set(row) - {NEEDS} <= columns, (name, set(row) - columns)
