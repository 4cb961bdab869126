"""Rating: usage + price version -> charge lines and a total, exact and explainable.

Each line is ``quantity / per × unit_price``, kept unrounded. The split follows SPEC §1: the plain
input line counts input tokens that were neither cache reads nor cache writes; cache reads and
writes have lines of their own (at the plain input price where the version has no cache price);
one-hour cache writes and reasoning tokens are split out of cache writes and output only where
the version prices them separately. A
``requests`` price charges one request per call unless the usage says otherwise. Built-in tool
uses (web searches, file searches, code interpreter sessions) are priced by the version, else by
the provider's tool prices. Where the total
falls short of the version's minimum charge, a ``minimum_charge`` line makes up the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from meterline.domain.money import MONEY_CONTEXT, ZERO, Amount, format_decimal
from meterline.domain.prices import Prices, PriceVersion, UnitPrice
from meterline.domain.usage import BILLING_TYPE, TOOL_METERS, Meter, Usage
from meterline.errors import PriceNotFound

MINIMUM_CHARGE: Final = "minimum_charge"
_COUNTED: Final = (Meter.CHARACTERS, Meter.IMAGES, Meter.SECONDS)
_NO_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType({})


class ChargeLine(NamedTuple):
    """One priced meter of a call. Value types made per call are named tuples (as in
    beancount): immutable, and several times cheaper to build than frozen dataclasses."""

    meter: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    per: int
    amount: Decimal

    @property
    def billing_type(self) -> str:
        try:
            return BILLING_TYPE[Meter(self.meter)].value
        except ValueError:
            return "count"

    def to_json(self) -> dict[str, str]:
        return {
            "meter": self.meter,
            "quantity": format_decimal(self.quantity),
            "unit": self.unit,
            "unit_price": format_decimal(self.unit_price),
            "amount": format_decimal(self.amount),
        }


class Rating(NamedTuple):
    model: str
    price_version: PriceVersion
    lines: tuple[ChargeLine, ...]
    total: Amount

    @property
    def currency(self) -> str:
        return self.total.currency

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cost": format_decimal(self.total.number),
            "currency": self.total.currency,
            "price_version": self.price_version.id,
            "lines": [line.to_json() for line in self.lines],
        }


_NAMES: Final[Mapping[Meter, str]] = MappingProxyType({m: m.value for m in Meter})
_multiply = MONEY_CONTEXT.multiply
_divide = MONEY_CONTEXT.divide


def _line(meter: Meter, quantity: Decimal, price: UnitPrice) -> ChargeLine:
    amount = _divide(_multiply(quantity, price.price), price.per)
    return ChargeLine(_NAMES[meter], quantity, price.unit_label(meter), price.price, price.per,
                      amount)


def _price(prices: Prices, meter: Meter, model: str, *fallbacks: Meter) -> UnitPrice:
    for candidate in (meter, *fallbacks):
        found = prices.get(candidate)
        if found is not None:
            return found
    raise PriceNotFound(f"{model} has no price for {meter.value}", model=model, meter=meter.value)


def rate(
    usage: Usage,
    version: PriceVersion,
    at: datetime,
    attributes: Mapping[str, str] = _NO_ATTRIBUTES,
    tools: Prices | None = None,
) -> Rating:
    """Price one call. Raises PriceNotFound when a used meter has no price in the version;
    built-in tools the version does not price are priced by ``tools``, its provider's tool
    prices in the version's currency (:meth:`PriceBook.tool_prices`)."""
    prices = version.prices_for(usage, attributes, at)
    model = version.model
    lines: list[ChargeLine] = []

    q = usage.quantities
    cached = q.get(Meter.CACHED_INPUT_TOKENS, ZERO)
    written = q.get(Meter.CACHE_WRITE_TOKENS, ZERO)
    plain_input = q.get(Meter.INPUT_TOKENS, ZERO) - cached - written
    if plain_input:
        lines.append(_line(Meter.INPUT_TOKENS, plain_input, _price(prices, Meter.INPUT_TOKENS,
                                                                  model)))
    if cached:
        price = _price(prices, Meter.CACHED_INPUT_TOKENS, model, Meter.INPUT_TOKENS)
        lines.append(_line(Meter.CACHED_INPUT_TOKENS, cached, price))
    hour = q.get(Meter.CACHE_WRITE_1H_TOKENS, ZERO)
    if not (hour and Meter.CACHE_WRITE_1H_TOKENS in prices):
        hour = ZERO  # one price for every cache write
    if written - hour:
        price = _price(prices, Meter.CACHE_WRITE_TOKENS, model, Meter.INPUT_TOKENS)
        lines.append(_line(Meter.CACHE_WRITE_TOKENS, written - hour, price))
    if hour:
        lines.append(_line(Meter.CACHE_WRITE_1H_TOKENS, hour,
                           prices[Meter.CACHE_WRITE_1H_TOKENS]))

    output = q.get(Meter.OUTPUT_TOKENS, ZERO)
    reasoning = q.get(Meter.REASONING_TOKENS, ZERO)
    if reasoning and Meter.REASONING_TOKENS in prices:
        if output - reasoning:
            lines.append(_line(Meter.OUTPUT_TOKENS, output - reasoning,
                               _price(prices, Meter.OUTPUT_TOKENS, model)))
        lines.append(_line(Meter.REASONING_TOKENS, reasoning, prices[Meter.REASONING_TOKENS]))
    elif output:
        lines.append(_line(Meter.OUTPUT_TOKENS, output, _price(prices, Meter.OUTPUT_TOKENS, model)))

    for meter in _COUNTED:
        quantity = q.get(meter)
        if quantity:
            lines.append(_line(meter, quantity, _price(prices, meter, model)))

    for meter in TOOL_METERS:
        quantity = q.get(meter)
        if quantity:
            tool_price = prices.get(meter) or (tools.get(meter) if tools is not None else None)
            if tool_price is None:
                raise PriceNotFound(f"{model} has no price for {meter.value} (nor has its "
                                    "provider's tools entry)", model=model, meter=meter.value)
            lines.append(_line(meter, quantity, tool_price))

    if Meter.REQUESTS in prices:
        requests = q.get(Meter.REQUESTS) or Decimal(1)
        lines.append(_line(Meter.REQUESTS, requests, prices[Meter.REQUESTS]))

    total = ZERO
    add = MONEY_CONTEXT.add
    for line in lines:
        total = add(total, line.amount)
    if total < version.minimum_charge:
        topup = MONEY_CONTEXT.subtract(version.minimum_charge, total)
        lines.append(ChargeLine(MINIMUM_CHARGE, Decimal(1), "call", topup, 1, topup))
        total = version.minimum_charge
    return Rating(model, version, tuple(lines), Amount(total, version.currency))
