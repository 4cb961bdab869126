"""Which upstream serves a requested model (SPEC §2).

A request's ``model`` is ``provider/model`` with a configured provider, a route alias from the
config, or a bare name that the price catalog knows under exactly one configured provider. A
model the catalog does not know is refused (404 with close names) unless its provider is
configured with ``allow_unknown_models``: a typo must not reach a provider and cost money.
The upstream gets the model id without the provider prefix; the ledger and the price lookup use
the catalog's canonical name where there is one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meterline.config import ProviderConfig, RouteConfig
from meterline.domain.pricebook import PriceBook
from meterline.errors import NotFound, UnknownModel


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderConfig
    upstream_model: str
    #: ``provider/model`` as the ledger names it (canonical when the catalog knows it).
    model: str


class Router:
    def __init__(self, providers: Iterable[ProviderConfig], routes: Iterable[RouteConfig]
                 ) -> None:
        self.providers: Mapping[str, ProviderConfig] = {p.name: p for p in providers}
        self.routes: Mapping[str, str] = {r.model: r.target for r in routes}

    def resolve(self, requested: str, book: PriceBook) -> Target:
        """The upstream for a requested model name; UnknownModel lists close names."""
        name = self.routes.get(requested, requested)
        provider_name, slash, upstream = name.partition("/")
        if slash and provider_name in self.providers:
            provider = self.providers[provider_name]
            if book.knows(name) or provider.allow_unknown_models:
                return Target(provider, upstream, self._canonical(name, book))
        if not slash:
            for candidate in self._bare_candidates(name, book):
                provider_name, _, upstream = candidate.partition("/")
                return Target(self.providers[provider_name], upstream, candidate)
        raise UnknownModel(f"model {requested!r} is not served here" + self._hint(requested, book),
                           model=requested, candidates=self.close_names(requested, book))

    def _canonical(self, name: str, book: PriceBook) -> str:
        try:
            return book.resolve(name)
        except NotFound:
            return name

    def _bare_candidates(self, name: str, book: PriceBook) -> list[str]:
        found = []
        for provider in self.providers:
            qualified = f"{provider}/{name}"
            if book.knows(qualified):
                found.append(book.resolve(qualified))
        if len(found) > 1:
            raise UnknownModel(f"model {name!r} is ambiguous: name one of "
                               f"{', '.join(sorted(found))}", model=name, candidates=found)
        return found

    def servable(self, book: PriceBook) -> list[str]:
        """Every model id a client may ask for: catalog models of configured providers, and
        route aliases."""
        models = [m for m in book.models() if m.split("/", 1)[0] in self.providers]
        return sorted({*models, *self.routes})

    def close_names(self, requested: str, book: PriceBook) -> list[str]:
        pool = self.servable(book)
        pool += [m.split("/", 1)[1] for m in pool if "/" in m]
        return difflib.get_close_matches(requested, pool, n=5, cutoff=0.5)

    def _hint(self, requested: str, book: PriceBook) -> str:
        close = self.close_names(requested, book)
        return f"; did you mean {', '.join(close)}?" if close else ""
