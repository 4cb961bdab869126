"""Test directives embedded in request text, token counting and the deterministic generated text.

A directive is ``[[sim key=value ...]]`` anywhere in the request's text (any message, the
system prompt, a prompt or an embedding input); several may be given, in one block or in many.
Directives are removed from the text before its words are counted. See the package docstring
for the list of keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_OUTPUT_WORDS = 16
MAX_CONTENT_CHUNKS = 64
"""Streams carry one word per content chunk, grouped evenly when more words than this."""

_DIRECTIVE = re.compile(r"\[\[sim\b([^\]]*)\]\]")
_INT_KEYS = frozenset(
    {
        "status",
        "delay_ms",
        "chunk_delay_ms",
        "break_after",
        "tokens",
        "cached",
        "cache_write",
        "cache_write_1h",
        "reasoning",
        "retry_after",
        "polls",
        "searches",
        "file_searches",
        "code_sessions",
    }
)

_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat duis aute irure "
    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur "
    "excepteur sint occaecat cupidatat non proident sunt in culpa qui officia deserunt"
)
_WORDS = _LOREM.split()


class DirectiveError(ValueError):
    """A ``[[sim ...]]`` block that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Directives:
    """What a request asked the simulator to do; the defaults mean "behave normally"."""

    status: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    break_after: int | None = None
    no_usage: bool = False
    tokens: int | None = None
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0
    cost: float | None = None
    #: Where ``cost`` goes instead of ``usage.cost``: a dotted path from the answer's top.
    cost_in: str | None = None
    retry_after: int | None = None
    #: A background response is finished at the N-th retrieval (1: the first).
    polls: int = 1
    #: Built-in tool uses: web searches (Responses items, Anthropic's server_tool_use), file
    #: searches, and code interpreter containers (two code calls in each).
    searches: int = 0
    file_searches: int = 0
    code_sessions: int = 0


NO_DIRECTIVES = Directives()


_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _parse_block(body: str, ints: dict[str, int], other: dict[str, float | None],
                 texts: dict[str, str]) -> None:
    for item in body.split():
        key, sep, raw = item.partition("=")
        if key == "no_usage" and not sep:
            other["no_usage"] = 1.0
        elif key == "cost_in" and sep:
            if not _PATH.fullmatch(raw):
                raise DirectiveError(f"simulator directive cost_in={raw!r} is not a dotted path")
            texts["cost_in"] = raw
        elif key == "cost" and sep:
            try:
                other["cost"] = float(raw)
            except ValueError:
                raise DirectiveError(f"simulator directive cost={raw!r} is not a number") from None
        elif key in _INT_KEYS and sep:
            if not raw.isdigit():
                raise DirectiveError(f"simulator directive {key}={raw!r} is not a whole number")
            ints[key] = int(raw)
        else:
            raise DirectiveError(f"unknown simulator directive {item!r}")


def parse_directives(text: str) -> tuple[Directives, str]:
    """The directives in ``text`` and the text without them. Raises DirectiveError."""
    if "[[sim" not in text:
        return NO_DIRECTIVES, text
    ints: dict[str, int] = {}
    other: dict[str, float | None] = {}
    texts: dict[str, str] = {}
    for match in _DIRECTIVE.finditer(text):
        _parse_block(match.group(1), ints, other, texts)
    status = ints.get("status")
    if status is not None and not 400 <= status <= 599:
        raise DirectiveError(f"simulator directive status={status} must be within 400..599")
    directives = Directives(
        status=status,
        delay_ms=ints.get("delay_ms", 0),
        chunk_delay_ms=ints.get("chunk_delay_ms", 0),
        break_after=ints.get("break_after"),
        no_usage="no_usage" in other,
        tokens=ints.get("tokens"),
        cached=ints.get("cached", 0),
        cache_write=ints.get("cache_write", 0),
        cache_write_1h=ints.get("cache_write_1h", 0),
        reasoning=ints.get("reasoning", 0),
        cost=other.get("cost"),
        cost_in=texts.get("cost_in"),
        retry_after=ints.get("retry_after"),
        polls=ints.get("polls", 1),
        searches=ints.get("searches", 0),
        file_searches=ints.get("file_searches", 0),
        code_sessions=ints.get("code_sessions", 0),
    )
    return directives, _DIRECTIVE.sub(" ", text)


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer to produce: token counts (all deterministic) and the directives.

    ``prompt`` is the uncached part of the prompt: the number of whitespace-separated words of
    the request text without directives, at least 1. ``cached``, ``cache_write`` and
    ``cache_write_1h`` (written with a one-hour TTL) are extra prompt tokens on top of it (a
    cached prefix). ``output`` is the number of visible words
    generated; ``reasoning`` extra tokens spent thinking (not shown as text).
    """

    directives: Directives
    prompt: int
    cached: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int
    truncated: bool


def plan(text: str, max_tokens: object = None) -> Plan:
    """Plan the answer to a request whose text (all messages joined) is ``text``.

    The output is ``tokens=N`` words (default 16), cut to ``max_tokens`` when that is a
    positive whole number and smaller (then ``truncated`` is set).
    """
    directives, clean = parse_directives(text)
    wanted = DEFAULT_OUTPUT_WORDS if directives.tokens is None else directives.tokens
    output = wanted
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        output = min(wanted, max_tokens)
    return Plan(
        directives=directives,
        prompt=max(1, len(clean.split())),
        cached=directives.cached,
        cache_write=directives.cache_write,
        cache_write_1h=directives.cache_write_1h,
        output=output,
        reasoning=directives.reasoning,
        truncated=output < wanted,
    )


def count_words(text: str) -> int:
    """Whitespace-separated words of ``text`` without directives, at least 1."""
    return max(1, len(_DIRECTIVE.sub(" ", text).split()))


@lru_cache(maxsize=256)
def generated_text(words: int) -> str:
    """The deterministic answer of ``words`` words: "lorem ipsum dolor ..." repeated."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


@lru_cache(maxsize=256)
def content_pieces(words: int) -> tuple[tuple[str, int], ...]:
    """The answer split into stream chunks: (text, number of words in it) each.

    One word per chunk, or — past MAX_CONTENT_CHUNKS words — MAX_CONTENT_CHUNKS chunks of
    nearly equal size. The texts concatenate to ``generated_text(words)``.
    """
    all_words = generated_text(words).split()
    chunks = min(words, MAX_CONTENT_CHUNKS)
    pieces: list[tuple[str, int]] = []
    start = 0
    for k in range(chunks):
        end = (k + 1) * words // chunks
        text = " ".join(all_words[start:end])
        pieces.append((text if k == 0 else " " + text, end - start))
        start = end
    return tuple(pieces)
