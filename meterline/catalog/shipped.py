"""Load the shipped catalog (``data/<provider>.json``) into price versions, offline.

A catalog file is ``{"provider": NAME, "models": [ENTRY, ...]}``; each entry is a price version in
the shape :meth:`PriceVersion.parse` reads, plus optional ``aliases``. Model names get the
provider's prefix. The format is documented in docs/prices.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

import orjson

from meterline.domain.pricebook import Layer, PriceBook
from meterline.domain.prices import PriceVersion
from meterline.errors import InvalidPrice


@dataclass(frozen=True, slots=True)
class CatalogEntries:
    versions: list[PriceVersion]
    aliases: list[tuple[str, str]]


def parse_catalog_file(data: object, *, origin: str = "catalog") -> CatalogEntries:
    """Parse one catalog document; an error names the file, the entry and the field."""
    if not isinstance(data, Mapping):
        raise InvalidPrice(f"{origin}: must be an object with provider and models")
    provider = data.get("provider")
    models = data.get("models")
    if not isinstance(provider, str) or not provider:
        raise InvalidPrice(f"{origin}: provider missing", field="provider")
    if not isinstance(models, list):
        raise InvalidPrice(f"{origin}: models must be a list", field="models")
    versions: list[PriceVersion] = []
    aliases: list[tuple[str, str]] = []
    ids: set[str] = set()
    batch = batch_variant(data.get("batch"), origin)
    for index, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model"), str):
            raise InvalidPrice(f"{origin}: models[{index}]: needs a model name", field="model")
        name = _qualified(provider, entry["model"])
        if batch is not None:
            entry = with_batch_variant(entry, batch)
        try:
            version = PriceVersion.parse(entry, model=name)
        except InvalidPrice as exc:
            raise InvalidPrice(f"{origin}: models[{index}]: {exc.message}",
                               field=exc.field) from None
        if version.id in ids:
            # The same model and start in another currency: ids stay unique.
            version = replace(version, id=f"{version.id}#{version.currency}")
        ids.add(version.id)
        versions.append(version)
        for alias in entry.get("aliases", []) or []:
            aliases.append((_qualified(provider, str(alias)), name))
    return CatalogEntries(versions, aliases)


#: The attribute a batch result is priced with (gateway/batches.py), as genai-prices names it.
BATCH_MATCH: Final[Mapping[str, str]] = MappingProxyType({"processing": "batch"})


def batch_variant(value: object, origin: str) -> dict[str, Any] | None:
    """A catalog file's provider-wide batch discount (``"batch": {"multiplier": "0.5",
    "source": …}``) as the variant each of its versions gets, unless it prices batch itself."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or "multiplier" not in value:
        raise InvalidPrice(f"{origin}: batch must be an object with a multiplier", field="batch")
    return {"match": dict(BATCH_MATCH), "multiplier": value["multiplier"]}


def with_batch_variant(entry: Mapping[str, Any], variant: Mapping[str, Any]
                       ) -> Mapping[str, Any]:
    """The entry with the provider's batch variant, if it is priced per token (the batch
    discount is on tokens; per-use and per-image prices keep theirs) and none of its own
    variants says ``processing``. It comes last: a service tier's variant, matched first, is
    not a batch call's."""
    if entry.get("billing_type", "token") != "token":
        return entry
    variants = entry.get("variants") or []
    if any(isinstance(v, Mapping) and isinstance(v.get("match"), Mapping)
           and "processing" in v["match"] for v in variants):
        return entry
    return {**entry, "variants": [*variants, dict(variant)]}


def _qualified(provider: str, model: str) -> str:
    return model if model.startswith(f"{provider}/") else f"{provider}/{model}"


def _shipped_bytes() -> Iterator[tuple[str, bytes]]:
    folder = resources.files("meterline.catalog").joinpath("data")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            yield item.name, item.read_bytes()


def _shipped_files() -> Iterator[tuple[str, Any]]:
    for name, raw in _shipped_bytes():
        yield name, orjson.loads(raw)


def fingerprint() -> str:
    """Changes whenever a shipped file does: a database synced with this one needs no sync."""
    digest = hashlib.sha256()
    for name, raw in _shipped_bytes():
        digest.update(name.encode() + b"\0" + raw + b"\0")
    return digest.hexdigest()


def load_catalog() -> PriceBook:
    """Every shipped price version, with aliases, as a price book."""
    book = PriceBook()
    for name, data in _shipped_files():
        entries = parse_catalog_file(data, origin=name)
        for version in entries.versions:
            book.add(version, Layer.CURATED)
        for alias, model in entries.aliases:
            book.add_alias(alias, model)
    return book
