"""Plan a price update: compare incoming prices with the price book, never rewriting history.

For each model of the incoming versions:

* not in the book → every incoming version of it is added with its own ``effective_from``
  (``new_models``);
* in the book → the incoming version in force at ``now`` is compared with the book's version in
  force at ``now``. Where they charge the same (:func:`charges_same`) nothing happens
  (``unchanged``); where they differ, a new version with the incoming prices starts at ``now``
  (``changed_models``) — the book's versions stay as they are, so every moment before ``now`` keeps
  its price. Incoming versions that start after ``now`` are scheduled at their own moment where
  they differ from what the book (with this plan) would charge then.

A model lands in ``conflicts`` (and that part of its update is not planned) when the incoming
price is in another currency than the book's (unless ``allow_currency_change``), when it is older
than the book's version in force (a stale file must not roll a price back), or when the new
version would start at the very moment of a different version the book already has (the book's
version in force starting exactly at ``now``, or a scheduled one) — a version is never replaced.

:func:`load_update_source` reads an update file: meterline's catalog format or LiteLLM's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterline.catalog.litellm import is_litellm_document, loads_exact, parse_litellm
from meterline.catalog.shipped import parse_catalog_file
from meterline.domain.money import MONEY_CONTEXT
from meterline.domain.pricebook import PriceBook
from meterline.domain.prices import Prices, PriceVersion
from meterline.errors import InvalidPrice, PriceNotFound


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """What an update would add; apply it by adding ``new_versions`` to the book/store."""

    new_versions: list[PriceVersion]
    unchanged: list[str]
    new_models: list[str]
    changed_models: list[str]
    #: Models whose update (or part of it) was not planned; see the module doc.
    conflicts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.new_versions


def charges_same(a: PriceVersion, b: PriceVersion) -> bool:
    """Whether two versions charge every call the same.

    Like :meth:`PriceVersion.same_prices`, but unit sizes are normalised (0.15 per 1M tokens
    equals 0.00000015 per token) and the fields that do not change a charge — billing type, token
    limits, dates, ids, sources — are ignored.
    """
    return a.same_prices(b) or _charge_key(a) == _charge_key(b)


def plan_update(
    current: PriceBook,
    incoming: Iterable[PriceVersion],
    *,
    now: datetime,
    allow_currency_change: bool = False,
) -> UpdatePlan:
    """Compare ``incoming`` with ``current`` at ``now`` (a naive datetime is UTC)."""
    now = _aware(now)
    by_model: dict[str, dict[datetime, PriceVersion]] = {}
    for version in incoming:
        by_model.setdefault(version.model, {})[version.effective_from] = version  # last wins

    new_versions: list[PriceVersion] = []
    unchanged: list[str] = []
    new_models: list[str] = []
    changed: list[str] = []
    conflicts: list[str] = []
    for model, dated in by_model.items():
        versions = [dated[start] for start in sorted(dated)]
        if model not in current:
            new_versions.extend(versions)
            new_models.append(model)
            continue
        planned, conflict = _plan_model(current, model, versions, now, allow_currency_change)
        new_versions.extend(planned)
        if planned:
            changed.append(model)
        if conflict:
            conflicts.append(model)
        if not planned and not conflict:
            unchanged.append(model)
    return UpdatePlan(new_versions, unchanged, new_models, changed, conflicts)


def _plan_model(
    book: PriceBook,
    model: str,
    versions: list[PriceVersion],
    now: datetime,
    allow_currency_change: bool,
) -> tuple[list[PriceVersion], bool]:
    planned: list[PriceVersion] = []
    conflict = False

    def in_force(at: datetime) -> PriceVersion | None:
        """The version the book, with what is planned so far, would charge at ``at``."""
        try:
            found: PriceVersion | None = book.version_at(model, at)
        except PriceNotFound:
            found = None
        for version in planned:
            if version.effective_from <= at and (
                found is None or version.effective_from > found.effective_from
            ):
                found = version
        return found

    past = [v for v in versions if v.effective_from <= now]
    if past:
        latest, held = past[-1], in_force(now)
        if held is not None and charges_same(held, latest):
            pass
        elif held is not None and (
            held.effective_from == now  # a version starting this very moment is not rewritten
            or latest.effective_from < held.effective_from  # the book knows a later price
            or (held.currency != latest.currency and not allow_currency_change)
        ):
            conflict = True
        else:
            planned.append(replace(latest, effective_from=now, id=""))

    taken = {v.effective_from: v for v in book.versions(model)}
    for version in (v for v in versions if v.effective_from > now):
        held = in_force(version.effective_from)
        if held is not None and charges_same(held, version):
            continue
        clash = taken.get(version.effective_from)
        currency_change = held is not None and held.currency != version.currency
        if clash is not None or (currency_change and not allow_currency_change):
            conflict = True
            continue
        planned.append(replace(version, id=""))
    return planned, conflict


def load_update_source(data: bytes | str, *, now: datetime) -> list[PriceVersion]:
    """The price versions of an update file, whichever format it is in.

    * meterline's catalog format: ``{"provider": ..., "models": [...]}``, or a list of such
      documents (a list item may also be a single price version with ``model`` and ``prices``);
      an entry without ``effective_from`` starts at ``now``;
    * LiteLLM's ``model_prices_and_context_window.json``: every version starts at ``now``.

    Numbers are read exactly as written (see :func:`meterline.catalog.litellm.loads_exact`).
    """
    now = _aware(now)
    document = loads_exact(data, origin="update")
    if isinstance(document, list):
        versions: list[PriceVersion] = []
        for index, item in enumerate(document):
            versions.extend(_meterline_item(item, now, origin=f"update[{index}]"))
        return versions
    if isinstance(document, Mapping) and "provider" in document and "models" in document:
        return _meterline_item(document, now, origin="update")
    if is_litellm_document(document):
        return parse_litellm(document, effective_from=now, origin="update").versions
    raise InvalidPrice(
        "update: not a price file meterline knows: expected a catalog object with provider "
        "and models, a list of them, or LiteLLM's object of model entries"
    )


def _meterline_item(item: object, now: datetime, *, origin: str) -> list[PriceVersion]:
    if isinstance(item, Mapping) and "models" in item:
        models = item["models"]
        if isinstance(models, list):
            item = {**item, "models": [_dated(entry, now) for entry in models]}
        return parse_catalog_file(item, origin=origin).versions
    if isinstance(item, Mapping) and "model" in item and "prices" in item:
        try:
            return [PriceVersion.parse(_dated(item, now))]
        except InvalidPrice as exc:
            raise InvalidPrice(f"{origin}: {exc.message}", field=exc.field) from None
    raise InvalidPrice(f"{origin}: must be a catalog object with provider and models, "
                       "or a price version with model and prices")


def _dated(entry: Any, now: datetime) -> Any:
    if isinstance(entry, Mapping) and entry.get("effective_from") is None:
        return {**entry, "effective_from": now.isoformat()}
    return entry


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _per_unit(prices: Prices) -> dict[str, Decimal]:
    return {meter.value: MONEY_CONTEXT.divide(p.price, p.per) for meter, p in prices.items()}


def _charge_key(version: PriceVersion) -> tuple[object, ...]:
    return (
        version.currency,
        version.minimum_charge,
        _per_unit(version.prices),
        [(tier.above_input_tokens, _per_unit(tier.prices))
         for tier in sorted(version.tiers, key=lambda t: t.above_input_tokens)],
        [(dict(v.match), _per_unit(v.prices),
          [(t.above_input_tokens, _per_unit(t.prices)) for t in v.tiers], v.multiplier)
         for v in version.variants],
        [(w.timezone, w.start, w.end, w.days, w.except_holidays, _per_unit(w.prices))
         for w in version.windows],
    )
