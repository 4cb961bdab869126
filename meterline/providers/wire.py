"""The upstream wire formats meterline speaks (a provider's ``kind`` in the config, SPEC §2).

OpenAI-compatible providers (DeepSeek, Qwen, OpenRouter, …) all use ``openai``; their extra usage
fields are read by the OpenAI reader.
"""

from __future__ import annotations

from enum import StrEnum


class Wire(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


def wire_of(kind: str) -> Wire:
    """The wire format named ``kind``; an unknown name is a programming error, not bad input
    (the config refuses unknown kinds long before a request arrives), hence ``ValueError``."""
    try:
        return Wire(kind)
    except ValueError:
        known = ", ".join(w.value for w in Wire)
        raise ValueError(f"unknown wire format {kind!r}; known: {known}") from None
