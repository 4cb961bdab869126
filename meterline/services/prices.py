"""Managing prices and FX rates: add a version, import a file, update from a newer catalog.

Every operation only adds rows: history is never rewritten. An import or update is checked in
full before anything is written, so a file with one bad row changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import Engine

from meterline.catalog import genai
from meterline.catalog.litellm import (
    ImportResult,
    is_litellm_document,
    loads_exact,
    parse_litellm,
)
from meterline.catalog.shipped import CatalogEntries, parse_catalog_file
from meterline.catalog.update import charges_same, load_update_source, plan_update
from meterline.domain.fx import FxRate
from meterline.domain.model_match import MatchRule
from meterline.domain.money import format_decimal
from meterline.domain.pricebook import Layer, PriceBook
from meterline.domain.prices import PriceVersion
from meterline.errors import Conflict, InvalidInput, InvalidPrice
from meterline.store import audit, pricing
from meterline.store.audit import Actor

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


def add_version(engine: Engine, data: Mapping[str, Any], origin: str = "manual", *,
                actor: Actor | None) -> PriceVersion:
    """Add one of the operator's price versions, given in the catalog shape with ``model`` as
    ``provider/model``. One the operator already has at that start and currency is refused
    (history is never rewritten); other layers' versions at the same start are not touched."""
    model = data.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise InvalidPrice("model: give it as provider/model", field="model")
    version = PriceVersion.parse(data)
    layer = Layer.of_origin(origin)
    with engine.begin() as conn:
        same_start = pricing.versions_starting(conn, version.model, version.effective_from)
        if any(currency == version.currency and label == layer.label
               for _, currency, label in same_start):
            raise Conflict(f"{version.model} already has a {version.currency} price version "
                           f"effective from {version.effective_from.isoformat()}; versions "
                           "are never rewritten", model=version.model)
        taken = {taken_id for taken_id, _, _ in same_start}
        for candidate in (version.id, f"{version.id}#{version.currency}",
                          f"{version.id}#{layer.label}-{version.currency}"):
            if candidate not in taken:
                version = replace(version, id=candidate)
                break
        pricing.add_versions(conn, [version], origin, layer=layer)
        audit.record(conn, actor, "price.set", target=version.id,
                     details=version.to_json() | {"layer": layer.label})
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


def import_file(engine: Engine, raw: bytes, fmt: str, now: datetime | None = None, *,
                actor: Actor | None) -> ImportSummary:
    """Store a price file's versions. A LiteLLM file carries no dates, so its prices count from
    now, and only where they differ from the LiteLLM layer's version in force (importing it
    twice adds nothing; higher layers are never compared with it, nor replaced by it: see
    :mod:`meterline.domain.pricebook`); a meterline file's dated versions are the operator's
    own and are added where not yet stored."""
    moment = now or datetime.now(UTC)
    result = parse_import(raw, fmt, moment)
    with engine.begin() as conn:
        if fmt == "litellm":
            book = pricing.load_pricebook(conn).only(Layer.LITELLM)
            plan = plan_update(book, result.versions, now=moment)
            added = pricing.add_versions(conn, _tagged(plan.new_versions, Layer.LITELLM),
                                         f"import:{fmt}", result.aliases)
            summary = ImportSummary(added, len(plan.unchanged), result.skipped,
                                    result.duplicates, plan.conflicts)
        else:
            added = pricing.add_versions(conn, result.versions, f"import:{fmt}",
                                         result.aliases)
            summary = ImportSummary(added, len(result.versions) - added, result.skipped,
                                    result.duplicates)
        audit.record(conn, actor, "price.import", target=fmt, details={
            "format": fmt, "bytes": len(raw), "added": summary.added,
            "already_present": summary.already_present, "skipped": len(summary.skipped),
            "conflicts": len(summary.conflicts)})
    return summary


@dataclass
class UpdateSource:
    """What an update reads: its versions, the layer they belong to, and name rules."""

    layer: Layer
    versions: list[PriceVersion]
    aliases: list[tuple[str, str]] = field(default_factory=list)
    rules: list[tuple[str, MatchRule, str]] | None = None
    label: str = ""
    #: What the source left out, where it says: "model: reason" of entries it could not use.
    skipped: list[str] | None = None
    #: genai-prices: model → price keys (and variants or windows) meterline does not model.
    not_modelled: dict[str, list[str]] | None = None


def installed_genai_source() -> UpdateSource:
    """The genai-prices database of the installed package."""
    database = genai.translate(genai.installed_providers(), release=genai.installed_version())
    return _genai_source(database, f"genai-prices {genai.installed_version()} (installed)")


def read_update_source(raw: bytes, now: datetime) -> UpdateSource:
    """An update file: genai-prices' ``data.json``, LiteLLM's file (each into its own layer),
    or meterline's catalog format (the operator's own prices)."""
    document = loads_exact(raw, origin="update")
    if genai.is_genai_document(document):
        database = genai.translate(genai.providers_from_json(document), release="data.json")
        return _genai_source(database, "genai-prices data.json")
    if is_litellm_document(document):
        result = parse_litellm(document, effective_from=now, origin="update")
        return UpdateSource(Layer.LITELLM, result.versions, result.aliases,
                            label="LiteLLM file", skipped=result.skipped)
    return UpdateSource(Layer.OPERATOR, load_update_source(raw, now=now), label="meterline file")


def _genai_source(database: genai.GenaiCatalog, label: str) -> UpdateSource:
    return UpdateSource(Layer.GENAI_PRICES, database.versions, database.aliases, database.rules,
                        label=label, skipped=database.skipped,
                        not_modelled=database.unmodelled)


@dataclass(frozen=True)
class UpdateReport:
    """What an update added to its source's layer (or, ``dry_run``, would add: then
    ``versions`` lists the new versions), with what the source itself left out."""

    source: str
    layer: Layer
    dry_run: bool
    new_models: list[str]
    changed_models: list[str]
    unchanged: int
    added_versions: int
    conflicts: list[str]
    versions: list[PriceVersion]
    skipped: list[str] | None = None
    not_modelled: dict[str, list[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "layer": self.layer.label, "dry_run": self.dry_run,
            "new_models": self.new_models, "changed_models": self.changed_models,
            "unchanged": self.unchanged, "added_versions": self.added_versions,
            "conflicts": self.conflicts, "versions": [v.to_json() for v in self.versions]}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        if self.not_modelled is not None:
            out["not_modelled"] = self.not_modelled
        return out


def update_from(engine: Engine, source: UpdateSource, now: datetime | None = None,
                dry_run: bool = False, *, actor: Actor | None) -> UpdateReport:
    """Bring the source's layer up to date: new models with their own dates, a version
    effective ``now`` for every model whose price changed. Only that layer is compared and
    written; with ``dry_run`` nothing is written."""
    moment = now or datetime.now(UTC)
    with engine.begin() as conn:
        book = pricing.load_pricebook(conn).only(source.layer)
        plan = plan_update(book, source.versions, now=moment)
        if not dry_run:
            pricing.add_versions(conn, _tagged(plan.new_versions, source.layer),
                                 _ORIGINS[source.layer], source.aliases, layer=source.layer)
            if source.rules is not None:
                pricing.save_rules(conn, source.layer, source.rules)
            audit.record(conn, actor, "price.update", target=source.layer.label, details={
                "source": source.label, "layer": source.layer.label,
                "added_versions": len(plan.new_versions), "new_models": len(plan.new_models),
                "changed_models": len(plan.changed_models),
                "conflicts": len(plan.conflicts)})
    return UpdateReport(source.label, source.layer, dry_run, plan.new_models,
                        plan.changed_models, len(plan.unchanged), len(plan.new_versions),
                        plan.conflicts, plan.new_versions if dry_run else [],
                        source.skipped, source.not_modelled)


_ORIGINS: Final = {Layer.OPERATOR: "update", Layer.CURATED: "catalog",
                   Layer.GENAI_PRICES: f"update:{genai.ORIGIN}", Layer.LITELLM: "update:litellm"}


def _tagged(versions: list[PriceVersion], layer: Layer) -> list[PriceVersion]:
    """Ids of a database layer's versions carry the layer, so they never clash with the
    operator's or the curated catalog's ``model@start`` ids."""
    if layer not in (Layer.GENAI_PRICES, Layer.LITELLM):
        return versions
    suffix = f"#{layer.label}"
    return [v if v.id.endswith(suffix) else replace(v, id=f"{v.model}@"
                                                   f"{v.effective_from.isoformat()}{suffix}")
            for v in versions]


@dataclass(frozen=True)
class LayerPrice:
    """One layer's version of a model in force: whether it is the one charged (``in_force``,
    the highest layer in its currency) and whether it charges every call as that one does."""

    layer: Layer
    version: PriceVersion
    in_force: bool
    agrees: bool

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer.label, "currency": self.version.currency,
                "version": self.version.id, "source": self.version.source,
                "in_force": self.in_force, "agrees": self.agrees}


@dataclass(frozen=True)
class ModelSources:
    """Which layers price a model, per currency, and whether they disagree."""

    model: str
    layers: list[LayerPrice]

    @property
    def priced_by(self) -> list[str]:
        return [f"{entry.layer.label} {entry.version.currency}"
                for entry in self.layers if entry.in_force]

    @property
    def disagree(self) -> bool:
        return not all(entry.agrees for entry in self.layers)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "priced_by": self.priced_by, "disagree": self.disagree,
                "layers": [entry.to_json() for entry in self.layers]}


def sources(book: PriceBook, at: datetime, *, model: str | None = None,
            provider: str | None = None, disagreeing: bool = False) -> list[ModelSources]:
    """Per model: which layer prices it at ``at`` (per currency), what every other layer would
    charge, and whether they agree (charge every call the same)."""
    names = [book.resolve(model)] if model else book.models()
    if provider:
        names = [name for name in names if name.startswith(f"{provider}/")]
    out = []
    for name in names:
        entries = book.in_force_by_layer(name, at)
        if not entries:
            continue
        winners = {currency: book.version_at(name, at, currency)
                   for currency in {entry.version.currency for entry in entries}}
        found = ModelSources(name, [
            LayerPrice(entry.layer, entry.version,
                       entry.version is winners[entry.version.currency],
                       charges_same(entry.version, winners[entry.version.currency]))
            for entry in entries])
        if disagreeing and not found.disagree:
            continue
        out.append(found)
    return out


def set_fx(engine: Engine, base: str, quote: str, rate: object,
           effective_from: datetime | None = None, *, actor: Actor | None) -> FxRate:
    fx = FxRate.parse(base, quote, rate, effective_from or datetime.now(UTC))
    with engine.begin() as conn:
        if pricing.fx_rate_exists(conn, fx.base, fx.quote, fx.effective_from):
            raise Conflict(f"a {fx.base}->{fx.quote} rate effective from "
                           f"{fx.effective_from.isoformat()} exists; rates are never rewritten")
        pricing.add_fx_rate(conn, fx)
        audit.record(conn, actor, "fx.set", target=f"{fx.base}/{fx.quote}", details={
            "base": fx.base, "quote": fx.quote, "rate": format_decimal(fx.rate),
            "effective_from": fx.effective_from.isoformat()})
    return fx
