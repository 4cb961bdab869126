"""The price book: every price version by model, and the name rules of SPEC §2.

A model is named ``provider/model``; an alias (a dated snapshot id) maps to its model; a bare
name resolves when exactly one provider has it. The version in force at a time is the one with
the latest ``effective_from`` not after that time.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable
from datetime import datetime

from meterline.domain.prices import PriceVersion
from meterline.errors import PriceNotFound, UnknownModel


class PriceBook:
    def __init__(self, versions: Iterable[PriceVersion] = (),
                 aliases: Iterable[tuple[str, str]] = ()) -> None:
        self._versions: dict[str, list[PriceVersion]] = {}
        self._starts: dict[str, list[datetime]] = {}
        self._aliases: dict[str, str] = {}
        self._bare: dict[str, set[str]] = {}
        for version in versions:
            self.add(version)
        for alias, model in aliases:
            self.add_alias(alias, model)

    def add(self, version: PriceVersion) -> None:
        series = self._versions.setdefault(version.model, [])
        series[:] = [v for v in series if v.effective_from != version.effective_from]
        series.append(version)
        series.sort(key=lambda v: v.effective_from)
        self._starts[version.model] = [v.effective_from for v in series]
        self._index_bare(version.model, version.model)

    def add_alias(self, alias: str, model: str) -> None:
        self._aliases[alias] = model
        self._index_bare(alias, model)

    def _index_bare(self, name: str, model: str) -> None:
        _, _, bare = name.partition("/")
        if bare:
            self._bare.setdefault(bare, set()).add(model)

    def __contains__(self, model: str) -> bool:
        return model in self._versions

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a model or an alias of one."""
        return name in self._versions or name in self._aliases

    def __len__(self) -> int:
        return len(self._versions)

    def models(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, model: str | None = None) -> list[PriceVersion]:
        if model is not None:
            return list(self._versions.get(model, []))
        return [v for m in sorted(self._versions) for v in self._versions[m]]

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def resolve(self, name: str) -> str:
        """The canonical ``provider/model`` for a name; UnknownModel lists close names."""
        if name in self._versions:
            return name
        if name in self._aliases:
            return self._aliases[name]
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

    def close_names(self, name: str) -> list[str]:
        pool = [*self._versions, *self._aliases, *self._bare]
        return difflib.get_close_matches(name, pool, n=5, cutoff=0.6)

    def _suggest(self, name: str) -> str:
        close = self.close_names(name)
        return f"; did you mean {', '.join(close)}?" if close else ""

    def version_at(self, model: str, at: datetime) -> PriceVersion:
        series = self._versions.get(model)
        if not series:
            raise PriceNotFound(f"no price for {model}", model=model)
        index = bisect.bisect_right(self._starts[model], at) - 1
        if index < 0:
            raise PriceNotFound(
                f"no price for {model} in force at {at.isoformat()}; the first starts "
                f"{series[0].effective_from.isoformat()}", model=model, at=at.isoformat(),
            )
        return series[index]
