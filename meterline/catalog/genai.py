"""genai-prices (PyPI ``genai-prices``, MIT, maintained by Pydantic) as meterline price versions.

The package ships its price database as Python objects (``genai_prices.data.providers``), and
publishes the same data as ``data.json``. Both are translated here, offline, into the genai-prices
layer of the price book (:class:`meterline.domain.pricebook.Layer`):

* **providers** keep their id except where meterline names them otherwise
  (:data:`PROVIDER_NAMES`: ``google`` → ``gemini``, ``x-ai`` → ``xai``, …; Google's Claude
  entries are Vertex AI's: ``vertex``, :data:`HOSTED`). Where two ids map to
  one name (``zai`` and ``zhipuai``), the first one's model wins and the other is listed in
  :attr:`GenaiCatalog.duplicates`.
* **models** are named ``provider/<id in lower case>`` (the database matches names without
  regard to case); their match clauses become aliases (exact names) and name rules (prefixes,
  regexes, …: :mod:`meterline.domain.model_match`).
* **start-dated prices** become versions effective at their dates (midnight UTC, as the database
  reads them); the first price, which states no date, is effective from :data:`NO_START_DATE`.
* **time-of-day prices** (DeepSeek's off-peak hours) become windows in UTC; **tiered prices**
  (a price per meter above N input tokens, the whole request at that price) become tiers;
  **price variants** (``service_tier``, ``processing: batch``, …) become variants matched against
  the call's attributes, from their start dates.
* **meters**: every price key is mapped (per-hour audio prices per second, rounded up where
  the division does not end) (:data:`METERS`) or named in the version's ``source`` as
  "not modelled" and listed in :attr:`GenaiCatalog.unmodelled`, never dropped in silence. A model
  none of whose prices can be used is skipped and listed with the reason. Variants carry tiers
  of their own (a priority tier's long-context prices); a time-of-day price with tiers cannot
  be written in meterline's shape: it is left out and listed.

Prices are exact: the package holds them as ``Decimal`` and ``data.json`` is read with
``parse_float=Decimal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import ROUND_CEILING, Context, Decimal
from types import MappingProxyType
from typing import Any, Final

from meterline.domain.model_match import MatchRule, split_exact
from meterline.domain.money import format_decimal
from meterline.domain.prices import PriceVersion
from meterline.errors import InvalidPrice

#: genai-prices provider id → meterline provider name; others keep their id.
PROVIDER_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    "google": "gemini",
    "x-ai": "xai",
    "moonshotai": "moonshot",
    "zai": "zhipu",
    "zhipuai": "zhipu",
})

#: Models a provider hosts for another maker, and meterline's provider for them: Google's
#: Claude entries are Vertex AI's prices, not the Gemini API's (which does not serve Claude).
HOSTED: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({"google": ("claude-", "vertex")})

#: genai-prices price key → (meterline meter, unit).
METERS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({
    "input_mtok": ("input_tokens", "1M"),
    "output_mtok": ("output_tokens", "1M"),
    "cache_read_mtok": ("cached_input_tokens", "1M"),
    "cache_write_mtok": ("cache_write_tokens", "1M"),
    "cache_write_1h_mtok": ("cache_write_1h_tokens", "1M"),
    "output_reasoning_mtok": ("reasoning_tokens", "1M"),
    "input_mchars": ("characters", "1M"),
    "requests_kcount": ("requests", "1K"),
    "audio_hours": ("seconds", "1"),
})
#: Price keys per hour, priced per second by meterline (see :func:`_per_second`).
PER_HOUR: Final = frozenset({"audio_hours"})
_PLACES: Final = Decimal("1e-12")
#: Price keys for a part of another key's quantity: where their price is the whole's, the
#: whole's line prices them already (transcription: input audio is all of the audio).
PARTS: Final[Mapping[str, str]] = MappingProxyType({"input_audio_hours": "audio_hours"})

_FREE: Final = MappingProxyType({"input_tokens": "0", "output_tokens": "0"})
_UNITS: Final = {meter: unit for meter, unit in METERS.values() if unit != "1M"}

#: The effective date of a price the database states no start date for.
NO_START_DATE: Final = datetime(1970, 1, 1, tzinfo=UTC)
CURRENCY: Final = "USD"
#: Appended to the versions' ids, which would otherwise clash with curated versions' ids.
ID_SUFFIX: Final = "#genai-prices"
ORIGIN: Final = "genai-prices"


@dataclass
class GenaiCatalog:
    versions: list[PriceVersion] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    #: (provider, rule, model), in the database's order.
    rules: list[tuple[str, MatchRule, str]] = field(default_factory=list)
    #: "provider/model: reason" for every model left out.
    skipped: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: model → price keys (and left-out variants or windows) that meterline does not model.
    unmodelled: dict[str, list[str]] = field(default_factory=dict)


#: Bumped whenever :func:`translate` changes what it makes of the same data.
TRANSLATION: Final = 1


def fingerprint() -> str:
    """The installed release and this translation: a database synced with it needs no sync."""
    return f"{installed_version()}/{TRANSLATION}"


def installed_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


def installed_providers() -> list[Any]:
    """The price database of the installed genai-prices package."""
    from genai_prices.data import providers

    return list(providers)


def providers_from_json(document: object) -> list[Any]:
    """genai-prices' published ``data.json`` (already parsed, numbers as Decimal)."""
    from genai_prices.types import _providers_from_raw

    if not isinstance(document, list):
        raise InvalidPrice("genai-prices data: expected a list of providers")
    try:
        return list(_providers_from_raw(document))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidPrice(f"genai-prices data: {str(exc).splitlines()[0]}") from None


def is_genai_document(document: object) -> bool:
    return (isinstance(document, list) and bool(document) and isinstance(document[0], Mapping)
            and "api_pattern" in document[0] and "models" in document[0])


def translate(providers: Iterable[Any], *, release: str) -> GenaiCatalog:
    """Every model of the database as meterline versions, aliases and rules (see module doc)."""
    out = GenaiCatalog()
    seen: set[str] = set()
    for provider in providers:
        for info in provider.models:
            name = _provider_name(provider.id, info.id)
            model = f"{name}/{info.id.lower()}"
            if model in seen:
                out.duplicates.append(f"{provider.id}/{info.id}")
                continue
            seen.add(model)
            origin = f"genai-prices {release}: {provider.id}/{info.id}"
            try:
                versions, unmodelled = _versions(model, info, origin)
            except InvalidPrice as exc:
                out.skipped.append(f"{model}: {exc.message}")
                continue
            if not versions:
                out.skipped.append(f"{model}: no price meterline can use "
                                   f"({', '.join(sorted(unmodelled)) or 'none given'})")
                continue
            out.versions.extend(versions)
            if unmodelled:
                out.unmodelled[model] = sorted(unmodelled)
            exact, rest = split_exact(_rule(info.match))
            out.aliases.extend((f"{name}/{alias}", model) for alias in exact
                               if f"{name}/{alias}" != model)
            if rest is not None:
                out.rules.append((name, rest, model))
    return out


def _provider_name(provider_id: str, model_id: str) -> str:
    hosted = HOSTED.get(provider_id)
    if hosted is not None and model_id.lower().startswith(hosted[0]):
        return hosted[1]
    return PROVIDER_NAMES.get(provider_id, provider_id)


def _versions(model: str, info: Any, origin: str) -> tuple[list[PriceVersion], set[str]]:
    conditionals: list[tuple[Any, Any]] = ([(None, info.prices)]
                                           if not isinstance(info.prices, list)
                    else [(c.constraint, c.prices) for c in info.prices])
    variants = list(info.price_variants or ())
    starts = {NO_START_DATE}
    for constraint in [c for c, _ in conditionals] + [v.constraint for v in variants]:
        if _is_start(constraint):
            starts.add(_midnight(constraint.start_date))
    unmodelled: set[str] = set()
    versions: list[PriceVersion] = []
    for start in sorted(starts):
        body = _body(conditionals, variants, start, unmodelled)
        if body is None:
            continue
        body.update(model=model, currency=CURRENCY, effective_from=start.isoformat(),
                    unit="1M", units=_UNITS, billing_type=_billing_type(body))
        if info.context_window:
            body["context_window"] = info.context_window
        source = origin
        if unmodelled:
            source += f"; not modelled: {', '.join(sorted(unmodelled))}"
        body["source"] = source
        version = PriceVersion.parse(body)
        if versions and versions[-1].same_prices(version):
            continue
        versions.append(replace(version, id=f"{version.id}{ID_SUFFIX}"))
    return versions, unmodelled


def _body(conditionals: Sequence[tuple[Any, Any]], variants: Sequence[Any], start: datetime,
          unmodelled: set[str]) -> dict[str, Any] | None:
    """The version in force from ``start``, in the catalog's JSON shape (None: no usable price).

    The database tries conditional prices last to first and takes the first whose constraint
    holds (the first price when none does); a time-of-day price after the chosen one wins in its
    hours, so it is a window."""
    chosen = 0
    for index in range(len(conditionals) - 1, -1, -1):
        constraint = conditionals[index][0]
        if constraint is None or (_is_start(constraint)
                                  and _midnight(constraint.start_date) <= start):
            chosen = index
            break
    base_prices, tiers = _flat_and_tiers(conditionals[chosen][1], unmodelled)
    if not base_prices and not tiers:
        if unmodelled or any(vars(prices) for _, prices in conditionals):
            return None
        base_prices = dict(_FREE)  # listed without a single price: the database says free
    body: dict[str, Any] = {"prices": base_prices}
    if tiers:
        body["tiers"] = tiers
    windows = []
    for constraint, prices in reversed(conditionals[chosen + 1:]):
        if _is_start(constraint) or constraint is None:
            continue
        flat, window_tiers = _flat_and_tiers(prices, unmodelled)
        if window_tiers:
            unmodelled.add("time-of-day prices with tiers")
            continue
        # A window's price replaces the whole price: meters it leaves out are free then.
        flat = {meter: flat.get(meter, "0") for meter in {*base_prices, *flat}}
        windows.append({"timezone": "UTC", "start": _clock(constraint.start_time),
                        "end": _clock(constraint.end_time), "prices": flat})
    if windows:
        body["windows"] = windows
    chosen_variants = []
    for variant in variants:
        constraint = variant.constraint
        if constraint is not None and not (_is_start(constraint)
                                           and _midnight(constraint.start_date) <= start):
            continue
        flat, variant_tiers = _flat_and_tiers(variant.prices, unmodelled)
        if flat:
            chosen_variants.append({"match": dict(variant.when), "prices": flat}
                                   | ({"tiers": variant_tiers} if variant_tiers else {}))
    if chosen_variants:
        body["variants"] = chosen_variants
    return body


def _flat_and_tiers(prices: Any, unmodelled: set[str]) -> tuple[dict[str, str],
                                                                 list[dict[str, Any]]]:
    """Flat prices per meter, and tiers (the price of every tiered meter above each
    threshold of any of them)."""
    flat: dict[str, str] = {}
    tiered: dict[str, Any] = {}
    keys = {key: value for key, value in vars(prices).items()
            if not key.startswith("_") and value is not None}
    for key, value in keys.items():
        whole = PARTS.get(key)
        if whole is not None and keys.get(whole) == value:
            continue
        if key not in METERS:
            unmodelled.add(key)
            continue
        meter = METERS[key][0]
        if key in PER_HOUR and isinstance(value, Decimal):
            flat[meter] = format_decimal(_per_second(value))
        elif isinstance(value, Decimal):
            flat[meter] = format_decimal(value)
        else:
            flat[meter] = format_decimal(value.base)
            tiered[meter] = value
    thresholds = sorted({tier.start for value in tiered.values() for tier in value.tiers})
    tiers = []
    for threshold in thresholds:
        tier_prices = {}
        for meter, value in tiered.items():
            applicable = value.base
            for tier in value.tiers:
                if tier.start <= threshold:
                    applicable = tier.price
            tier_prices[meter] = format_decimal(applicable)
        tiers.append({"above_input_tokens": threshold, "prices": tier_prices})
    return flat, tiers


def _per_second(per_hour: Decimal) -> Decimal:
    """An hourly price per second: exact where it divides (0.36 → 0.0001), else rounded up
    to 12 decimal places (0.111 → 0.000030833334), so a call is never charged less than the
    database says; meterline's arithmetic stays exact either way."""
    precise = Context(prec=50).divide(per_hour, 3600)
    rounded = precise.quantize(_PLACES, rounding=ROUND_CEILING)
    return precise if rounded == precise else rounded.normalize()


def _billing_type(body: Mapping[str, Any]) -> str:
    meters = set(body["prices"])
    if meters & {"input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"}:
        return "token"
    if "characters" in meters:
        return "character"
    return "count"


def _rule(match: Any) -> MatchRule:
    """A genai-prices match clause as a :class:`MatchRule`."""
    for attribute, kind in (("equals", "equals"), ("starts_with", "starts_with"),
                            ("ends_with", "ends_with"), ("contains", "contains"),
                            ("regex", "regex")):
        value = getattr(match, attribute, None)
        if isinstance(value, str):
            return MatchRule(kind, value if kind == "regex" else value.lower())
    for attribute, kind in (("or_", "or"), ("and_", "and")):
        children = getattr(match, attribute, None)
        if children:
            return MatchRule(kind, children=tuple(_rule(child) for child in children))
    raise InvalidPrice(f"unknown match clause {type(match).__name__}")


def _is_start(constraint: Any) -> bool:
    return constraint is not None and hasattr(constraint, "start_date")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _clock(value: time) -> str:
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()
    return value.replace(tzinfo=None).isoformat(timespec="minutes" if not value.second
                                                else "seconds")


def _when(when: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(when.items()))
