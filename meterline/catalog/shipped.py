"""Load the shipped catalog (``data/<provider>.json``) into price versions, offline.

A catalog file is ``{"provider": NAME, "models": [ENTRY, ...]}``; each entry is a price version in
the shape :meth:`PriceVersion.parse` reads, plus optional ``aliases``. Model names get the
provider's prefix. The format is documented in docs/prices.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
    for index, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model"), str):
            raise InvalidPrice(f"{origin}: models[{index}]: needs a model name", field="model")
        name = _qualified(provider, entry["model"])
        try:
            versions.append(PriceVersion.parse(entry, model=name))
        except InvalidPrice as exc:
            raise InvalidPrice(f"{origin}: models[{index}]: {exc.message}",
                               field=exc.field) from None
        for alias in entry.get("aliases", []) or []:
            aliases.append((_qualified(provider, str(alias)), name))
    return CatalogEntries(versions, aliases)


def _qualified(provider: str, model: str) -> str:
    return model if model.startswith(f"{provider}/") else f"{provider}/{model}"


def _shipped_files() -> Iterator[tuple[str, Any]]:
    folder = resources.files("meterline.catalog").joinpath("data")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            yield item.name, orjson.loads(item.read_bytes())


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
