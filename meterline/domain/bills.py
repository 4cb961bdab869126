"""Bills: the charge lines of a tenant (or one user) in one billing cycle, and their life cycle.

A bill is a value. ``open_bill`` gathers lines (built by the caller from the ledger's rollups) and
keeps their amounts unrounded, with ``total`` their exact sum. ``issue`` rounds once, half-up to
the currency's minor unit, by the largest-remainder method:

* the issued total is the exact total rounded half-up (so it equals the ledger's total, rounded
  once, as shown by statistics, summaries and reconciliation);
* each line is first rounded down to the minor unit; the minor units still missing to reach the
  issued total go, one each, to the lines with the largest remainders (ties: earlier line first);
* so the issued lines add up to the issued total exactly, each issued line is less than one
  minor unit from its exact amount, the total is at most half a minor unit from the exact total
  however many lines there are, and no sign changes (a refund never turns into a charge).

Rounding each line on its own would let the total drift by up to half a minor unit per line, and
a bill of many small lines could differ from the ledger's rounded total by several cents.

Statuses move ``open → issued → paid`` or ``open | issued → void``; nothing else. An issued bill
never changes: usage that arrives late for an issued cycle becomes adjustment lines
(``adjustment_of`` names the original cycle) of a later open bill, and a refund is a new negative
line (``refund=True``), never an edit of the charged one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from meterline.domain.budgets import timezone
from meterline.domain.money import (
    CONVERSION_CONTEXT,
    MINOR_UNITS,
    MONEY_CONTEXT,
    ROUNDING_CONTEXT,
    ZERO,
    currency_code,
    decimal,
    format_decimal,
    quantize_minor,
)
from meterline.domain.prices import UNIT_SIZES
from meterline.domain.rating import MINIMUM_CHARGE
from meterline.domain.usage import BILLING_TYPE, METERS, BillingType, Meter
from meterline.errors import BillClosed, InvalidInput, InvalidTransition

# --- cycles ----------------------------------------------------------------------------------

MIN_YEAR: Final = 1970
MAX_YEAR: Final = 9998
_CYCLE: Final = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True, slots=True, order=True)
class Cycle:
    """A billing cycle: one calendar month in the tenant's timezone, named ``YYYY-MM``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (MIN_YEAR <= self.year <= MAX_YEAR and 1 <= self.month <= 12):
            raise InvalidInput(f"cycle: {self.year:04d}-{self.month:02d} is not a month from "
                               f"{MIN_YEAR}-01 to {MAX_YEAR}-12", field="cycle")

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Cycle:
        return Cycle(self.year + 1, 1) if self.month == 12 else Cycle(self.year, self.month + 1)

    def previous(self) -> Cycle:
        return Cycle(self.year - 1, 12) if self.month == 1 else Cycle(self.year, self.month - 1)

    def bounds(self, tz: str | tzinfo = "UTC") -> tuple[datetime, datetime]:
        """UTC start (inclusive) and end (exclusive): local midnights of the 1st of two months."""
        zone = tz if isinstance(tz, tzinfo) else timezone(tz)
        end_year, end_month = ((self.year + 1, 1) if self.month == 12
                               else (self.year, self.month + 1))
        start = datetime(self.year, self.month, 1, tzinfo=zone)
        end = datetime(end_year, end_month, 1, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    @classmethod
    def containing(cls, at: datetime, tz: str | tzinfo = "UTC") -> Cycle:
        """The cycle holding an instant (a naive datetime is taken as UTC)."""
        zone = tz if isinstance(tz, tzinfo) else timezone(tz)
        local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)
        return cls(local.year, local.month)


def parse_cycle(value: object) -> Cycle:
    """``"2026-11"`` (or a Cycle) -> Cycle; anything else is InvalidInput on field ``cycle``."""
    if isinstance(value, Cycle):
        return value
    match = _CYCLE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"cycle: {value!r} is not a month written YYYY-MM (e.g. 2026-11)",
                           field="cycle")
    return Cycle(int(match[1]), int(match[2]))


# --- lines -----------------------------------------------------------------------------------

class LineStatus(StrEnum):
    CHARGED = "charged"
    REFUNDED = "refunded"


#: Meters a bill line may name: the usage meters and rating's minimum-charge top-up.
LINE_METERS: Final = METERS | {MINIMUM_CHARGE}


@dataclass(frozen=True, slots=True)
class BillLine:
    """One model and meter of a bill: ``quantity`` units, ``unit_price`` per ``unit``, ``amount``.

    ``amount`` is exact while the bill is open and rounded once it is issued (``unrounded`` then
    keeps the exact amount). A charged line is ≥ 0; a refund line (``refund=True``) is ≤ 0 in
    quantity and amount. ``adjustment_of`` names the issued cycle the usage belongs to when it
    arrived late and was billed in a later cycle. ``price_currency`` is the currency of
    ``unit_price`` where it is not the bill's (a line priced in CNY on a USD bill: its amount is
    converted, its unit price is not); None means the bill's currency.
    """

    model: str
    meter: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    adjustment_of: str | None = None
    refund: bool = False
    unrounded: Decimal | None = None
    price_currency: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInput("model: a bill line needs a model name", field="model")
        if self.meter not in LINE_METERS:
            raise InvalidInput(f"meter: unknown meter {self.meter!r}; known: "
                               f"{', '.join(sorted(LINE_METERS))}", field="meter")
        if not isinstance(self.unit, str) or not self.unit.strip():
            raise InvalidInput("unit: a bill line needs a unit (e.g. '1M tokens')", field="unit")
        if not isinstance(self.refund, bool):
            raise InvalidInput(f"refund: must be true or false, got {self.refund!r}",
                               field="refund")
        for name in ("quantity", "unit_price", "amount"):
            object.__setattr__(self, name, decimal(getattr(self, name), field=name))
        if self.unrounded is not None:
            object.__setattr__(self, "unrounded", decimal(self.unrounded, field="unrounded"))
        if self.unit_price < 0:
            raise InvalidInput("unit_price: must not be negative", field="unit_price")
        sign_ok = ((self.quantity <= 0 and self.amount <= 0) if self.refund
                   else (self.quantity >= 0 and self.amount >= 0))
        if not sign_ok:
            raise InvalidInput(
                "amount: a charged line is zero or positive and a refund line zero or negative "
                "(in quantity and amount); a refund is a new negative line, never an edit",
                field="amount")
        if self.adjustment_of is not None:
            object.__setattr__(self, "adjustment_of", str(parse_cycle(self.adjustment_of)))
        if self.price_currency is not None:
            object.__setattr__(self, "price_currency", currency_code(self.price_currency))

    @property
    def billing_type(self) -> str:
        """token, character, count or second, from the meter (a minimum charge is a count)."""
        if self.meter == MINIMUM_CHARGE:
            return BillingType.COUNT.value
        return BILLING_TYPE[Meter(self.meter)].value

    @property
    def status(self) -> str:
        return (LineStatus.REFUNDED if self.refund else LineStatus.CHARGED).value

    @property
    def per(self) -> int:
        """Units per priced unit, from the unit label ("1M tokens" -> 1000000, "image" -> 1)."""
        head, space, _ = self.unit.partition(" ")
        return UNIT_SIZES[head] if space and head in UNIT_SIZES else 1

    @property
    def exact_amount(self) -> Decimal:
        """The amount before rounding (the amount itself while the bill is open)."""
        return self.amount if self.unrounded is None else self.unrounded

    def refunded(self) -> BillLine:
        """The refund of this line: the same line, negated, marked ``refund``."""
        if self.refund:
            raise InvalidInput("refund: a refund line cannot be refunded again", field="refund")
        return replace(self, quantity=-self.quantity, amount=-self.exact_amount, refund=True,
                       unrounded=None)

    def to_json(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "meter": self.meter,
            "billing_type": self.billing_type,
            "quantity": format_decimal(self.quantity),
            "unit": self.unit,
            "unit_price": format_decimal(self.unit_price),
            "amount": format_decimal(self.amount),
            "status": self.status,
            "adjustment_of": self.adjustment_of,
        }
        if self.price_currency is not None:
            out["price_currency"] = self.price_currency
        return out


#: Significant digits of a line's average FX rate (see ``line_fx_rate``).
FX_RATE_DIGITS: Final = 10
_FX_RATE_CONTEXT: Final = Context(prec=FX_RATE_DIGITS, rounding=ROUND_HALF_EVEN)
#: How far (a share of the amount) a line may be from its amount at the rate in force for it
#: still to have been converted at that rate: each call's line was rounded to 10 places, which
#: moves a line of tiny calls by more than a rate's last digits would.
FX_RATE_MATCH: Final = Decimal("0.0001")


def line_fx_rate(line: BillLine, currency: str, in_force: Decimal | None = None
                 ) -> Decimal | None:
    """Units of the bill's ``currency`` per unit of the line's price currency that its amount
    was converted at, so that quantity ÷ unit size × unit price × rate gives its amount:

    * 1 for a line priced in the bill's currency;
    * ``in_force`` — the one rate in force over the whole cycle, where the caller knows it —
      when the line's amount is that rate's (within FX_RATE_MATCH);
    * else its exact amount ÷ its amount in the price currency: the average of the rates its
      calls were converted at, weighted by amount (the rate changed within the cycle), to
      FX_RATE_DIGITS significant digits;
    * None where it has no amount in the price currency (free, or no quantity).
    """
    if line.price_currency is None or line.price_currency == currency:
        return Decimal(1)
    listed = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(line.quantity, line.unit_price),
                                  line.per)
    if not listed:
        return None
    if in_force is not None:
        with localcontext(CONVERSION_CONTEXT):
            expected = listed * in_force
            if abs(line.exact_amount - expected) <= abs(expected) * FX_RATE_MATCH:
                return in_force
    return _FX_RATE_CONTEXT.divide(line.exact_amount, listed)


def _line_order(line: BillLine) -> tuple[Any, ...]:
    return (line.adjustment_of or "", line.model, line.meter, line.refund, line.unit,
            line.unit_price, line.quantity, line.exact_amount, line.price_currency or "")


def adjustment_lines(original_cycle: Cycle | str,
                     lines: Iterable[BillLine]) -> tuple[BillLine, ...]:
    """Late usage of an issued cycle, marked to land in a later open bill as adjustments."""
    cycle = str(parse_cycle(original_cycle))
    out: list[BillLine] = []
    for line in lines:
        if line.adjustment_of not in (None, cycle):
            raise InvalidInput(f"adjustment_of: line already adjusts {line.adjustment_of}, "
                               f"not {cycle}", field="adjustment_of")
        out.append(replace(line, adjustment_of=cycle))
    return tuple(out)


# --- bills -----------------------------------------------------------------------------------

class BillStatus(StrEnum):
    OPEN = "open"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


#: The only status changes a bill may make.
TRANSITIONS: Final[Mapping[BillStatus, frozenset[BillStatus]]] = MappingProxyType({
    BillStatus.OPEN: frozenset({BillStatus.ISSUED, BillStatus.VOID}),
    BillStatus.ISSUED: frozenset({BillStatus.PAID, BillStatus.VOID}),
    BillStatus.PAID: frozenset(),
    BillStatus.VOID: frozenset(),
})
_ORDER: Final = tuple(BillStatus)
_BY_NAME: Final[Mapping[str, BillStatus]] = MappingProxyType({s.value: s for s in BillStatus})


def _allowed(status: BillStatus) -> list[str]:
    return [s.value for s in _ORDER if s in TRANSITIONS[status]]


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(MONEY_CONTEXT):
        return sum(values, ZERO)


@dataclass(frozen=True, slots=True)
class Bill:
    """All lines of a tenant (``user`` None) or of one user in a cycle; ``total`` is their sum."""

    tenant: str
    user: str | None
    cycle: Cycle
    currency: str
    status: BillStatus
    lines: tuple[BillLine, ...]
    total: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "cycle", parse_cycle(self.cycle))
        object.__setattr__(self, "currency", currency_code(self.currency))
        object.__setattr__(self, "status", bill_status(self.status))
        object.__setattr__(self, "lines", tuple(self.lines))
        if not isinstance(self.tenant, str) or not self.tenant:
            raise InvalidInput("tenant: a bill needs a tenant", field="tenant")
        if self.user is not None and (not isinstance(self.user, str) or not self.user):
            raise InvalidInput("user: give a user id or none for the tenant bill", field="user")
        for line in self.lines:
            if line.adjustment_of is not None and line.adjustment_of >= str(self.cycle):
                raise InvalidInput(f"adjustment_of: {line.adjustment_of} is not a cycle before "
                                   f"{self.cycle}", field="adjustment_of")
        if self.total != _exact_sum(line.amount for line in self.lines):
            raise InvalidInput(f"total: {self.total} is not the sum of the bill's lines",
                               field="total")
        if self.status in (BillStatus.ISSUED, BillStatus.PAID):
            for value in (self.total, *(line.amount for line in self.lines)):
                if value != quantize_minor(value, self.currency):
                    raise InvalidInput(f"amount: {value} of an {self.status} bill is not rounded "
                                       f"to the {self.currency} minor unit", field="amount")

    @property
    def key(self) -> tuple[str, str | None, str]:
        return self.tenant, self.user, str(self.cycle)

    def label(self) -> str:
        who = self.tenant if self.user is None else f"{self.tenant}/{self.user}"
        return f"{who} {self.cycle}"


def open_bill(tenant: str, cycle: Cycle | str, currency: str, lines: Iterable[BillLine] = (),
              *, user: str | None = None) -> Bill:
    """An open bill of the lines (sorted into a canonical order), total = their exact sum."""
    ordered = tuple(sorted(lines, key=_line_order))
    return Bill(tenant, user, parse_cycle(cycle), currency_code(currency), BillStatus.OPEN,
                ordered, _exact_sum(line.amount for line in ordered))


def add_lines(bill: Bill, lines: Iterable[BillLine]) -> Bill:
    """The open bill with more lines; refused (409) once the bill is issued, paid or void."""
    if bill.status is not BillStatus.OPEN:
        raise BillClosed(
            f"bill {bill.label()} is {bill.status} and never changes; bill late usage as "
            f"adjustment lines (adjustment_of={bill.cycle}) of a later open cycle",
            status=bill.status.value, cycle=str(bill.cycle))
    return open_bill(bill.tenant, bill.cycle, bill.currency, (*bill.lines, *lines),
                     user=bill.user)


def round_amounts(amounts: list[Decimal], currency: str) -> tuple[list[Decimal], Decimal]:
    """Largest remainder: (rounded amounts, rounded total), the amounts adding up to the total."""
    unit = Decimal(1).scaleb(-MINOR_UNITS[currency])
    total = quantize_minor(_exact_sum(amounts), currency)
    with localcontext(ROUNDING_CONTEXT):
        floors = [amount.quantize(unit, rounding=ROUND_FLOOR) for amount in amounts]
    with localcontext(MONEY_CONTEXT):
        remainders = [amount - floor for amount, floor in zip(amounts, floors, strict=True)]
        missing = int((total - sum(floors, ZERO)) / unit)
        ranked = sorted(range(len(amounts)), key=lambda i: (-remainders[i], i))
        bumped = set(ranked[:missing])
        rounded = [floor + unit if i in bumped else floor for i, floor in enumerate(floors)]
    return rounded, total


def issue(bill: Bill) -> Bill:
    """open -> issued: round once (largest remainder, see the module docstring)."""
    return transition(bill, BillStatus.ISSUED)


def _issued(bill: Bill) -> Bill:
    exact = [line.amount for line in bill.lines]
    rounded, total = round_amounts(exact, bill.currency)
    lines = tuple(replace(line, amount=amount, unrounded=line.amount)
                  for line, amount in zip(bill.lines, rounded, strict=True))
    return replace(bill, status=BillStatus.ISSUED, lines=lines, total=total)


def bill_status(value: object) -> BillStatus:
    """``"issued"`` -> BillStatus.ISSUED; anything else is InvalidInput on field ``status``."""
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    raise InvalidInput(f"status: {value!r} is not one of {', '.join(_BY_NAME)}", field="status")


def transition(bill: Bill, new_status: BillStatus | str) -> Bill:
    """The bill in its new status; InvalidTransition when the life cycle does not allow it."""
    target = bill_status(new_status)
    if target not in TRANSITIONS[bill.status]:
        raise InvalidTransition(bill.label(), bill.status.value, target.value,
                                _allowed(bill.status))
    if target is BillStatus.ISSUED:
        return _issued(bill)
    return replace(bill, status=target)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One bill of a batch that could not change status, and why."""

    bill: Bill
    error: InvalidInput

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.bill.tenant, "user": self.bill.user, "cycle": str(self.bill.cycle),
                "status": self.bill.status.value, "error": self.error.message,
                "field": self.error.field, "allowed": _allowed(self.bill.status)}


def transition_many(bills: Iterable[Bill], new_status: BillStatus | str,
                    ) -> tuple[tuple[Bill, ...], tuple[Refusal, ...]]:
    """All or nothing: (every bill changed, ()) or ((), every refusal).

    A bad status name refuses the whole batch (InvalidInput); the same bill twice is a refusal.
    """
    target = bill_status(new_status)
    changed: list[Bill] = []
    refusals: list[Refusal] = []
    seen: set[tuple[str, str | None, str]] = set()
    for bill in bills:
        if bill.key in seen:
            refusals.append(Refusal(bill, InvalidInput(
                f"status: bill {bill.label()} appears twice in one batch", field="bill")))
            continue
        seen.add(bill.key)
        try:
            changed.append(transition(bill, target))
        except InvalidInput as exc:
            refusals.append(Refusal(bill, exc))
    if refusals:
        return (), tuple(refusals)
    return tuple(changed), ()


def to_json(bill: Bill) -> dict[str, Any]:
    """SPEC §5's bill shape; money and quantities as plain decimal strings."""
    return {
        "tenant": bill.tenant,
        "user": bill.user,
        "cycle": str(bill.cycle),
        "currency": bill.currency,
        "status": bill.status.value,
        "total": format_decimal(bill.total),
        "lines": [line.to_json() for line in bill.lines],
    }
