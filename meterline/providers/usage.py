"""Provider usage objects -> canonical :class:`~meterline.domain.usage.Usage` (SPEC §1).

One reader per wire format. Each takes the provider's usage object as parsed JSON and returns a
:class:`UsageReading`; none of them raises, because they run in the gateway's response path where
the client's answer must go out whatever the upstream's bookkeeping looks like:

* no usage at all (absent or ``null``)            -> ``UsageReading()`` (usage None, no problem)
* usage we cannot trust (negative, non-integer,
  parts larger than the whole, required field gone) -> usage None, ``problem`` says why
* usage we read with an interpretation            -> usage set, ``warning`` says which

Canonical rules (SPEC §1): ``input_tokens`` counts every prompt token, cache reads and writes
included; ``output_tokens`` counts every generated token, reasoning included.

* OpenAI: already canonical. DeepSeek adds ``prompt_cache_hit_tokens`` (= cached) and
  ``prompt_cache_miss_tokens`` (the rest); DashScope's explicit cache counts its writes in
  ``prompt_tokens_details.cache_creation_input_tokens`` (inside ``prompt_tokens``); Moonshot
  may say ``cached_tokens`` at the top; embeddings report ``prompt_tokens`` only.
* Anthropic: ``input_tokens`` excludes the cache, so input = input + cache writes + cache reads.
  Writes with a 1-hour TTL (``cache_creation.ephemeral_1h_input_tokens``) cost more than 5-minute
  ones: they are counted in ``cache_write_tokens`` and again, as the part kept an hour, in
  ``cache_write_1h_tokens`` (priced apart where the price version has a price for it).
  Its server tools' uses (``server_tool_use.web_search_requests``) are ``web_search_calls``.
* Gemini: ``promptTokenCount`` includes cached tokens; tool-use prompt tokens are added to input;
  ``thoughtsTokenCount`` is billed as output, so output = candidates + thoughts.

Token counts must be JSON integers: ``12.0`` is refused like ``-1``, since a provider that sends
floats is not sending what its documentation promises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from meterline.domain.usage import Meter, Usage
from meterline.errors import InvalidUsage
from meterline.providers.wire import Wire, wire_of


@dataclass(frozen=True, slots=True)
class UsageReading:
    """The outcome of reading a provider's usage: see the module docstring."""

    usage: Usage | None = None
    problem: str | None = None
    warning: str | None = None

    @property
    def malformed(self) -> bool:
        return self.problem is not None


NO_USAGE: Final = UsageReading()


class _Malformed(Exception):
    """Internal: a usage field breaks the provider's documented shape."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Malformed(f"{where}: expected an object, got {_show(value)}")
    return value


def _details(usage: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """A nested details object; absent and ``null`` both mean "no details" (compatible
    providers send ``"prompt_tokens_details": null``)."""
    value = usage.get(key)
    return {} if value is None else _object(value, f"{where}.{key}")


def _count(usage: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> int:
    value = usage.get(key)
    if value is None:
        if required:
            raise _Malformed(f"{where}.{key}: missing")
        return 0
    # bool is an int subclass and floats are not counts; both mean a broken upstream.
    if type(value) is not int:
        raise _Malformed(f"{where}.{key}: expected a whole number, got {_show(value)}")
    if value < 0:
        raise _Malformed(f"{where}.{key}: negative ({value})")
    return value


def _usage(**quantities: int) -> Usage:
    try:
        return Usage.of(**quantities)
    except InvalidUsage as exc:  # parts larger than the whole, or beyond MAX_QUANTITY
        raise _Malformed(exc.message) from exc


def _reading(read: Callable[[object], UsageReading], usage: object) -> UsageReading:
    if usage is None:
        return NO_USAGE
    try:
        return read(usage)
    except _Malformed as exc:
        return UsageReading(problem=str(exc))


# --- OpenAI and OpenAI-compatible --------------------------------------------------------------

def _openai(raw: object) -> UsageReading:
    where = "usage"
    usage = _object(raw, where)
    prompt_details = _details(usage, "prompt_tokens_details", where)
    completion_details = _details(usage, "completion_tokens_details", where)
    if "prompt_cache_hit_tokens" in usage or "prompt_cache_miss_tokens" in usage:
        # DeepSeek: hit + miss = prompt_tokens, and hit is what it bills at the cache price.
        cached = _count(usage, "prompt_cache_hit_tokens", where)
        missed = _count(usage, "prompt_cache_miss_tokens", where)
        prompt = _count(usage, "prompt_tokens", where) if "prompt_tokens" in usage \
            else cached + missed
    else:
        prompt = _count(usage, "prompt_tokens", where, required=True)
        cached = _count(prompt_details, "cached_tokens", f"{where}.prompt_tokens_details")
        if not cached and "cached_tokens" in usage:
            # Moonshot's explicit context cache (moonshot-v1) reports it at the top level.
            cached = _count(usage, "cached_tokens", where)
    # DashScope's explicit cache: the prompt tokens written to it, billed above plain input.
    written = _count(prompt_details, "cache_creation_input_tokens",
                     f"{where}.prompt_tokens_details")
    if cached + written > prompt:
        parts = f"{cached} cached" + (f" and {written} cache-write" if written else "")
        raise _Malformed(f"{where}: {parts} tokens but only {prompt} prompt tokens")
    completion = _count(usage, "completion_tokens", where)  # absent for embeddings
    reasoning = _count(completion_details, "reasoning_tokens",
                       f"{where}.completion_tokens_details")
    warning = None
    if reasoning > completion:
        # OpenAI includes reasoning in completion_tokens; a compatible provider reporting more
        # reasoning than completion tokens can only be counting them apart, so add them up
        # rather than discard the call's usage.
        warning = (f"{where}: reasoning_tokens ({reasoning}) exceed completion_tokens "
                   f"({completion}); counted as additional output")
        completion += reasoning
    return UsageReading(_usage(input_tokens=prompt, cached_input_tokens=cached,
                               cache_write_tokens=written, output_tokens=completion,
                               reasoning_tokens=reasoning),
                        warning=warning)


def _responses(raw: object) -> UsageReading:
    # The Responses API: input_tokens include the cached ones, output_tokens the reasoning.
    where = "usage"
    usage = _object(raw, where)
    prompt = _count(usage, "input_tokens", where, required=True)
    cached = _count(_details(usage, "input_tokens_details", where), "cached_tokens",
                    f"{where}.input_tokens_details")
    if cached > prompt:
        raise _Malformed(f"{where}: {cached} cached tokens but only {prompt} input tokens")
    output = _count(usage, "output_tokens", where)
    reasoning = _count(_details(usage, "output_tokens_details", where), "reasoning_tokens",
                       f"{where}.output_tokens_details")
    if reasoning > output:
        raise _Malformed(f"{where}: {reasoning} reasoning tokens but only {output} output tokens")
    return UsageReading(_usage(input_tokens=prompt, cached_input_tokens=cached,
                               output_tokens=output, reasoning_tokens=reasoning))


def read_responses_usage(usage: object) -> UsageReading:
    """OpenAI's Responses API (``object: "response"``)."""
    return _reading(_responses, usage)


def service_tier(body: object) -> dict[str, str]:
    """The price attributes an OpenAI-format body states: its ``service_tier`` (``flex``,
    ``priority``, ``default``; the answer's says what was applied, the request's what was
    asked), matched against price variants. ``auto`` decides nothing."""
    tier = body.get("service_tier") if isinstance(body, Mapping) else None
    return {"service_tier": tier} if isinstance(tier, str) and tier not in ("", "auto") else {}


def read_openai_usage(usage: object) -> UsageReading:
    """OpenAI chat/completions, embeddings and compatible providers (DeepSeek, Qwen, …)."""
    return _reading(_openai, usage)


def openai_usage(usage: object) -> Usage | None:
    return read_openai_usage(usage).usage


#: Where an upstream's answer carries the call's cost unless its provider says otherwise
#: (OpenRouter's ``usage.cost``; ProviderConfig.cost_field).
DEFAULT_COST_PATH: Final = ("usage", "cost")


def value_at(body: object, path: tuple[str, ...]) -> object:
    """The value at a dotted ``path`` of a parsed JSON object; None where it is absent."""
    for name in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(name)
    return body


def upstream_cost_at(body: object, path: tuple[str, ...] = DEFAULT_COST_PATH) -> Decimal | None:
    """The cost at ``path`` of an answer (or stream event), read as :func:`upstream_cost`."""
    if not path:
        return None
    return upstream_cost({"cost": value_at(body, path)})


def upstream_cost(usage: object) -> Decimal | None:
    """The cost the upstream reports for the call (OpenRouter's ``usage.cost``), exactly.

    The gateway parses upstream JSON with orjson, which turns ``"cost": 0.0001215`` into the
    nearest binary float. ``repr`` of a float is the shortest decimal text that reads back as the
    same float, and every decimal of at most 15 significant digits has a distinct nearest float,
    so ``Decimal(repr(x))`` recovers the number the upstream wrote (never ``Decimal(x)``, which
    would give the float's binary expansion, 0.000121499999…). Costs with more than 15
    significant digits could come back altered in the last digits; no provider sends those.
    Strings and ints (and Decimals, from a Decimal-aware parser) are taken as they are. A
    missing, negative, non-finite or non-numeric cost gives None.
    """
    if not isinstance(usage, Mapping):
        return None
    value = usage.get("cost")
    number: Decimal
    if type(value) is float:
        if not math.isfinite(value):
            return None
        number = Decimal(repr(value))
    elif type(value) is int:
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite() or number < 0:
        return None
    return number


# --- Anthropic ---------------------------------------------------------------------------------

def _anthropic(raw: object) -> UsageReading:
    where = "usage"
    usage = _object(raw, where)
    plain = _count(usage, "input_tokens", where, required=True)
    written = _count(usage, "cache_creation_input_tokens", where)
    read = _count(usage, "cache_read_input_tokens", where)
    output = _count(usage, "output_tokens", where, required=True)
    by_ttl = _details(usage, "cache_creation", where)
    hour = _count(by_ttl, "ephemeral_1h_input_tokens", f"{where}.cache_creation")
    # Server tools Anthropic runs and bills per use (web fetches are free: not metered).
    searches = _count(_details(usage, "server_tool_use", where), "web_search_requests",
                      f"{where}.server_tool_use")
    return UsageReading(_usage(input_tokens=plain + written + read, cached_input_tokens=read,
                               cache_write_tokens=written, cache_write_1h_tokens=hour,
                               output_tokens=output, web_search_calls=searches))


def read_anthropic_usage(usage: object) -> UsageReading:
    """Anthropic messages ``usage`` (also the merged usage of a stream)."""
    return _reading(_anthropic, usage)


def anthropic_usage(usage: object) -> Usage | None:
    return read_anthropic_usage(usage).usage


# --- Gemini ------------------------------------------------------------------------------------

def _gemini(raw: object) -> UsageReading:
    where = "usageMetadata"
    meta = _object(raw, where)
    prompt = _count(meta, "promptTokenCount", where, required=True)
    cached = _count(meta, "cachedContentTokenCount", where)
    if cached > prompt:
        raise _Malformed(f"{where}: {cached} cached tokens but only {prompt} prompt tokens")
    tool_prompt = _count(meta, "toolUsePromptTokenCount", where)
    candidates = _count(meta, "candidatesTokenCount", where)  # absent when only thoughts came
    thoughts = _count(meta, "thoughtsTokenCount", where)
    return UsageReading(_usage(input_tokens=prompt + tool_prompt, cached_input_tokens=cached,
                               output_tokens=candidates + thoughts, reasoning_tokens=thoughts))


def read_gemini_usage(usage_metadata: object) -> UsageReading:
    """Gemini ``usageMetadata`` (generateContent and each streamGenerateContent chunk)."""
    return _reading(_gemini, usage_metadata)


def gemini_usage(usage_metadata: object) -> Usage | None:
    return read_gemini_usage(usage_metadata).usage


# --- whole responses ---------------------------------------------------------------------------

def read_response_usage(wire: str, response: object) -> UsageReading:
    """The usage of a whole non-streamed response body in wire format ``wire``."""
    if not isinstance(response, Mapping):
        return NO_USAGE
    match wire_of(wire):
        case Wire.OPENAI:
            if response.get("object") == "response":
                return read_responses_usage(response.get("usage"))
            return read_openai_usage(response.get("usage"))
        case Wire.ANTHROPIC:
            return read_anthropic_usage(response.get("usage"))
        case Wire.GEMINI:
            return read_gemini_usage(response.get("usageMetadata"))


def openai_usage_object(usage: Usage) -> dict[str, Any]:
    """Canonical usage in OpenAI's chat shape, for responses translated into OpenAI format.
    OpenAI's shape has no cache-write count; those tokens stay inside ``prompt_tokens``."""
    prompt = int(usage.get(Meter.INPUT_TOKENS))
    completion = int(usage.get(Meter.OUTPUT_TOKENS))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get(Meter.CACHED_INPUT_TOKENS))},
        "completion_tokens_details": {
            "reasoning_tokens": int(usage.get(Meter.REASONING_TOKENS)),
        },
    }
