"""Google Vertex AI's wire format: where a model is called, and what Anthropic's models there
are sent.

Vertex AI serves each publisher's models at one resource path,
``/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{action}``:
Google's (Gemini) with Gemini's own ``generateContent`` / ``streamGenerateContent`` bodies and
``usageMetadata``; Anthropic's (Claude) with ``rawPredict`` / ``streamRawPredict`` and the
Messages API's body less ``model`` (it is in the path) plus ``anthropic_version``, answered
as Anthropic answers (its usage, its server-sent events). So a Vertex call is read by the Gemini
or the Anthropic reader; only the path and the body's envelope are Vertex's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: The ``anthropic_version`` Vertex AI's Claude models take in the body (not a header).
ANTHROPIC_VERSION: Final = "vertex-2023-10-16"
GOOGLE: Final = "google"
ANTHROPIC: Final = "anthropic"
#: publisher -> (action of a whole answer, action of a streamed one)
ACTIONS: Final[Mapping[str, tuple[str, str]]] = {
    GOOGLE: ("generateContent", "streamGenerateContent"),
    ANTHROPIC: ("rawPredict", "streamRawPredict"),
}
#: The catalog's provider of Vertex AI's own prices (genai-prices' Claude entries on Google).
CATALOG_PROVIDER: Final = "vertex"
#: Where Gemini's prices are filed: Vertex AI's standard prices for Gemini are the Gemini
#: API's paid tier's, used where no Vertex price of its own is known.
GEMINI_CATALOG_PROVIDER: Final = "gemini"


def publisher_of(model: str) -> str:
    """The publisher of a model Vertex AI serves: Anthropic's ``claude-…`` models, else
    Google's (Gemini)."""
    return ANTHROPIC if model.lower().startswith("claude") else GOOGLE


def action(publisher: str, stream: bool) -> str:
    whole, streamed = ACTIONS[publisher]
    return streamed if stream else whole


def model_path(project: str, location: str, publisher: str, model: str, verb: str) -> str:
    """The path (after the base URL) of a model's action."""
    return (f"/v1/projects/{project}/locations/{location}/publishers/{publisher}"
            f"/models/{model}:{verb}")


def anthropic_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages API body as Vertex AI takes it: no ``model`` (the path names it), and an
    ``anthropic_version`` (the client's if it gave one: AnthropicVertex sends it)."""
    out = {key: value for key, value in body.items() if key != "model"}
    out.setdefault("anthropic_version", ANTHROPIC_VERSION)
    return out


def priced_names(provider: str, model: str) -> list[str]:
    """The catalog names a Vertex AI model may be priced under, first found first: the
    provider's own (prices an operator added under its name), Vertex AI's in the catalog
    (``vertex/claude-…``), then, for Google's models, the Gemini API's (``gemini/…``)."""
    names = [f"{provider}/{model}", f"{CATALOG_PROVIDER}/{model}"]
    if publisher_of(model) == GOOGLE:
        names.append(f"{GEMINI_CATALOG_PROVIDER}/{model}")
    return list(dict.fromkeys(names))


def servable_model(catalog_name: str) -> str | None:
    """The model id a Vertex AI provider serves for a catalog entry (its price, through
    :func:`priced_names`), or None when the entry is none of Vertex AI's."""
    provider, _, model = catalog_name.partition("/")
    if provider == CATALOG_PROVIDER or (provider == GEMINI_CATALOG_PROVIDER
                                        and model.startswith("gemini-")):
        return model
    return None
