"""Price versions, model aliases and FX rates in the database.

Rows are only ever added: a price change is a new version, a new FX rate a new row. The shipped
catalog is synced in on upgrade (versions already present are left alone), so a deployment's
price history survives upgrades. ``generation`` is a cheap fingerprint that lets every process
notice that another one added prices or rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Text, delete, func, select, type_coerce, update

from meterline.domain.fx import FxRate, FxTable
from meterline.domain.model_match import MatchRule
from meterline.domain.pricebook import Layer, PriceBook
from meterline.domain.prices import PriceVersion
from meterline.store.schema import (
    catalog_syncs,
    fx_rates,
    model_aliases,
    model_rules,
    models,
    price_versions,
    providers,
)
from meterline.store.upsert import insert_ignore


def add_versions(conn: Connection, versions: Iterable[PriceVersion], origin: str,
                 aliases: Iterable[tuple[str, str]] = (), layer: Layer | None = None) -> int:
    """Store versions not yet present (same id, or same model, start, currency and layer);
    returns how many were new. The layer is the origin's unless given."""
    now = datetime.now(UTC)
    label = (layer or Layer.of_origin(origin)).label
    rows: list[dict[str, Any]] = [{"id": v.id, "model_id": v.model, "currency": v.currency,
             "effective_from": v.effective_from, "body": v.to_json(), "origin": origin,
             "layer": label, "created_at": now} for v in versions]
    if not rows:
        return 0
    before = _count(conn)
    conn.execute(insert_ignore(conn, price_versions, None), rows)
    model_rows = {v["model_id"]: {"id": v["model_id"], "provider": v["model_id"].split("/")[0],
                                  "billing_type": v["body"]["billing_type"], "created_at": now}
                  for v in rows}
    conn.execute(insert_ignore(conn, models, ["id"]), list(model_rows.values()))
    alias_rows = [{"alias": a, "model_id": m} for a, m in aliases]
    if alias_rows:
        conn.execute(insert_ignore(conn, model_aliases, ["alias"]), alias_rows)
    return _count(conn) - before


def save_rules(conn: Connection, layer: Layer,
               rules: Iterable[tuple[str, MatchRule, str]]) -> int:
    """Make ``rules`` (provider, rule, model, in the source's order) the layer's name rules for
    those models; other models' rules stay (a partial data file does not drop them). Rules only
    resolve names, they price nothing, so a model's rule is replaced, not versioned. Returns
    how many rules changed."""
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for position, (provider, rule, model) in enumerate(rules):
        wanted[(provider, model)] = {"layer": layer.label, "provider": provider,
                                     "model_id": model, "position": position,
                                     "rule": orjson.dumps(rule.to_json()).decode()}
    stored = {(row.provider, row.model_id): dict(row._mapping) for row in conn.execute(
        select(model_rules).where(model_rules.c.layer == layer.label))}
    changed = [row for key, row in wanted.items() if stored.get(key) != row]
    for row in changed:
        conn.execute(delete(model_rules).where(
            model_rules.c.layer == row["layer"], model_rules.c.provider == row["provider"],
            model_rules.c.model_id == row["model_id"]))
    if changed:
        conn.execute(model_rules.insert(), changed)
    return len(changed)


def synced_fingerprints(conn: Connection) -> dict[Layer, str]:
    """What each shipped source's last sync into this database was (see bootstrap)."""
    return {Layer.parse(row.layer): row.fingerprint
            for row in conn.execute(select(catalog_syncs))}


def mark_synced(conn: Connection, layer: Layer, fingerprint: str) -> None:
    conn.execute(delete(catalog_syncs).where(catalog_syncs.c.layer == layer.label))
    conn.execute(catalog_syncs.insert().values(layer=layer.label, fingerprint=fingerprint,
                                               synced_at=datetime.now(UTC)))


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(price_versions)).scalar_one())


#: Versions parsed before, by id and stored text: a version never changes once stored, and
#: a process reloads the same few thousand of them whenever any price is added (or, in the
#: CLI, on every command), so each is parsed once per process. Bounded: ids come from the
#: database, and a long-lived process sees only so many.
_PARSED: dict[tuple[str, str], PriceVersion] = {}
_MAX_PARSED = 50_000


def load_pricebook(conn: Connection) -> PriceBook:
    book = PriceBook()
    if len(_PARSED) > _MAX_PARSED:
        _PARSED.clear()
    for row in conn.execute(select(price_versions.c.id,
                                   type_coerce(price_versions.c.body, Text).label("text"),
                                   price_versions.c.layer)):
        key = (row.id, row.text)
        version = _PARSED.get(key)
        if version is None:
            version = PriceVersion.parse(orjson.loads(row.text))
            if version.id != row.id:
                version = replace(version, id=row.id)
            _PARSED[key] = version
        book.add(version, Layer.parse(row.layer))
    for row in conn.execute(select(model_aliases)):
        book.add_alias(row.alias, row.model_id)
    rules = conn.execute(select(model_rules).order_by(
        model_rules.c.layer, model_rules.c.provider, model_rules.c.position))
    by_layer = sorted(rules, key=lambda row: -Layer.parse(row.layer))  # higher layers first
    for row in by_layer:
        book.add_rule(row.provider, MatchRule.parse(orjson.loads(row.rule)), row.model_id)
    return book


def save_providers(conn: Connection, found: list[tuple[str, str, str]]) -> None:
    """Insert or update providers by name."""
    now = datetime.now(UTC)
    for name, kind, base_url in found:
        changed = conn.execute(update(providers).where(providers.c.name == name)
                               .values(kind=kind, base_url=base_url))
        if changed.rowcount == 0:
            conn.execute(providers.insert().values(name=name, kind=kind, base_url=base_url,
                                                   created_at=now))


def provider_names(conn: Connection) -> set[str]:
    """The configured providers (every process records its own at start)."""
    return {row.name for row in conn.execute(select(providers.c.name))}


def versions_starting(conn: Connection, model: str, effective_from: datetime
                      ) -> list[tuple[str, str, str]]:
    """(id, currency, layer) of every stored version of ``model`` starting at that moment."""
    c = price_versions.c
    return [(row.id, row.currency, row.layer) for row in conn.execute(
        select(c.id, c.currency, c.layer).where(c.model_id == model,
                                                c.effective_from == effective_from))]


def fx_rate_exists(conn: Connection, base: str, quote: str, effective_from: datetime) -> bool:
    c = fx_rates.c
    return conn.execute(select(c.id).where(c.base == base, c.quote == quote,
                                           c.effective_from == effective_from)
                        ).first() is not None


def add_fx_rate(conn: Connection, rate: FxRate) -> None:
    conn.execute(insert_ignore(conn, fx_rates, ["base", "quote", "effective_from"]),
                 [{"base": rate.base, "quote": rate.quote, "rate": rate.rate,
                   "effective_from": rate.effective_from, "created_at": datetime.now(UTC)}])


def load_fx(conn: Connection) -> FxTable:
    rows = conn.execute(select(fx_rates).order_by(fx_rates.c.effective_from))
    return FxTable(FxRate(r.base, r.quote, r.rate, r.effective_from) for r in rows)


def generation(conn: Connection) -> tuple[object, ...]:
    """Changes whenever a price version, alias or FX rate is added."""
    row = conn.execute(select(
        select(func.count()).select_from(price_versions).scalar_subquery(),
        select(func.count()).select_from(model_aliases).scalar_subquery(),
        select(func.count()).select_from(model_rules).scalar_subquery(),
        select(func.count()).select_from(fx_rates).scalar_subquery(),
        select(func.max(fx_rates.c.created_at)).scalar_subquery(),
    )).one()
    return tuple(row)
