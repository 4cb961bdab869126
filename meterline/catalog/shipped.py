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
from typing import Any

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
    for index, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model"), str):
            raise InvalidPrice(f"{origin}: models[{index}]: needs a model name", field="model")
        name = _qualified(provider, entry["model"])
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
