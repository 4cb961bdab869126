"""Which upstream serves a requested model (SPEC §2).

A request's ``model`` is ``provider/model`` with a configured provider, a route alias from the
config, or a bare name that the price catalog knows under exactly one configured provider. A
model the catalog does not know is refused (404 with close names) unless its provider is
configured with ``allow_unknown_models``: a typo must not reach a provider and cost money.
The upstream gets the model id without the provider prefix; the ledger and the price lookup use
the catalog's canonical name where there is one. A Vertex AI provider serves Google's and
Anthropic's models, each in its publisher's wire format, priced where docs/providers.md says.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from meterline.config import ProviderConfig, RouteConfig
from meterline.domain.pricebook import PriceBook, is_tools_entry
from meterline.errors import NotFound, UnknownModel
from meterline.providers import vertex


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
        #: Vertex AI providers as they serve one publisher's models (its wire format).
        self._published: dict[tuple[str, str], ProviderConfig] = {}

    def resolve(self, requested: str, book: PriceBook) -> Target:
        """The upstream for a requested model name; UnknownModel lists close names."""
        name = self.routes.get(requested, requested)
        provider_name, slash, upstream = name.partition("/")
        if slash and provider_name in self.providers:
            provider = self.providers[provider_name]
            if provider.kind == "vertex":
                found = self._vertex(provider, upstream, book, provider.allow_unknown_models)
                if found is not None:
                    return found
            elif book.knows(name) or provider.allow_unknown_models:
                return Target(provider, upstream, self._canonical(name, book))
        if not slash:
            for target in self._bare_candidates(name, book):
                return target
        raise UnknownModel(f"model {requested!r} is not served here" + self._hint(requested, book),
                           model=requested, candidates=self.close_names(requested, book))

    def _canonical(self, name: str, book: PriceBook) -> str:
        try:
            return book.resolve(name)
        except NotFound:
            return name

    def _vertex(self, provider: ProviderConfig, model: str, book: PriceBook, unknown: bool
                ) -> Target | None:
        """A Vertex AI model: its publisher's wire format, and its price where the catalog
        has one (``providers.vertex.priced_names``: a Gemini model at the Gemini API's)."""
        publisher = vertex.publisher_of(model)
        serving = self._published.get((provider.name, publisher))
        if serving is None:
            serving = self._published[provider.name, publisher] = replace(
                provider, publisher=publisher)
        for priced in vertex.priced_names(provider.name, model):
            if book.knows(priced):
                return Target(serving, model, self._canonical(priced, book))
        return Target(serving, model, f"{provider.name}/{model}") if unknown else None

    def _bare_candidates(self, name: str, book: PriceBook) -> list[Target]:
        found: list[Target] = []
        borrowed: list[Target] = []
        for provider in self.providers.values():
            qualified = f"{provider.name}/{name}"
            if provider.kind == "vertex":
                target = self._vertex(provider, name, book, unknown=False)
                # Priced under another provider's name (a Gemini model at the Gemini API's
                # price): Vertex serves it only if no provider has the name as its own.
                if target is not None:
                    (found if book.knows(qualified) else borrowed).append(target)
            elif book.knows(qualified):
                canonical = book.resolve(qualified)
                provider_name, _, upstream = canonical.partition("/")
                found.append(Target(self.providers[provider_name], upstream, canonical))
        found = found or borrowed
        if len(found) > 1:
            names = sorted(f"{t.provider.name}/{t.upstream_model}" for t in found)
            raise UnknownModel(f"model {name!r} is ambiguous: name one of "
                               f"{', '.join(names)}", model=name, candidates=names)
        return found

    def servable(self, book: PriceBook) -> list[str]:
        """Every model id a client may ask for: catalog models of configured providers, and
        route aliases."""
        models = [m for m in book.models()
                  if m.split("/", 1)[0] in self.providers and not is_tools_entry(m)]
        for provider in self.providers.values():
            if provider.kind == "vertex":
                models += [f"{provider.name}/{served}" for m in book.models()
                           if (served := vertex.servable_model(m)) and not is_tools_entry(m)]
        return sorted({*models, *self.routes})

    def close_names(self, requested: str, book: PriceBook) -> list[str]:
        pool = self.servable(book)
        pool += [m.split("/", 1)[1] for m in pool if "/" in m]
        return difflib.get_close_matches(requested, pool, n=5, cutoff=0.5)

    def _hint(self, requested: str, book: PriceBook) -> str:
        close = self.close_names(requested, book)
        return f"; did you mean {', '.join(close)}?" if close else ""
