"""Import LiteLLM's ``model_prices_and_context_window.json`` as price versions, exactly.

The file maps a model key to an entry of per-unit USD prices written as JSON floats
(``"input_cost_per_token": 1.5e-07``). Every number is read as the decimal it is written as:
raw bytes or text are parsed with ``parse_float=Decimal``, and a float that arrives in an already
parsed mapping is converted through its shortest ``repr`` — never through binary arithmetic.

What is read (anything else in an entry is ignored):

* token meters, per token in the file, stored per 1M tokens (the file's number shifted by six
  decimal places, which is exact): ``input_cost_per_token``, ``output_cost_per_token``,
  ``cache_read_input_token_cost``, ``cache_creation_input_token_cost``,
  ``cache_creation_input_token_cost_above_1hr`` (one-hour cache writes),
  ``output_cost_per_reasoning_token``;
* prompt-size tiers: ``<token field>_above_<N>k_tokens`` (or ``_above_<N>m_tokens``) becomes a
  tier with ``above_input_tokens = N × 1000`` (× 1,000,000); LiteLLM's ``tiered_pricing`` list
  (``{"range": [lo, hi], <token fields>}``, used for DashScope; tiers without a ``range`` are
  ignored) becomes the base prices for
  ``lo == 0`` and a tier above ``lo`` otherwise, missing meters taken from the entry's own prices;
* non-token meters, only where the entry's ``mode`` bills by them or the entry has no token price
  at all (a chat model's per-image or per-character figures describe its *inputs*, which are
  metered as tokens): ``characters`` (``audio_speech``; stored per 1M characters) from
  ``input_cost_per_character`` or ``output_cost_per_character``; ``images`` (``image_generation``,
  ``image_edit``, ``image_variation``; per image) from ``output_cost_per_image`` or
  ``input_cost_per_image``; ``seconds`` (``video_generation``, ``audio_transcription``; per second)
  from ``output_cost_per_video_per_second`` / ``output_cost_per_second`` (video first) or
  ``input_cost_per_second``. Of several candidate fields the first non-zero one wins;
* ``max_output_tokens`` → ``max_output_tokens``; ``max_input_tokens`` → ``context_window``
  (``max_tokens`` stands in when the entry gives neither of the other two limits).

Names: ``litellm_provider`` is mapped to meterline's provider names (:data:`PROVIDER_NAMES`;
others keep their own), a leading ``provider/`` is stripped from the key, and the model is named
``<provider>/<model>``. Two keys that name the same model (Gemini's own entry and Vertex AI's, or
a bare and a prefixed key) yield one version: the provider's own entry wins over a mapped one,
then a key that already carried the provider prefix, then the earlier key; the others are listed
in :attr:`ImportResult.duplicates`.

Entries with no price meterline can use (or no ``litellm_provider``), and entries whose read
prices are all zero while another cost field of theirs is not (a per-pixel image model with
``"output_cost_per_token": 0.0`` is not free), are skipped and listed;
``sample_spec`` is documentation and ignored. A read price that is negative, not a number or not
finite raises :class:`InvalidPrice` naming the key and the field; a JSON ``null`` means "no price".
The import is all or nothing: it returns every version or raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from meterline.catalog.shipped import CatalogEntries
from meterline.domain.prices import PriceVersion, Tier, UnitPrice, parse_effective
from meterline.domain.usage import BillingType, Meter
from meterline.errors import InvalidPrice

#: LiteLLM's ``litellm_provider`` → meterline provider name; any other provider keeps its name.
PROVIDER_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai-language-models": "gemini",
    "deepseek": "deepseek",
    "dashscope": "qwen",
    "volcengine": "volcano",
    "openrouter": "openrouter",
})

CURRENCY: Final = "USD"
SAMPLE_SPEC: Final = "sample_spec"
PER_MILLION: Final = 1_000_000

#: Per-token fields of the file and the meter each prices.
TOKEN_FIELDS: Final[Mapping[str, Meter]] = MappingProxyType({
    "input_cost_per_token": Meter.INPUT_TOKENS,
    "output_cost_per_token": Meter.OUTPUT_TOKENS,
    "cache_read_input_token_cost": Meter.CACHED_INPUT_TOKENS,
    "cache_creation_input_token_cost": Meter.CACHE_WRITE_TOKENS,
    "cache_creation_input_token_cost_above_1hr": Meter.CACHE_WRITE_1H_TOKENS,
    "output_cost_per_reasoning_token": Meter.REASONING_TOKENS,
})

_CHARACTER_FIELDS: Final = ("input_cost_per_character", "output_cost_per_character")
_IMAGE_FIELDS: Final = ("output_cost_per_image", "input_cost_per_image")
_VIDEO_SECOND_FIELDS: Final = (
    "output_cost_per_video_per_second", "output_cost_per_second", "input_cost_per_second",
)
_AUDIO_SECOND_FIELDS: Final = ("input_cost_per_second", "output_cost_per_second")

_READ_FIELDS: Final = tuple(
    dict.fromkeys((*TOKEN_FIELDS, *_CHARACTER_FIELDS, *_IMAGE_FIELDS, *_VIDEO_SECOND_FIELDS))
)

#: Modes whose calls are billed by a non-token meter.
_CHARACTER_MODES: Final = frozenset({"audio_speech"})
_IMAGE_MODES: Final = frozenset({"image_generation", "image_edit", "image_variation"})
_SECOND_MODES: Final = frozenset({"video_generation", "audio_transcription"})

#: Providers whose entries yield to the same model's entry from the provider itself.
_MAPPED_SECONDARY: Final = frozenset({"vertex_ai-language-models"})

_ABOVE: Final = re.compile(r"^(?P<base>.+?)_above_(?P<count>\d+)(?P<scale>[km])_tokens$")
_SCALE: Final[Mapping[str, int]] = MappingProxyType({"k": 1_000, "m": 1_000_000})


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The versions read from a LiteLLM file, and the keys that gave none."""

    entries: CatalogEntries
    #: "key: reason" of the entries skipped: no price meterline can use, or no provider.
    skipped: list[str]
    #: Keys dropped because another key of the file names the same model (see module doc).
    duplicates: list[str] = field(default_factory=list)

    @property
    def versions(self) -> list[PriceVersion]:
        return self.entries.versions

    @property
    def aliases(self) -> list[tuple[str, str]]:
        return self.entries.aliases


def parse_litellm(
    data: object, *, effective_from: datetime, origin: str = "file"
) -> ImportResult:
    """Read a LiteLLM price map (``bytes``, ``str`` or an already parsed mapping).

    Every version is USD, starts at ``effective_from`` (a naive datetime is UTC) and has the
    source ``litellm:<origin>``; errors start with ``origin``.
    """
    document = _document(data, origin)
    start = parse_effective(effective_from)
    chosen: dict[str, tuple[tuple[int, int], str, PriceVersion]] = {}
    skipped: list[str] = []
    duplicates: list[str] = []
    for name, raw in document.items():
        key = str(name)
        if key == SAMPLE_SPEC:
            continue
        if not isinstance(raw, Mapping):
            raise InvalidPrice(f"{origin}: {key}: an entry must be an object", field=str(key),
                               model=key)
        read = _read_entry(key, raw, origin=origin, effective_from=start)
        if isinstance(read, str):
            skipped.append(f"{key}: {read}")
            continue
        rank, version = read
        held = chosen.get(version.model)
        if held is None:
            chosen[version.model] = (rank, key, version)
        elif rank > held[0]:
            duplicates.append(held[1])
            chosen[version.model] = (rank, key, version)
        else:
            duplicates.append(key)
    versions = [version for _, _, version in chosen.values()]
    return ImportResult(CatalogEntries(versions, []), skipped, duplicates)


def is_litellm_document(data: object) -> bool:
    """Whether a parsed JSON value has the LiteLLM shape: an object of objects by model key."""
    return (
        isinstance(data, Mapping)
        and not ("provider" in data and "models" in data)
        and all(isinstance(value, Mapping) for value in data.values())
    )


def loads_exact(data: bytes | bytearray | str, *, origin: str = "file") -> Any:
    """JSON with every non-integer number as the Decimal it is written as."""
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=Decimal)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidPrice(f"{origin}: not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidPrice(f"{origin}: JSON nested too deeply") from None


# -- one entry ---------------------------------------------------------------------------------


def _document(data: object, origin: str) -> Mapping[Any, Any]:
    parsed = loads_exact(data, origin=origin) if isinstance(data, (bytes, bytearray, str)) else data
    if not isinstance(parsed, Mapping):
        raise InvalidPrice(f"{origin}: a LiteLLM price map must be an object of model entries")
    return parsed


def _read_entry(
    key: str, raw: Mapping[str, Any], *, origin: str, effective_from: datetime
) -> tuple[tuple[int, int], PriceVersion] | str:
    """The version of one entry and its rank among entries naming the same model, or why the
    entry gives none."""

    def number(name: str, value: object) -> Decimal | None:
        return _number(value, origin=origin, key=key, name=name)

    mode = raw.get("mode") if isinstance(raw.get("mode"), str) else None
    read = {name: number(name, raw.get(name)) for name in _READ_FIELDS}  # every one validated
    base: dict[Meter, UnitPrice] = {}
    for name, meter in TOKEN_FIELDS.items():
        value = read[name]
        if value is not None:
            base[meter] = _unit_price(meter, value)

    tiers: dict[int, dict[Meter, UnitPrice]] = {}
    for name, value in raw.items():
        match = _ABOVE.match(str(name))
        if match is None or match["base"] not in TOKEN_FIELDS:
            continue
        price = number(str(name), value)
        if price is not None:
            meter = TOKEN_FIELDS[match["base"]]
            above = int(match["count"]) * _SCALE[match["scale"]]
            tiers.setdefault(above, {})[meter] = _unit_price(meter, price)
    _tiered_pricing(raw.get("tiered_pricing"), base, tiers, origin=origin, key=key)

    has_tokens = bool(base) or bool(tiers)
    candidates = (
        (Meter.CHARACTERS, _CHARACTER_FIELDS, _CHARACTER_MODES),
        (Meter.IMAGES, _IMAGE_FIELDS, _IMAGE_MODES),
        (Meter.SECONDS,
         _VIDEO_SECOND_FIELDS if mode == "video_generation" else _AUDIO_SECOND_FIELDS,
         _SECOND_MODES),
    )
    for meter, names, modes in candidates:
        if mode not in modes and has_tokens:
            continue  # a token-billed entry: these figures describe its inputs
        values = [value for value in (read[name] for name in names) if value is not None]
        if values:
            base[meter] = _unit_price(meter, next((v for v in values if v), values[0]))

    provider_raw = raw.get("litellm_provider")
    if not isinstance(provider_raw, str) or not provider_raw:
        return "no litellm_provider"
    if not (base or tiers):
        return "no price meterline can use" + _cost_fields(raw)
    if _all_zero(base, tiers) and _priced_otherwise(raw):
        # e.g. a per-pixel image model with "output_cost_per_token": 0.0
        return "its token prices are 0 while it is priced otherwise" + _cost_fields(raw)
    provider = PROVIDER_NAMES.get(provider_raw, provider_raw)
    model, prefixed = _model_name(key, provider_raw, provider)
    if model is None:
        return "no model name after its provider prefix"
    rank = (0 if provider_raw in _MAPPED_SECONDARY else 1, 1 if prefixed else 0)
    version = PriceVersion(
        model=model,
        currency=CURRENCY,
        effective_from=effective_from,
        prices=MappingProxyType(base),
        billing_type=_billing_type(mode, base, tiers),
        tiers=tuple(Tier(above, MappingProxyType(prices))
                    for above, prices in sorted(tiers.items())),
        source=f"litellm:{origin}",
        max_output_tokens=_limit(raw.get("max_output_tokens")),
        context_window=_context_window(raw),
    )
    return rank, version


def _cost_fields(raw: Mapping[str, Any]) -> str:
    """The entry's cost fields, to say what it prices that meterline did not read."""
    fields = sorted(name for name, value in raw.items() if "cost" in name and value)
    return f" ({', '.join(fields)})" if fields else ""


def _tiered_pricing(
    value: object,
    base: dict[Meter, UnitPrice],
    tiers: dict[int, dict[Meter, UnitPrice]],
    *,
    origin: str,
    key: str,
) -> None:
    """Fold LiteLLM's ``tiered_pricing`` list into the base prices and the tiers."""
    if value is None:
        return
    if not isinstance(value, list):
        raise InvalidPrice(f"{origin}: {key}: tiered_pricing: must be a list of objects",
                           field="tiered_pricing", model=key)
    own = dict(base)  # the entry's flat prices stand in for meters a tier does not name
    for index, tier in enumerate(value):
        where = f"tiered_pricing[{index}]"
        if not isinstance(tier, Mapping):
            raise InvalidPrice(f"{origin}: {key}: {where}: must be an object", field=where,
                               model=key)
        if "range" not in tier:
            continue  # a tier by something other than prompt size (search results, …)
        lower = _range_start(tier["range"], origin=origin, key=key, where=f"{where}.range")
        prices: dict[Meter, UnitPrice] = {}
        for name, meter in TOKEN_FIELDS.items():
            price = _number(tier.get(name), origin=origin, key=key, name=f"{where}.{name}")
            if price is not None:
                prices[meter] = _unit_price(meter, price)
        if lower == 0:
            base.update(prices)
        elif prices:
            tiers[lower] = {**own, **tiers.get(lower, {}), **prices}


def _range_start(value: object, *, origin: str, key: str, where: str) -> int:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidPrice(f"{origin}: {key}: {where}: must be [from, to]", field=where,
                           model=key)
    lower = _number(value[0], origin=origin, key=key, name=where)
    if lower is None or lower != lower.to_integral_value():
        raise InvalidPrice(f"{origin}: {key}: {where}: must start at a whole token count",
                           field=where, model=key)
    return int(lower)


def _number(value: object, *, origin: str, key: str, name: str) -> Decimal | None:
    """A price as written in the file; None for a missing (null) one."""
    if value is None:
        return None

    def bad(reason: str) -> InvalidPrice:
        shown = str(value) if isinstance(value, Decimal) else repr(value)
        return InvalidPrice(f"{origin}: {key}: {name}: {reason}, got {shown}", field=name,
                            model=key, value=shown)

    if isinstance(value, bool):
        raise bad("must be a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest text that reads back as this float
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise bad("must be a number") from None
    else:
        raise bad("must be a number")
    if not number.is_finite():
        raise bad("must be a finite number")
    if number < 0:
        raise bad("must not be negative")
    return number


def _unit_price(meter: Meter, per_unit: Decimal) -> UnitPrice:
    """Token and character prices per 1M units (the decimal point moved, exactly); others per 1."""
    if meter in (Meter.IMAGES, Meter.SECONDS):
        return UnitPrice(per_unit, 1)
    sign, digits, exponent = per_unit.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by _number
    return UnitPrice(Decimal((sign, digits, exponent + 6)), PER_MILLION)


def _all_zero(base: Mapping[Meter, UnitPrice], tiers: Mapping[int, Mapping[Meter, UnitPrice]]
              ) -> bool:
    every = [*base.values(), *(p for prices in tiers.values() for p in prices.values())]
    return all(price.price == 0 for price in every)


def _priced_otherwise(raw: Mapping[str, Any]) -> bool:
    """Whether a cost field this importer does not read has a positive number."""
    for name, value in raw.items():
        if "cost" not in str(name) or name in _READ_FIELDS or _ABOVE.match(str(name)):
            continue
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            if number.is_finite() and number > 0:
                return True
    return False


def _billing_type(
    mode: str | None, base: Mapping[Meter, UnitPrice], tiers: Mapping[int, object]
) -> BillingType:
    if mode in _CHARACTER_MODES and Meter.CHARACTERS in base:
        return BillingType.CHARACTER
    if mode in _IMAGE_MODES and Meter.IMAGES in base:
        return BillingType.COUNT
    if mode in _SECOND_MODES and Meter.SECONDS in base:
        return BillingType.SECOND
    if tiers or any(meter in base for meter in TOKEN_FIELDS.values()):
        return BillingType.TOKEN
    if Meter.CHARACTERS in base:
        return BillingType.CHARACTER
    if Meter.IMAGES in base:
        return BillingType.COUNT
    return BillingType.SECOND


def _model_name(key: str, litellm_provider: str, provider: str) -> tuple[str | None, bool]:
    """``provider/model`` with a leading provider prefix of the key removed, and whether the
    key carried one; None when nothing is left of the name."""
    family = litellm_provider.split("-", 1)[0]  # vertex_ai-language-models -> vertex_ai
    for prefix in dict.fromkeys((litellm_provider, provider, family)):
        if key.startswith(f"{prefix}/"):
            rest = key[len(prefix) + 1:]
            return (f"{provider}/{rest}" if rest else None), True
    return (f"{provider}/{key}" if key else None), False


def _limit(value: object) -> int | None:
    """A token limit, or None where the file's value is missing or not a whole count."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, (Decimal, float)):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if number.is_finite() and number >= 0 and number == number.to_integral_value():
            return int(number)
    return None


def _context_window(raw: Mapping[str, Any]) -> int | None:
    window = _limit(raw.get("max_input_tokens"))
    if window is None and _limit(raw.get("max_output_tokens")) is None:
        # legacy max_tokens: the output limit when one is known, else the input limit
        window = _limit(raw.get("max_tokens"))
    return window
