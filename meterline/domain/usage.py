"""Canonical usage quantities (SPEC §1).

``input_tokens`` counts every prompt token, cached and cache-write ones included;
``cached_input_tokens`` and ``cache_write_tokens`` are parts of it, and ``cache_write_1h_tokens``
(writes kept an hour, which Anthropic prices higher) is part of ``cache_write_tokens``.
``output_tokens`` counts every generated token; ``reasoning_tokens`` is part of it. Provider
adapters convert their own shapes into this one (Anthropic's input excludes cache tokens, so the
adapter adds them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from meterline.domain.money import decimal, decimal_places
from meterline.errors import InvalidUsage


class Meter(StrEnum):
    INPUT_TOKENS = "input_tokens"
    CACHED_INPUT_TOKENS = "cached_input_tokens"
    CACHE_WRITE_TOKENS = "cache_write_tokens"
    CACHE_WRITE_1H_TOKENS = "cache_write_1h_tokens"
    OUTPUT_TOKENS = "output_tokens"
    REASONING_TOKENS = "reasoning_tokens"
    CHARACTERS = "characters"
    IMAGES = "images"
    SECONDS = "seconds"
    REQUESTS = "requests"
    # Built-in tools a provider runs for the model and bills per use (docs/providers.md).
    WEB_SEARCH_CALLS = "web_search_calls"
    FILE_SEARCH_CALLS = "file_search_calls"
    CODE_INTERPRETER_SESSIONS = "code_interpreter_sessions"


class BillingType(StrEnum):
    TOKEN = "token"
    CHARACTER = "character"
    COUNT = "count"
    SECOND = "second"


METERS: Final = frozenset(m.value for m in Meter)
_BY_NAME: Final[Mapping[str, Meter]] = MappingProxyType({m.value: m for m in Meter})

#: The billing type each meter belongs to.
BILLING_TYPE: Final[Mapping[Meter, BillingType]] = MappingProxyType({
    Meter.INPUT_TOKENS: BillingType.TOKEN,
    Meter.CACHED_INPUT_TOKENS: BillingType.TOKEN,
    Meter.CACHE_WRITE_TOKENS: BillingType.TOKEN,
    Meter.CACHE_WRITE_1H_TOKENS: BillingType.TOKEN,
    Meter.OUTPUT_TOKENS: BillingType.TOKEN,
    Meter.REASONING_TOKENS: BillingType.TOKEN,
    Meter.CHARACTERS: BillingType.CHARACTER,
    Meter.IMAGES: BillingType.COUNT,
    Meter.SECONDS: BillingType.SECOND,
    Meter.REQUESTS: BillingType.COUNT,
    Meter.WEB_SEARCH_CALLS: BillingType.COUNT,
    Meter.FILE_SEARCH_CALLS: BillingType.COUNT,
    Meter.CODE_INTERPRETER_SESSIONS: BillingType.COUNT,
})

#: What one unit of each meter is called.
METER_UNIT: Final[Mapping[Meter, str]] = MappingProxyType({
    Meter.INPUT_TOKENS: "tokens",
    Meter.CACHED_INPUT_TOKENS: "tokens",
    Meter.CACHE_WRITE_TOKENS: "tokens",
    Meter.CACHE_WRITE_1H_TOKENS: "tokens",
    Meter.OUTPUT_TOKENS: "tokens",
    Meter.REASONING_TOKENS: "tokens",
    Meter.CHARACTERS: "characters",
    Meter.IMAGES: "images",
    Meter.SECONDS: "seconds",
    Meter.REQUESTS: "requests",
    Meter.WEB_SEARCH_CALLS: "calls",
    Meter.FILE_SEARCH_CALLS: "calls",
    Meter.CODE_INTERPRETER_SESSIONS: "sessions",
})

#: The meters of built-in tools: priced by the model's version where it prices them, else by
#: its provider's tool prices (the catalog's ``<provider>/tools`` entry, see pricebook.py).
TOOL_METERS: Final = (Meter.WEB_SEARCH_CALLS, Meter.FILE_SEARCH_CALLS,
                      Meter.CODE_INTERPRETER_SESSIONS)

#: Meters that may be fractional (video and audio seconds); all others are whole counts.
FRACTIONAL_METERS: Final = frozenset({Meter.SECONDS})

_EMPTY: Final[Mapping[Meter, Decimal]] = MappingProxyType({})
_ZERO: Final = Decimal(0)


#: Larger quantities than any real call; the bound keeps every amount exact (see money.py).
MAX_QUANTITY: Final = 10**15


def _too_large(where: str, value: object) -> str:
    return f"{where}: too large, must be below {MAX_QUANTITY:,}, got {value!r}"


def _quantity(meter: Meter, value: object) -> Decimal:
    if type(value) is int and 0 <= value < MAX_QUANTITY:
        return Decimal(value)
    where = f"usage.{meter.value}"
    if isinstance(value, bool) or value is None:
        raise InvalidUsage(f"{where}: must be a number, got {value!r}", field=where)
    if isinstance(value, float):
        # JSON writes a huge count as 1e26, a float: its size is the problem, not its form.
        if math.isfinite(value) and value >= MAX_QUANTITY:
            raise InvalidUsage(_too_large(where, value), field=where)
        if meter not in FRACTIONAL_METERS or not math.isfinite(value):
            raise InvalidUsage(f"{where}: must be a whole number, got {value!r}", field=where)
        value = repr(value)  # seconds like 2.5 from JSON: exact via the shortest repr
    try:
        number = decimal(value, field=where)
    except Exception as exc:
        raise InvalidUsage(f"{where}: must be a number, got {value!r}", field=where) from exc
    if number < 0:
        raise InvalidUsage(f"{where}: must not be negative, got {value!r}", field=where)
    if number >= MAX_QUANTITY:
        raise InvalidUsage(_too_large(where, value), field=where)
    if decimal_places(number) > 6:
        raise InvalidUsage(f"{where}: at most 6 decimal places, got {value!r}", field=where)
    if meter not in FRACTIONAL_METERS and number != number.to_integral_value():
        raise InvalidUsage(f"{where}: must be a whole number, got {value!r}", field=where)
    return number


@dataclass(frozen=True, slots=True)
class Usage:
    """Quantities of one call, by meter; missing meters are zero."""

    quantities: Mapping[Meter, Decimal] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        q = self.quantities
        cached = q.get(Meter.CACHED_INPUT_TOKENS, _ZERO)
        written = q.get(Meter.CACHE_WRITE_TOKENS, _ZERO)
        if (cached or written) and cached + written > q.get(Meter.INPUT_TOKENS, _ZERO):
            raise InvalidUsage(
                "usage.cached_input_tokens + usage.cache_write_tokens must not exceed "
                "usage.input_tokens (input_tokens counts every prompt token)",
                field="usage.input_tokens",
            )
        hour = q.get(Meter.CACHE_WRITE_1H_TOKENS, _ZERO)
        if hour and hour > written:
            raise InvalidUsage(
                "usage.cache_write_1h_tokens must not exceed usage.cache_write_tokens "
                "(cache_write_tokens counts every cache write)",
                field="usage.cache_write_1h_tokens",
            )
        reasoning = q.get(Meter.REASONING_TOKENS, _ZERO)
        if reasoning and reasoning > q.get(Meter.OUTPUT_TOKENS, _ZERO):
            raise InvalidUsage(
                "usage.reasoning_tokens must not exceed usage.output_tokens "
                "(output_tokens counts every generated token)",
                field="usage.reasoning_tokens",
            )

    @classmethod
    def parse(cls, data: object) -> Usage:
        """Build from a JSON object such as ``{"input_tokens": 1000, "output_tokens": 500}``."""
        if not isinstance(data, Mapping):
            raise InvalidUsage("usage: must be an object of meter: quantity", field="usage")
        quantities: dict[Meter, Decimal] = {}
        for name, value in data.items():
            meter = _BY_NAME.get(name)
            if meter is None:
                raise InvalidUsage(
                    f"usage.{name}: unknown meter; known: {', '.join(m.value for m in Meter)}",
                    field=f"usage.{name}",
                )
            quantity = _quantity(meter, value)
            if quantity:
                quantities[meter] = quantity
        return cls(MappingProxyType(quantities))

    @classmethod
    def of(cls, **quantities: int | Decimal | str) -> Usage:
        return cls.parse(quantities)

    def get(self, meter: Meter) -> Decimal:
        return self.quantities.get(meter, _ZERO)

    def plus(self, counts: Mapping[str, int]) -> Usage:
        """This usage with ``counts`` (meter name: quantity, checked as :meth:`parse`) added."""
        if not counts:
            return self
        merged = dict(self.quantities)
        for meter, quantity in Usage.parse(counts).quantities.items():
            merged[meter] = merged.get(meter, _ZERO) + quantity
        return Usage(MappingProxyType(merged))

    def to_json(self) -> dict[str, int | str]:
        """Whole counts as ints, fractional seconds as strings."""
        out: dict[str, int | str] = {}
        for meter in Meter:
            value = self.quantities.get(meter)
            if value is None:
                continue
            out[meter.value] = int(value) if value == value.to_integral_value() else str(value)
        return out
