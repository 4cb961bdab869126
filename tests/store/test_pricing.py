"""meterline.store.pricing: price versions, aliases and FX rates are only ever added."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from meterline.catalog import load_catalog
from meterline.domain.fx import FxRate
from meterline.domain.pricebook import Layer
from meterline.domain.prices import PriceVersion
from meterline.errors import FxRateMissing, UnknownModel
from meterline.services.bootstrap import genai_catalog, prepare_database
from meterline.store import pricing
from meterline.store.schema import catalog_syncs, fx_rates, model_aliases, models, price_versions

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)


def version(model: str = "acme/chat-1", effective_from: str = "2026-01-01",
            **extra: Any) -> PriceVersion:
    data: dict[str, Any] = {
        "model": model, "currency": "USD", "effective_from": effective_from, "unit": "1M",
        "prices": {"input_tokens": "0.15", "output_tokens": "0.6",
                   "cached_input_tokens": "0.075"},
    }
    data.update(extra)
    return PriceVersion.parse(data)


RICH = version(
    "acme/rich-1", "2026-02-15T08:30:00+08:00",
    currency="CNY",
    units={"requests": "1"},
    prices={"input_tokens": "0.000000075123456789", "output_tokens": "12.3456789012345",
            "requests": "0.0001"},
    tiers=[{"above_input_tokens": 128000, "prices": {"input_tokens": "0.3",
                                                     "output_tokens": "24.6913578024690"}}],
    variants=[{"match": {"quality": "hd"}, "prices": {"output_tokens": "99"}}],
    windows=[{"timezone": "Asia/Shanghai", "start": "00:30", "end": "08:30",
              "prices": {"input_tokens": "0.0000000375", "output_tokens": "6"}}],
    minimum_charge="0.000001",
    max_output_tokens=8192,
    context_window=1000000,
    source="https://example.com/pricing",
)


def test_add_versions_is_idempotent(engine: Engine) -> None:
    versions = [version(), version(effective_from="2026-03-01", prices={"input_tokens": "0.2"})]
    with engine.begin() as conn:
        assert pricing.add_versions(conn, versions, "test") == 2
    with engine.begin() as conn:
        assert pricing.add_versions(conn, versions, "test") == 0
        assert pricing.add_versions(conn, [], "test") == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(price_versions)).scalar_one() == 2
        rows = conn.execute(select(models)).all()
        stored = conn.execute(select(price_versions.c.id, price_versions.c.origin,
                                     price_versions.c.effective_from)
                              .order_by(price_versions.c.effective_from)).all()
    assert [(r.id, r.provider, r.billing_type) for r in rows] == [("acme/chat-1", "acme", "token")]
    assert [(s.id, s.origin, s.effective_from) for s in stored] == [
        ("acme/chat-1@2026-01-01T00:00:00+00:00", "test", JAN),
        ("acme/chat-1@2026-03-01T00:00:00+00:00", "test", MAR),
    ]


def test_a_version_at_a_stored_start_never_rewrites_history(engine: Engine) -> None:
    original = version()
    with engine.begin() as conn:
        assert pricing.add_versions(conn, [original], "catalog") == 1
    changed = version(prices={"input_tokens": "9", "output_tokens": "9"})
    # the same instant written with another offset is the same start
    same_instant = version(effective_from="2026-01-01T08:00:00+08:00",
                           prices={"input_tokens": "7"})
    with engine.begin() as conn:
        assert pricing.add_versions(conn, [changed, same_instant], "admin") == 0
    with engine.connect() as conn:
        book = pricing.load_pricebook(conn)
        origins = conn.execute(select(price_versions.c.origin)).scalars().all()
    [stored] = book.versions("acme/chat-1")
    assert stored.same_prices(original)
    assert not stored.same_prices(changed)
    assert origins == ["catalog"]


def test_load_pricebook_round_trips_prices_exactly(engine: Engine) -> None:
    plain, later = version(), version(effective_from="2026-05-01",
                                      prices={"input_tokens": "0.000000000001"})
    with engine.begin() as conn:
        pricing.add_versions(conn, [plain, later, RICH], "test",
                             aliases=[("acme/chat-1-2026-01-01", "acme/chat-1")])
    with engine.connect() as conn:
        book = pricing.load_pricebook(conn)
    assert book.models() == ["acme/chat-1", "acme/rich-1"]
    [rich] = book.versions("acme/rich-1")
    assert rich.same_prices(RICH)
    assert rich.to_json() == RICH.to_json()
    assert rich == RICH
    assert rich.id == RICH.id
    assert rich.effective_from == datetime(2026, 2, 15, 0, 30, tzinfo=UTC)
    assert rich.prices[next(iter(rich.prices))].price == D("0.000000075123456789")
    assert [v.effective_from for v in book.versions("acme/chat-1")] == [JAN, MAY]
    first, second = book.versions("acme/chat-1")
    assert first.same_prices(plain) and second.same_prices(later)
    assert not first.same_prices(second)
    assert book.version_at("acme/chat-1", datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)) == first
    assert book.version_at("acme/chat-1", MAY) == second


def test_aliases_are_stored_and_resolve(engine: Engine) -> None:
    with engine.begin() as conn:
        pricing.add_versions(conn, [version()], "test",
                             aliases=[("acme/chat-1-2026-01-01", "acme/chat-1")])
        # an alias already present is left alone
        pricing.add_versions(conn, [version()], "test",
                             aliases=[("acme/chat-1-2026-01-01", "acme/other")])
    with engine.connect() as conn:
        book = pricing.load_pricebook(conn)
        rows = conn.execute(select(model_aliases)).all()
    assert [(r.alias, r.model_id) for r in rows] == [("acme/chat-1-2026-01-01", "acme/chat-1")]
    assert book.aliases() == {"acme/chat-1-2026-01-01": "acme/chat-1"}
    assert book.resolve("acme/chat-1-2026-01-01") == "acme/chat-1"
    assert book.resolve("chat-1-2026-01-01") == "acme/chat-1"
    assert book.resolve("chat-1") == "acme/chat-1"
    with pytest.raises(UnknownModel):
        book.resolve("acme/chat-2")


def test_fx_rates_add_and_load(engine: Engine) -> None:
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "7.1", JAN))
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "7.123456789012345678", MAR))
        pricing.add_fx_rate(conn, FxRate.parse("EUR", "USD", "1.08", JAN))
        # the same pair and start again is ignored: the first rate stays
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "9.9", JAN))
    with engine.connect() as conn:
        table = pricing.load_fx(conn)
        count = conn.execute(select(func.count()).select_from(fx_rates)).scalar_one()
    assert count == 3
    assert sorted(table.all(), key=lambda r: (r.base, r.effective_from)) == [
        FxRate("EUR", "USD", D("1.08"), JAN),
        FxRate("USD", "CNY", D("7.1"), JAN),
        FxRate("USD", "CNY", D("7.123456789012345678"), MAR),
    ]
    assert all(r.effective_from.tzinfo is UTC for r in table.all())
    assert table.rate("USD", "CNY", datetime(2026, 2, 28, 23, 59, tzinfo=UTC)) == D("7.1")
    assert table.rate("USD", "CNY", MAR) == D("7.123456789012345678")
    assert table.rate("USD", "EUR", JAN) == D(1) / D("1.08")
    with pytest.raises(FxRateMissing):
        table.rate("USD", "CNY", datetime(2025, 12, 31, tzinfo=UTC))


def test_generation_changes_when_prices_or_rates_are_added(engine: Engine) -> None:
    with engine.connect() as conn:
        empty = pricing.generation(conn)
    with engine.begin() as conn:
        pricing.add_versions(conn, [version()], "test")
    with engine.connect() as conn:
        after_price = pricing.generation(conn)
    assert after_price != empty
    with engine.begin() as conn:
        pricing.add_versions(conn, [version()], "test")  # nothing new
    with engine.connect() as conn:
        assert pricing.generation(conn) == after_price
    with engine.begin() as conn:
        pricing.add_versions(conn, [], "test", aliases=[])
        pricing.add_versions(conn, [version()], "test", aliases=[("acme/c1", "acme/chat-1")])
    with engine.connect() as conn:
        after_alias = pricing.generation(conn)
    assert after_alias != after_price
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "7.1", JAN))
    with engine.connect() as conn:
        after_rate = pricing.generation(conn)
    assert after_rate not in (empty, after_price, after_alias)
    with engine.begin() as conn:
        pricing.add_fx_rate(conn, FxRate.parse("USD", "CNY", "7.2", MAR))
    with engine.connect() as conn:
        assert pricing.generation(conn) != after_rate


def test_shipped_catalog_and_genai_prices_load_once(bare_engine: Engine) -> None:
    shipped = load_catalog()
    database = genai_catalog()
    added = prepare_database(bare_engine)
    assert added == len(shipped.versions()) + len(database.versions) > 2000
    assert prepare_database(bare_engine) == 0
    with bare_engine.connect() as conn:
        book = pricing.load_pricebook(conn)
        count = conn.execute(select(func.count()).select_from(price_versions)).scalar_one()
    assert count == added
    assert set(shipped.models()) <= set(book.models())
    assert {v.model for v in database.versions} <= set(book.models())
    curated = book.only(Layer.CURATED)
    assert curated.models() == shipped.models()
    assert shipped.aliases().items() <= book.aliases().items()
    for stored, original in zip(curated.versions(), shipped.versions(), strict=True):
        assert stored.id == original.id
        assert stored.same_prices(original)
    genai_layer = book.only(Layer.GENAI_PRICES)
    assert sorted(v.id for v in genai_layer.versions()) == sorted(
        v.id for v in database.versions)
    assert len(book.rules()) > 0


def test_a_start_syncs_a_shipped_source_only_when_it_changed(bare_engine: Engine) -> None:
    prepare_database(bare_engine)
    with bare_engine.begin() as conn:
        conn.execute(price_versions.delete().where(
            price_versions.c.id == "openai/gpt-4o@1970-01-01T00:00:00+00:00#genai-prices"))
    # Same release of genai-prices as the last sync: not translated again, nothing re-added.
    assert prepare_database(bare_engine) == 0
    with bare_engine.begin() as conn:
        conn.execute(catalog_syncs.delete().where(catalog_syncs.c.layer == "genai-prices"))
    # A new release (here: no record of the last sync) is synced: what is missing comes back.
    assert prepare_database(bare_engine) == 1
    assert prepare_database(bare_engine) == 0
