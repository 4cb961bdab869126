"""Managing prices and FX rates: add a version, import a file, update from a newer catalog.

Every operation only adds rows: history is never rewritten. An import or update is checked in
full before anything is written, so a file with one bad row changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from meterline.catalog.litellm import ImportResult, parse_litellm
from meterline.catalog.shipped import CatalogEntries, parse_catalog_file
from meterline.catalog.update import load_update_source, plan_update
from meterline.domain.fx import FxRate
from meterline.domain.prices import PriceVersion
from meterline.errors import Conflict, InvalidInput, InvalidPrice
from meterline.store import pricing
from meterline.store.schema import fx_rates, price_versions

IMPORT_FORMATS = ("litellm", "meterline")


@dataclass
class ImportSummary:
    added: int
    already_present: int
    skipped: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "already_present": self.already_present,
                "skipped": self.skipped, "duplicates": self.duplicates,
                "conflicts": self.conflicts}


def add_version(engine: Engine, data: Mapping[str, Any], origin: str = "manual") -> PriceVersion:
    """Add one price version given in the catalog shape with ``model`` as ``provider/model``."""
    model = data.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise InvalidPrice("model: give it as provider/model", field="model")
    version = PriceVersion.parse(data)
    with engine.begin() as conn:
        clash = conn.execute(select(price_versions.c.id).where(
            price_versions.c.model_id == version.model,
            price_versions.c.effective_from == version.effective_from)).first()
        if clash is not None:
            raise Conflict(f"{version.model} already has a price version effective from "
                           f"{version.effective_from.isoformat()}; versions are never rewritten",
                           model=version.model)
        pricing.add_versions(conn, [version], origin)
    return version


def parse_import(raw: bytes, fmt: str, now: datetime | None = None) -> ImportResult:
    """Every version of a price file, checked in full; raises on the first bad row."""
    if fmt not in IMPORT_FORMATS:
        raise InvalidInput(f"format: {fmt!r} is not one of {', '.join(IMPORT_FORMATS)}",
                           field="format")
    if fmt == "litellm":
        return parse_litellm(raw, effective_from=now or datetime.now(UTC), origin="file")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPrice(f"file: not valid JSON ({exc})", field="file") from None
    documents = data if isinstance(data, list) else [data]
    versions, aliases = [], []
    for index, document in enumerate(documents):
        entries = parse_catalog_file(document, origin=f"document {index}")
        versions += entries.versions
        aliases += entries.aliases
    return ImportResult(CatalogEntries(versions, aliases), [])


def import_file(engine: Engine, raw: bytes, fmt: str, now: datetime | None = None
                ) -> ImportSummary:
    """Store a price file's versions. A LiteLLM file carries no dates, so its prices count from
    now, and only where they differ from the version in force (importing it twice adds
    nothing); a meterline file's dated versions are added where not yet stored."""
    moment = now or datetime.now(UTC)
    result = parse_import(raw, fmt, moment)
    with engine.begin() as conn:
        if fmt == "litellm":
            plan = plan_update(pricing.load_pricebook(conn), result.versions, now=moment)
            added = pricing.add_versions(conn, plan.new_versions, f"import:{fmt}",
                                         result.aliases)
            return ImportSummary(added, len(plan.unchanged), result.skipped, result.duplicates,
                                 plan.conflicts)
        added = pricing.add_versions(conn, result.versions, f"import:{fmt}", result.aliases)
    return ImportSummary(added, len(result.versions) - added, result.skipped, result.duplicates)


def update_from(engine: Engine, raw: bytes, now: datetime | None = None) -> dict[str, Any]:
    """Add versions effective ``now`` for every model whose prices changed; add new models."""
    moment = now or datetime.now(UTC)
    incoming = load_update_source(raw, now=moment)
    with engine.begin() as conn:
        plan = plan_update(pricing.load_pricebook(conn), incoming, now=moment)
        pricing.add_versions(conn, plan.new_versions, "update")
    return {"new_models": plan.new_models, "changed_models": plan.changed_models,
            "unchanged": len(plan.unchanged), "added_versions": len(plan.new_versions),
            "conflicts": plan.conflicts}


def set_fx(engine: Engine, base: str, quote: str, rate: object,
           effective_from: datetime | None = None) -> FxRate:
    fx = FxRate.parse(base, quote, rate, effective_from or datetime.now(UTC))
    with engine.begin() as conn:
        clash = conn.execute(select(fx_rates.c.id).where(
            fx_rates.c.base == fx.base, fx_rates.c.quote == fx.quote,
            fx_rates.c.effective_from == fx.effective_from)).first()
        if clash is not None:
            raise Conflict(f"a {fx.base}->{fx.quote} rate effective from "
                           f"{fx.effective_from.isoformat()} exists; rates are never rewritten")
        pricing.add_fx_rate(conn, fx)
    return fx
