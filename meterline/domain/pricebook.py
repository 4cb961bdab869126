"""The price book: every price version by model, and the name rules of SPEC §2.

A model is named ``provider/model``; an alias (a dated snapshot id) maps to its model; a name
rule of a price database (``starts_with``, ``regex``, …: :mod:`meterline.domain.model_match`)
maps a family of names to its model; a bare name resolves when exactly one provider has it.

Versions come in **layers** (:class:`Layer`): the operator's own prices over meterline's curated
catalog over genai-prices over LiteLLM imports. The version that prices a call at a moment is
chosen in three steps:

1. **currency**: where the model has versions in the tenant's currency in force at that moment,
   only those count (a USD tenant is not priced in CNY because a CNY version exists, and the other
   way round); otherwise every currency counts;
2. **layer**: of those in force, the highest layer wins — a lower layer never overrides a higher
   one, whatever its dates;
3. **time**: within that layer, the latest ``effective_from`` not after the moment.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Final, NamedTuple

from meterline.domain.model_match import MatchRule
from meterline.domain.prices import Prices, PriceVersion
from meterline.domain.rating import Rating, rate
from meterline.domain.usage import TOOL_METERS, Usage
from meterline.errors import PriceNotFound, UnknownModel

#: The model name, under a provider, of the prices of the provider's built-in tools
#: (``openai/tools``): a catalog entry like a model's, never served as one.
TOOLS_ENTRY: Final = "tools"
_NO_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType({})


def is_tools_entry(name: str) -> bool:
    return name.partition("/")[2] == TOOLS_ENTRY


class Layer(IntEnum):
    """Where a version comes from; a higher layer wins (see the module doc)."""

    LITELLM = 1
    GENAI_PRICES = 2
    CURATED = 3
    OPERATOR = 4

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def of_origin(cls, origin: str) -> Layer:
        """The layer of a stored version's ``origin`` (how it was added)."""
        if origin == "catalog":
            return cls.CURATED
        if origin.endswith("genai-prices"):
            return cls.GENAI_PRICES
        if origin.endswith("litellm"):
            return cls.LITELLM
        return cls.OPERATOR  # added by hand, from the API or from the operator's own files

    @classmethod
    def parse(cls, label: str) -> Layer:
        for layer, name in _LABELS.items():
            if name == label:
                return layer
        raise ValueError(f"unknown layer {label!r}")


_LABELS: Final = {Layer.LITELLM: "litellm", Layer.GENAI_PRICES: "genai-prices",
                  Layer.CURATED: "curated", Layer.OPERATOR: "operator"}


class Entry(NamedTuple):
    version: PriceVersion
    layer: Layer


class _Timeline(NamedTuple):
    starts: list[datetime]
    versions: list[PriceVersion]


#: How many resolved names a book remembers (names come from requests: keep it bounded).
_MAX_RESOLVED: Final = 10_000


class PriceBook:
    def __init__(self, versions: Iterable[PriceVersion] = (),
                 aliases: Iterable[tuple[str, str]] = (), layer: Layer = Layer.OPERATOR) -> None:
        self._entries: dict[str, dict[tuple[datetime, str, Layer], PriceVersion]] = {}
        # Per model: a timeline per currency, and one over every currency (key None).
        self._timelines: dict[str, dict[str | None, _Timeline]] = {}
        self._aliases: dict[str, str] = {}
        self._bare: dict[str, set[str]] = {}
        self._rules: dict[str, list[tuple[MatchRule, str]]] = {}
        self._resolved: dict[str, str | None] = {}
        for version in versions:
            self.add(version, layer)
        for alias, model in aliases:
            self.add_alias(alias, model)

    def add(self, version: PriceVersion, layer: Layer = Layer.OPERATOR) -> None:
        """Add a version; one of the same model, start, currency and layer is replaced."""
        series = self._entries.setdefault(version.model, {})
        series[(version.effective_from, version.currency, layer)] = version
        self._timelines.pop(version.model, None)
        self._index_bare(version.model, version.model)
        self._resolved.clear()

    def add_alias(self, alias: str, model: str) -> None:
        self._aliases[alias] = model
        self._index_bare(alias, model)
        self._resolved.clear()

    def add_rule(self, provider: str, rule: MatchRule, model: str) -> None:
        """Names ``provider/x`` whose lower-cased ``x`` matches ``rule`` mean ``model``; rules
        are tried in the order they were added, after exact names and aliases."""
        self._rules.setdefault(provider, []).append((rule, model))
        self._resolved.clear()

    def _index_bare(self, name: str, model: str) -> None:
        _, _, bare = name.partition("/")
        if bare == TOOLS_ENTRY:
            return
        if bare:
            self._bare.setdefault(bare, set()).add(model)

    def __contains__(self, model: str) -> bool:
        return model in self._entries

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a model, an alias of one, or matched by a name rule (a
        provider's tool prices are not a model)."""
        if name in self._entries:
            return not is_tools_entry(name)
        return name in self._aliases or self._by_rule(name) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def models(self) -> list[str]:
        return sorted(self._entries)

    def entries(self, model: str) -> list[Entry]:
        """Every version of a model with its layer, by start, then layer."""
        found = self._entries.get(model, {})
        return [Entry(found[key], key[2]) for key in sorted(found)]

    def versions(self, model: str | None = None) -> list[PriceVersion]:
        if model is not None:
            return [entry.version for entry in self.entries(model)]
        return [entry.version for m in sorted(self._entries) for entry in self.entries(m)]

    def layered(self) -> list[Entry]:
        """Every version with its layer."""
        return [entry for m in sorted(self._entries) for entry in self.entries(m)]

    def only(self, *layers: Layer) -> PriceBook:
        """A book of this one's versions in ``layers`` (aliases and rules kept)."""
        book = PriceBook()
        for series in self._entries.values():
            for (_, _, layer), version in series.items():
                if layer in layers:
                    book.add(version, layer)
        book._aliases = dict(self._aliases)
        book._bare = {k: set(v) for k, v in self._bare.items()}
        book._rules = {k: list(v) for k, v in self._rules.items()}
        return book

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def rules(self) -> dict[str, list[tuple[MatchRule, str]]]:
        return {provider: list(rules) for provider, rules in self._rules.items()}

    def resolve(self, name: str) -> str:
        """The canonical ``provider/model`` for a name; UnknownModel lists close names."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        by_rule = self._by_rule(name)
        if by_rule is not None:
            return by_rule
        if "/" not in name:
            candidates = self._bare.get(name, set())
            if len(candidates) == 1:
                return next(iter(candidates))
            if len(candidates) > 1:
                raise UnknownModel(
                    f"model {name!r} is ambiguous: name one of {', '.join(sorted(candidates))}",
                    model=name, candidates=sorted(candidates),
                )
        raise UnknownModel(
            f"unknown model {name!r}" + self._suggest(name), model=name,
            candidates=self.close_names(name),
        )

    def _by_rule(self, name: str) -> str | None:
        if name in self._resolved:
            return self._resolved[name]
        provider, slash, rest = name.partition("/")
        found: str | None = None
        if slash:
            lowered = f"{provider}/{rest.lower()}"
            if lowered != name and (lowered in self._entries or lowered in self._aliases):
                found = self._aliases.get(lowered, lowered)
            else:
                rest = rest.lower()
                for rule, model in self._rules.get(provider, ()):
                    if rule.matches(rest):
                        found = model
                        break
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[name] = found
        return found

    def close_names(self, name: str) -> list[str]:
        pool = [*self._entries, *self._aliases, *self._bare]
        return difflib.get_close_matches(name, pool, n=5, cutoff=0.6)

    def _suggest(self, name: str) -> str:
        close = self.close_names(name)
        return f"; did you mean {', '.join(close)}?" if close else ""

    def version_at(self, model: str, at: datetime, currency: str | None = None) -> PriceVersion:
        """The version that prices a call of ``model`` at ``at`` for a tenant billed in
        ``currency`` (None: any currency); see the module doc."""
        timelines = self._timelines.get(model)
        if timelines is None:
            if model not in self._entries:
                raise PriceNotFound(f"no price for {model}", model=model)
            timelines = self._timelines[model] = self._build(model)
        if currency is not None:
            own = timelines.get(currency)
            if own is not None:
                index = bisect.bisect_right(own.starts, at) - 1
                if index >= 0:
                    return own.versions[index]
        every = timelines[None]
        index = bisect.bisect_right(every.starts, at) - 1
        if index < 0:
            raise PriceNotFound(
                f"no price for {model} in force at {at.isoformat()}; the first starts "
                f"{every.starts[0].isoformat()}", model=model, at=at.isoformat(),
            )
        return every.versions[index]

    def tool_prices(self, version: PriceVersion, at: datetime) -> Prices | None:
        """The prices of the built-in tools of ``version``'s provider at ``at``, in its
        currency: the ``<provider>/tools`` entry (the catalog's, or the operator's own), chosen
        like any model's. None when the provider has none in that currency."""
        name = f"{version.model.split('/', 1)[0]}/{TOOLS_ENTRY}"
        if name not in self._entries:
            return None
        try:
            tools = self.version_at(name, at, version.currency)
        except PriceNotFound:
            return None
        return tools.prices if tools.currency == version.currency else None

    def rate(self, usage: Usage, version: PriceVersion, at: datetime,
             attributes: Mapping[str, str] = _NO_ATTRIBUTES) -> Rating:
        """:func:`~meterline.domain.rating.rate`, with the provider's tool prices where the
        call used built-in tools."""
        quantities = usage.quantities
        used_tools = any(meter in quantities for meter in TOOL_METERS)
        return rate(usage, version, at, attributes,
                    self.tool_prices(version, at) if used_tools else None)

    def in_force_by_layer(self, model: str, at: datetime) -> list[Entry]:
        """For each layer and currency with a version of ``model`` in force at ``at``, that
        version (highest layer first): what each source would charge, winner or not."""
        latest: dict[tuple[Layer, str], PriceVersion] = {}
        for (start, currency, layer), version in sorted(self._entries.get(model, {}).items()):
            if start <= at:
                latest[(layer, currency)] = version
        return [Entry(latest[key], key[0]) for key in sorted(latest, reverse=True)]

    def _build(self, model: str) -> dict[str | None, _Timeline]:
        series = self._entries[model]
        keys = sorted(series)
        currencies = {currency for _, currency, _ in keys}
        timelines: dict[str | None, _Timeline] = {None: _timeline(series, keys)}
        if len(currencies) > 1:
            for currency in currencies:
                timelines[currency] = _timeline(series, [k for k in keys if k[1] == currency])
        else:
            timelines[next(iter(currencies))] = timelines[None]
        return timelines


def _timeline(series: dict[tuple[datetime, str, Layer], PriceVersion],
              keys: list[tuple[datetime, str, Layer]]) -> _Timeline:
    """At each start, the winner among the versions in force: highest layer, then latest."""
    starts: list[datetime] = []
    versions: list[PriceVersion] = []
    for start in sorted({key[0] for key in keys}):
        in_force = [key for key in keys if key[0] <= start]
        winner = series[max(in_force, key=lambda key: (key[2], key[0]))]
        if not versions or versions[-1] is not winner:
            starts.append(start)
            versions.append(winner)
    return _Timeline(starts, versions)
