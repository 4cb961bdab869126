"""Price versions: the unit prices of one model, in one currency, from a moment on.

A version holds base prices per meter and three kinds of override, applied in this order, each
replacing the prices of the meters it names:

1. ``tiers`` by prompt size: the highest tier whose ``above_input_tokens`` the call's input exceeds
   (long-context prices apply to the whole request, as Gemini and Qwen bill them);
2. ``variants`` by request attributes (image size and quality, video resolution);
3. ``windows`` by local time of day in a timezone (off-peak rates), optionally on some weekdays
   only and leaving out a country's public holidays.

``minimum_charge`` is the least a call costs. Versions are immutable: a price change is a new
version with a later ``effective_from``; history is never rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.domain.money import (
    MONEY_CONTEXT,
    ZERO,
    currency_code,
    format_decimal,
    unit_price,
)
from meterline.domain.usage import METER_UNIT, METERS, BillingType, Meter, Usage
from meterline.errors import InvalidInput, InvalidPrice

#: Unit sizes a price may refer to.
#: The fields of a price version in the catalog's JSON shape (what :meth:`PriceVersion.parse`
#: reads), for callers that refuse anything else.
VERSION_FIELDS: Final = ("model", "currency", "effective_from", "billing_type", "unit", "units",
                         "prices", "tiers", "variants", "windows", "minimum_charge", "source",
                         "max_output_tokens", "context_window")

UNIT_SIZES: Final[Mapping[str, int]] = MappingProxyType(
    {"1": 1, "1K": 1_000, "10K": 10_000, "1M": 1_000_000}
)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """``price`` per ``per`` units of a meter (e.g. 0.15 per 1,000,000 tokens)."""

    price: Decimal
    per: int

    def unit_label(self, meter: Meter) -> str:
        return _unit_label(meter, self.per)


@lru_cache(maxsize=256)
def _unit_label(meter: Meter, per: int) -> str:
    name = METER_UNIT[meter]
    if per == 1:
        return name[:-1]  # "token", "image", "second"
    return f"{_unit_name(per)} {name}"


Prices = Mapping[Meter, UnitPrice]


@dataclass(frozen=True, slots=True)
class Tier:
    above_input_tokens: int
    prices: Prices


@dataclass(frozen=True, slots=True)
class Variant:
    """Prices for calls whose attributes match (a service tier, an image size). ``tiers`` are
    the variant's own prompt-size tiers (a priority tier's long-context prices): when the call's
    input exceeds one, its prices replace the variant's for the meters it names."""

    match: Mapping[str, str]
    prices: Prices
    tiers: tuple[Tier, ...] = ()
    #: Scales every price in force (the base's, or a prompt-size tier's) before the variant's
    #: own prices replace some: a provider's flat discount (batch processing at half price)
    #: stated once instead of copied price by price.
    multiplier: Decimal | None = None

    def applies(self, attributes: Mapping[str, str]) -> bool:
        return all(attributes.get(key) == value for key, value in self.match.items())


#: Day names a window's ``days`` may list, Monday first (``date.weekday()`` order).
WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Local time of day in ``timezone``, start inclusive, end exclusive, may wrap midnight.

    ``days`` (weekday numbers, Monday 0) limits the window to those local days; ``None`` means
    every day. ``except_holidays`` (an ISO country code, e.g. ``"CN"``) leaves out that
    country's public holidays (the days off of its official calendar). A window that wraps
    midnight belongs to the day it opened on: Friday 22:00-02:00 covers Saturday 01:00.
    """

    timezone: str
    start: time
    end: time
    prices: Prices
    days: frozenset[int] | None = None
    except_holidays: str | None = None

    def applies(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            if not self.start <= clock < self.end:
                return False
        elif clock < self.end:
            local -= timedelta(days=1)  # after midnight: the window opened the day before
        elif clock < self.start:
            return False
        if self.days is not None and local.weekday() not in self.days:
            return False
        return self.except_holidays is None or local.date() not in holiday_dates(
            self.except_holidays, local.year)


@lru_cache(maxsize=64)
def holiday_dates(country: str, year: int) -> frozenset[date]:
    """The public holidays of ``country`` in ``year`` (the ``holidays`` package's calendar)."""
    import holidays  # only versions whose windows leave out holidays need it

    return frozenset(holidays.country_holidays(country, years=year))


@dataclass(frozen=True, slots=True)
class PriceVersion:
    model: str
    currency: str
    effective_from: datetime
    prices: Prices
    billing_type: BillingType = BillingType.TOKEN
    tiers: tuple[Tier, ...] = ()
    variants: tuple[Variant, ...] = ()
    windows: tuple[Window, ...] = ()
    minimum_charge: Decimal = ZERO
    source: str = ""
    max_output_tokens: int | None = None
    context_window: int | None = None
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", f"{self.model}@{self.effective_from.isoformat()}")

    def prices_for(self, usage: Usage, attributes: Mapping[str, str], at: datetime) -> Prices:
        """The unit prices that apply to one call."""
        if not (self.tiers or self.variants or self.windows):
            return self.prices
        prices: dict[Meter, UnitPrice] = dict(self.prices)
        input_tokens = usage.get(Meter.INPUT_TOKENS)
        chosen = _tier(self.tiers, input_tokens)
        if chosen is not None:
            prices.update(chosen.prices)
        for variant in self.variants:
            if variant.applies(attributes):
                if variant.multiplier is not None:
                    prices = {meter: UnitPrice(_scale(p.price, variant.multiplier), p.per)
                              for meter, p in prices.items()}
                prices.update(variant.prices)
                own = _tier(variant.tiers, input_tokens)
                if own is not None:
                    prices.update(own.prices)
                break
        for window in self.windows:
            if window.applies(at):
                prices.update(window.prices)
                break
        return prices

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, model: str | None = None) -> PriceVersion:
        """Build from the catalog's JSON shape (see docs/prices.md); errors name the field."""
        if not isinstance(data, Mapping):
            raise InvalidPrice("a price version must be an object")
        name = model or data.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidPrice("model: missing", field="model")
        where = name
        default_unit = _unit(data.get("unit", "1"), f"{where}.unit")
        units_raw = data.get("units", {})
        if not isinstance(units_raw, Mapping):
            raise InvalidPrice(f"{where}.units: must be an object", field="units")
        units = {
            _meter(key, f"{where}.units"): _unit(value, f"{where}.units.{key}")
            for key, value in units_raw.items()
        }

        def prices(raw: object, path: str) -> Prices:
            if not isinstance(raw, Mapping):
                raise InvalidPrice(f"{path}: must be an object of meter: price", field="prices")
            out: dict[Meter, UnitPrice] = {}
            for key, value in raw.items():
                meter = _meter(key, path)
                number = _price(value, f"{path}.{key}")
                out[meter] = UnitPrice(number, units.get(meter, default_unit))
            return MappingProxyType(out)

        base = prices(data.get("prices"), f"{where}.prices")
        def tiers_of(raw: object, path: str) -> tuple[Tier, ...]:
            return tuple(
                Tier(_int(t.get("above_input_tokens"), f"{path}[{i}].above_input_tokens"),
                     prices(t.get("prices"), f"{path}[{i}].prices"))
                for i, t in enumerate(_list(raw, path))
            )

        tiers = tiers_of(data.get("tiers", []), f"{where}.tiers")
        variants = tuple(
            Variant(_match(v.get("match"), f"{where}.variants[{i}].match"),
                    prices(v.get("prices", {} if "multiplier" in v else None),
                           f"{where}.variants[{i}].prices"),
                    tiers_of(v.get("tiers", []), f"{where}.variants[{i}].tiers"),
                    _multiplier(v.get("multiplier"), f"{where}.variants[{i}].multiplier"))
            for i, v in enumerate(_list(data.get("variants", []), f"{where}.variants"))
        )
        windows = tuple(
            _window(w, prices(w.get("prices"), f"{where}.windows[{i}].prices"),
                    f"{where}.windows[{i}]")
            for i, w in enumerate(_list(data.get("windows", []), f"{where}.windows"))
        )
        billing = data.get("billing_type", "token")
        try:
            billing_type = BillingType(billing)
        except ValueError:
            raise InvalidPrice(
                f"{where}.billing_type: {billing!r} is not one of token, character, count, second",
                field="billing_type",
            ) from None
        try:
            currency = currency_code(data.get("currency"))
        except Exception as exc:
            raise InvalidPrice(f"{where}.{exc}", field="currency") from None
        minimum = _price(data.get("minimum_charge", "0"), f"{where}.minimum_charge")
        return cls(
            model=name,
            currency=currency,
            effective_from=parse_effective(data.get("effective_from"), f"{where}.effective_from"),
            prices=base,
            billing_type=billing_type,
            tiers=tiers,
            variants=variants,
            windows=windows,
            minimum_charge=minimum,
            source=str(data.get("source", "")),
            max_output_tokens=_optional_int(data.get("max_output_tokens"),
                                            f"{where}.max_output_tokens"),
            context_window=_optional_int(data.get("context_window"), f"{where}.context_window"),
        )

    def to_json(self) -> dict[str, Any]:
        """The catalog shape, with each price's own unit spelled out; parse(to_json()) == self."""

        def dump(prices: Prices) -> dict[str, str]:
            return {meter.value: format_decimal(p.price) for meter, p in prices.items()}

        def dump_tiers(tiers: tuple[Tier, ...]) -> list[dict[str, Any]]:
            return [{"above_input_tokens": t.above_input_tokens, "prices": dump(t.prices)}
                    for t in tiers]

        every = [self.prices, *(t.prices for t in self.tiers), *(v.prices for v in self.variants),
                 *(t.prices for v in self.variants for t in v.tiers),
                 *(w.prices for w in self.windows)]
        units = {meter.value: _unit_name(p.per) for prices in every for meter, p in prices.items()}
        out: dict[str, Any] = {
            "model": self.model,
            "billing_type": self.billing_type.value,
            "currency": self.currency,
            "effective_from": self.effective_from.isoformat(),
            "unit": "1",
            "units": {k: v for k, v in units.items() if v != "1"},
            "prices": dump(self.prices),
        }
        if self.tiers:
            out["tiers"] = dump_tiers(self.tiers)
        if self.variants:
            out["variants"] = [{"match": dict(v.match), "prices": dump(v.prices)}
                               | ({"tiers": dump_tiers(v.tiers)} if v.tiers else {})
                               | ({"multiplier": format_decimal(v.multiplier)}
                                  if v.multiplier is not None else {})
                               for v in self.variants]
        if self.windows:
            out["windows"] = [_window_json(w, dump(w.prices)) for w in self.windows]
        if self.minimum_charge:
            out["minimum_charge"] = format_decimal(self.minimum_charge)
        if self.source:
            out["source"] = self.source
        if self.max_output_tokens is not None:
            out["max_output_tokens"] = self.max_output_tokens
        if self.context_window is not None:
            out["context_window"] = self.context_window
        return out

    def same_prices(self, other: PriceVersion) -> bool:
        """Whether two versions charge the same (ignoring dates, ids and sources)."""
        mine, theirs = self.to_json(), other.to_json()
        for key in ("effective_from", "source", "model"):
            mine.pop(key, None)
            theirs.pop(key, None)
        return mine == theirs


def _window_json(window: Window, prices: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"timezone": window.timezone, "start": _clock(window.start),
                           "end": _clock(window.end)}
    if window.days is not None:
        out["days"] = [WEEKDAYS[day] for day in sorted(window.days)]
    if window.except_holidays is not None:
        out["except_holidays"] = window.except_holidays
    out["prices"] = prices
    return out


def _tier(tiers: tuple[Tier, ...], input_tokens: Decimal) -> Tier | None:
    """The highest tier whose threshold the call's input exceeds (the whole request at it)."""
    chosen: Tier | None = None
    for tier in tiers:
        if input_tokens > tier.above_input_tokens and (
            chosen is None or tier.above_input_tokens > chosen.above_input_tokens
        ):
            chosen = tier
    return chosen


def _clock(value: time) -> str:
    """HH:MM, or HH:MM:SS[.ffffff] when the time has seconds (so parse(to_json()) loses none)."""
    if value.second or value.microsecond:
        return value.isoformat()
    return value.strftime("%H:%M")


def _unit_name(per: int) -> str:
    for label, size in UNIT_SIZES.items():
        if size == per:
            return label
    return str(per)


def parse_effective(value: object, path: str = "effective_from") -> datetime:
    """An ISO date or datetime; a date means midnight UTC, a naive datetime is UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            raise InvalidPrice(f"{path}: {value!r} is not an ISO date or datetime",
                               field="effective_from") from None
    else:
        raise InvalidPrice(f"{path}: missing or not an ISO date", field="effective_from")
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise InvalidPrice(f"{path}: {value!r} is out of range", field="effective_from") from None


def _meter(key: object, path: str) -> Meter:
    if key not in METERS:
        raise InvalidPrice(f"{path}: unknown meter {key!r}", field="prices")
    return Meter(str(key))


def _unit(value: object, path: str) -> int:
    if not isinstance(value, str) or value not in UNIT_SIZES:
        raise InvalidPrice(f"{path}: {value!r} is not one of {', '.join(UNIT_SIZES)}",
                           field="unit")
    return UNIT_SIZES[str(value)]


def _price(value: object, path: str) -> Decimal:
    try:
        return unit_price(value, field=path)
    except InvalidInput as exc:
        raise InvalidPrice(exc.message, field=path) from None


def _multiplier(value: object, path: str) -> Decimal | None:
    """A variant's factor on every price: a decimal string in (0, 1] — a discount, never a
    surcharge in disguise (a dearer tier states its prices)."""
    if value is None:
        return None
    number = _price(value, path)
    if not 0 < number <= 1:
        raise InvalidPrice(f"{path}: must be more than 0 and at most 1", field=path)
    return number


def _scale(price: Decimal, factor: Decimal) -> Decimal:
    return MONEY_CONTEXT.multiply(price, factor)


def _int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPrice(f"{path}: must be a non-negative integer", field=path)
    return value


def _optional_int(value: object, path: str) -> int | None:
    return None if value is None else _int(value, path)


def _list(value: object, path: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InvalidPrice(f"{path}: must be a list of objects", field=path)
    return value


def _match(value: object, path: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidPrice(f"{path}: must be a non-empty object", field=path)
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _window(data: Mapping[str, Any], prices: Prices, path: str) -> Window:
    zone = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPrice(f"{path}.timezone: unknown timezone {zone!r}", field=path) from None
    try:
        start = time.fromisoformat(str(data.get("start")))
        end = time.fromisoformat(str(data.get("end")))
    except ValueError:
        raise InvalidPrice(f"{path}: start and end must be HH:MM", field=path) from None
    if start == end:
        raise InvalidPrice(f"{path}: start and end must differ", field=path)
    return Window(str(zone), start, end, prices, _days(data.get("days"), f"{path}.days"),
                  _holidays(data.get("except_holidays"), f"{path}.except_holidays"))


def _days(value: object, path: str) -> frozenset[int] | None:
    """``["mon", …]``: a non-empty list of distinct day names; absent means every day."""
    if value is None:
        return None
    if (not isinstance(value, list) or not value
            or not all(isinstance(d, str) and d.lower() in WEEKDAYS for d in value)):
        raise InvalidPrice(f"{path}: must be a non-empty list of {', '.join(WEEKDAYS)}",
                           field=path)
    days = frozenset(WEEKDAYS.index(d.lower()) for d in value)
    if len(days) != len(value):
        raise InvalidPrice(f"{path}: lists a day twice", field=path)
    return days


def _holidays(value: object, path: str) -> str | None:
    """An ISO 3166 country code whose public holiday calendar is known (``"CN"``)."""
    if value is None:
        return None
    import holidays  # loaded only for windows that leave out holidays

    try:
        if not isinstance(value, str) or not value.isalpha():
            raise NotImplementedError(value)
        holidays.country_holidays(value.upper())
    except NotImplementedError:
        raise InvalidPrice(f"{path}: {value!r} is not a country code with a known holiday "
                           "calendar (e.g. CN)", field=path) from None
    return value.upper()
