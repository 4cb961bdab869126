"""Reconciliation: what meterline metered against what a provider billed (SPEC §1, §6).

Both sides are amounts per provider and model in one currency. Metered amounts come per day;
a provider's bill line covers a charge period (a day, or a whole month in a monthly bill), so
each billed period is compared with the metered days inside it, and metered days that no billed
period of that provider and model covers are rows of their own (``only_metered``).

A row's status: ``match`` when the difference is within ``tolerance`` (a share of the metered
amount: 0.01 is 1 %), else ``over`` (billed more than metered) or ``under``; ``only_metered`` and
``only_billed`` when one side has nothing. Amounts stay exact; ``difference_pct`` is the
difference as a percentage of the metered amount, rounded half-up to two places for display.

A row that differs names its likely causes where the ledger shows one (``explain``): calls left
unpriced or priced on estimates in its days, calls reported to meterline instead of passing the
gateway, a price version starting inside the period, a neighbouring day that differs the other
way (the provider's days start at another hour than the tenants': UTC+8 for the Chinese
clouds), or a model the bill names differently. Billed more with none of these in sight is named
too: calls the provider saw that meterline never did.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NamedTuple

from meterline.domain.money import MONEY_CONTEXT, ROUNDING_CONTEXT, ZERO, format_decimal
from meterline.errors import InvalidInput

DEFAULT_TOLERANCE: Final = Decimal("0.01")
_PERCENT_PLACES: Final = Decimal("0.01")
#: The statuses of rows that differ (and so are explained).
DIFFERING: Final = frozenset({"over", "under", "only_metered", "only_billed"})
_ONE_DAY: Final = timedelta(days=1)
#: How alike two model names must be spelled to be named as one model's (difflib's ratio).
_ALIKE: Final = 0.75

#: The time zone whose days a provider's bill is cut in, where it is known (the Chinese clouds
#: and model vendors bill by Beijing time; meterline's names of them and of their connectors).
BILLING_ZONES: Final[Mapping[str, str]] = {
    **dict.fromkeys(("aliyun", "qwen", "dashscope", "tencent", "hunyuan", "volcano", "doubao",
                     "baidu", "qianfan", "deepseek", "moonshot", "zhipu", "minimax"),
                    "Asia/Shanghai"),
    **dict.fromkeys(("openai", "anthropic"), "UTC"),
}


class DayKey(NamedTuple):
    provider: str
    model: str
    day: date


class Cause(NamedTuple):
    """A likely reason for a row's difference: a stable ``code`` and words for people."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MeteredDay(NamedTuple):
    provider: str
    model: str
    day: date
    amount: Decimal


class BilledPeriod(NamedTuple):
    """A provider's charge for a model over ``start`` (inclusive) to ``end`` (exclusive)."""

    provider: str
    model: str
    start: date
    end: date
    amount: Decimal


class Row(NamedTuple):
    provider: str
    model: str
    start: date
    end: date
    metered: Decimal | None
    billed: Decimal | None
    status: str
    causes: tuple[Cause, ...] = ()

    @property
    def difference(self) -> Decimal:
        return MONEY_CONTEXT.subtract(self.billed or ZERO, self.metered or ZERO)

    @property
    def difference_pct(self) -> Decimal | None:
        if not self.metered:
            return None
        # for display only: the one rounding here
        share = ROUNDING_CONTEXT.divide(MONEY_CONTEXT.multiply(self.difference, 100),
                                        self.metered)
        return share.quantize(_PERCENT_PLACES, rounding=ROUND_HALF_UP, context=ROUNDING_CONTEXT)

    def to_json(self) -> dict[str, Any]:
        pct = self.difference_pct
        return {
            "provider": self.provider, "model": self.model, "date": self.start.isoformat(),
            "until": self.end.isoformat(),
            "metered": format_decimal(self.metered) if self.metered is not None else None,
            "billed": format_decimal(self.billed) if self.billed is not None else None,
            "difference": format_decimal(self.difference),
            "difference_pct": format_decimal(pct) if pct is not None else None,
            "status": self.status,
            "causes": [cause.to_json() for cause in self.causes],
        }

    def days(self) -> Iterable[date]:
        return (date.fromordinal(n) for n in range(self.start.toordinal(),
                                                   self.end.toordinal()))


def tolerance_of(value: object) -> Decimal:
    """A share from 0 to 1 (``0.01`` is 1 %), from a number or its text."""
    try:
        share = Decimal(str(value).strip()) if not isinstance(value, bool) else None
    except ArithmeticError:
        share = None
    if share is None or not share.is_finite() or not ZERO <= share <= 1:
        raise InvalidInput(f"tolerance: a share from 0 to 1 (0.01 is 1 %), not {value!r}",
                           field="tolerance")
    return share


def status_of(metered: Decimal | None, billed: Decimal | None, tolerance: Decimal) -> str:
    if billed is None:
        return "only_metered"
    if metered is None:
        return "only_billed"
    difference = MONEY_CONTEXT.subtract(billed, metered)
    if abs(difference) <= MONEY_CONTEXT.multiply(abs(metered), tolerance):
        return "match"
    return "over" if difference > 0 else "under"


def reconcile(metered: Iterable[MeteredDay], billed: Iterable[BilledPeriod],
              tolerance: Decimal = DEFAULT_TOLERANCE) -> list[Row]:
    """Rows ordered by provider, model and date."""
    periods: dict[tuple[str, str, date, date], Decimal] = {}
    for line in billed:
        if line.end <= line.start:
            raise InvalidInput(f"billed period of {line.provider}/{line.model} ends "
                               f"({line.end}) before it starts ({line.start})", field="period")
        key = (line.provider, line.model, line.start, line.end)
        periods[key] = MONEY_CONTEXT.add(periods.get(key, ZERO), line.amount)
    by_model: dict[tuple[str, str], list[tuple[date, date]]] = {}
    for provider, model, start, end in sorted(periods):
        by_model.setdefault((provider, model), []).append((start, end))

    covered: dict[tuple[str, str, date, date], Decimal] = {}
    alone: dict[tuple[str, str, date], Decimal] = {}
    for provider, model, day, amount in metered:
        period = next(((start, end) for start, end in by_model.get((provider, model), ())
                       if start <= day < end), None)
        if period is None:
            day_key = (provider, model, day)
            alone[day_key] = MONEY_CONTEXT.add(alone.get(day_key, ZERO), amount)
        else:
            covering = (provider, model, *period)
            covered[covering] = MONEY_CONTEXT.add(covered.get(covering, ZERO), amount)

    rows = [Row(provider, model, start, end, covered.get((provider, model, start, end)),
                amount, status_of(covered.get((provider, model, start, end)), amount,
                                  tolerance))
            for (provider, model, start, end), amount in periods.items()]
    rows += [Row(provider, model, day, date.fromordinal(day.toordinal() + 1), amount, None,
                 "only_metered")
             for (provider, model, day), amount in alone.items()]
    return sorted(rows, key=lambda row: (row.provider, row.model, row.start, row.end))


@dataclass(frozen=True)
class Evidence:
    """What the ledger shows about the days being reconciled (all keyed by provider, model and
    day): unpriced and estimated calls, calls reported rather than passing the gateway, the
    days on which a model's price version changed (with the version's id), and the time zones
    of the tenants' days."""

    unpriced: Mapping[DayKey, int] = field(default_factory=dict)
    estimated: Mapping[DayKey, int] = field(default_factory=dict)
    reported: Mapping[DayKey, int] = field(default_factory=dict)
    price_changes: Mapping[tuple[str, str], Sequence[tuple[date, str]]] = field(
        default_factory=dict)
    tenant_zones: frozenset[str] = frozenset()


def explain(rows: Sequence[Row], evidence: Evidence) -> list[Row]:
    """The rows, each that differs with the causes the evidence shows (in a fixed order)."""
    by_day = {(row.provider, row.model, row.start): row for row in rows
              if row.end - row.start == _ONE_DAY}
    return [row._replace(causes=tuple(_causes(row, rows, by_day, evidence)))
            if row.status in DIFFERING else row for row in rows]


def _counted(counts: Mapping[DayKey, int], row: Row) -> int:
    return sum(counts.get(DayKey(row.provider, row.model, day), 0) for day in row.days())


def _calls(count: int, one: str, many: str) -> str:
    """``count`` calls and the verb that agrees: ``_calls(1, "was", "were")``."""
    return f"{count} call of these days {one}" if count == 1 else (
        f"{count} calls of these days {many}")


def _causes(row: Row, rows: Sequence[Row], by_day: Mapping[tuple[str, str, date], Row],
            evidence: Evidence) -> Iterable[Cause]:
    seen = False
    unpriced = _counted(evidence.unpriced, row)
    if unpriced:
        seen = True
        yield Cause("unpriced", f"{_calls(unpriced, 'had', 'had')} no price and count 0 here: "
                                "add the price, then `meterline rerate`")
    estimated = _counted(evidence.estimated, row)
    if estimated:
        seen = True
        yield Cause("estimated", f"{_calls(estimated, 'was', 'were')} priced on estimated "
                                 "usage (interrupted, abandoned or answered without usage)")
    reported = _counted(evidence.reported, row)
    if reported:
        seen = True
        yield Cause("reported", f"{_calls(reported, 'was', 'were')} reported to meterline "
                                "rather than passing the gateway: their usage is the reporter's "
                                "word")
    for day, version in evidence.price_changes.get((row.provider, row.model), ()):
        if row.start <= day <= row.end:
            seen = True
            yield Cause("price_change", f"the price of {row.model} changed on {day} (version "
                                        f"{version}): calls on either side of it are priced "
                                        "differently")
    boundary = _day_boundary(row, by_day, evidence)
    if boundary is not None:
        seen = True
        yield boundary
    renamed = _renamed(row, rows)
    if renamed is not None:
        seen = True
        yield renamed
    if not seen and row.status in ("over", "only_billed"):
        yield Cause("not_metered", "billed more than metered with nothing in the ledger to "
                                   "explain it: calls made with this provider account that did "
                                   "not pass through meterline?")


def _day_boundary(row: Row, by_day: Mapping[tuple[str, str, date], Row],
                  evidence: Evidence) -> Cause | None:
    """A daily row whose neighbouring day differs the other way: the same calls counted on
    different days by the provider and by the ledger."""
    if row.end - row.start != _ONE_DAY or not row.difference:
        return None
    for neighbour_day in (row.start - _ONE_DAY, row.start + _ONE_DAY):
        neighbour = by_day.get((row.provider, row.model, neighbour_day))
        if (neighbour is None or neighbour.status not in DIFFERING
                or neighbour.difference * row.difference >= 0):
            continue
        net = format_decimal(MONEY_CONTEXT.add(row.difference, neighbour.difference))
        zone = BILLING_ZONES.get(row.provider)
        theirs = (f"{row.provider} cuts its bill in days of {zone}" if zone
                  else f"{row.provider}'s bill days may start at another hour")
        ours = ", ".join(sorted(evidence.tenant_zones)) or "UTC"
        return Cause("day_boundary", f"{theirs}, the ledger's in the tenants' ({ours}); "
                                     f"{neighbour_day} differs the other way (together "
                                     f"{net}): calls near midnight fall on different days")
    return None


def _bare_name(model: str) -> str:
    return re.sub(r"[._:]", "-", model.rsplit("/", 1)[-1].lower())


def _alike(one: str, other: str) -> bool:
    """Names that could be one model's: one the other's start (a dated snapshot, a ``-latest``)
    or close in spelling (``doubao-seed-1.6`` and ``doubao-seed-1-6-250615``)."""
    a, b = _bare_name(one), _bare_name(other)
    return (a.startswith(b) or b.startswith(a)
            or difflib.SequenceMatcher(None, a, b).ratio() >= _ALIKE)


def _renamed(row: Row, rows: Sequence[Row]) -> Cause | None:
    """A row on one side only, beside a row of the same provider on the other side only, over
    the same days, with another model name much like its own."""
    wanted = {"only_billed": "only_metered", "only_metered": "only_billed"}.get(row.status)
    if wanted is None:
        return None
    others = sorted({other.model for other in rows
                     if other.status == wanted and other.provider == row.provider
                     and other.model != row.model and _alike(other.model, row.model)
                     and other.start < row.end and row.start < other.end})
    if not others:
        return None
    if row.status == "only_billed":
        words = f"the bill names {row.model} where meterline metered {', '.join(others)}"
    else:
        words = f"meterline metered {row.model} where the bill names {', '.join(others)}"
    return Cause("model_name", f"{words} on these days: the same calls under another name? "
                               "(a model alias maps one to the other)")
