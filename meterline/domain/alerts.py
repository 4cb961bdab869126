"""Budget alerts: what one says, how severe it is, and the sentence a person reads.

An :class:`Alert` is the record of a budget crossing a threshold (``kind="threshold"``) or being
on course to overrun its limit (``kind="projected_overrun"``), or of a provider account whose
balance is low (``low_balance``) or whose bill differs from what was metered
(``bill_difference``; docs/reconcile.md). It carries exact Decimal money and
an aware UTC time; notification adapters (``meterline.alerts``) only render and deliver it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Final

from meterline.domain.money import MINOR_UNITS, format_decimal, readable
from meterline.errors import InvalidInput

LEVELS: Final = ("info", "warning", "critical")
KINDS: Final = ("threshold", "projected_overrun", "low_balance", "bill_difference",
                 "sync_failed")
#: Kinds about a provider account (``source``) rather than a budget.
ACCOUNT_KINDS: Final = ("low_balance", "bill_difference", "sync_failed")
#: Kinds about no amount of money (their ``currency`` is empty; amount and limit count).
MONEYLESS_KINDS: Final = ("sync_failed",)
#: Spent fractions of the limit at which an alert turns ``warning`` and ``critical``.
WARNING_FRACTION: Final = Decimal("0.8")
CRITICAL_FRACTION: Final = Decimal(1)
TOTAL_PERIOD: Final = "total"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    #: Human text naming what the budget covers ("tenant acme · model openai/gpt-4o").
    scope: str
    budget_id: str | None
    level: str
    kind: str
    #: Of the limit, in percent (``Decimal("80")``): spent for a threshold alert, projected by
    #: the end of the period for a projected overrun.
    percentage: Decimal
    #: Spent so far in the period.
    amount: Decimal
    limit: Decimal
    currency: str
    #: "2026-11", "2026-11-30" or "total".
    period: str
    message: str
    created_at: datetime
    resolved: bool = False
    #: ``provider:account`` of an account's alert (ACCOUNT_KINDS); None for a budget's.
    source: str | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InvalidInput(f"level: must be one of {', '.join(LEVELS)}, got {self.level!r}",
                               field="level")
        if self.kind not in KINDS:
            raise InvalidInput(f"kind: must be one of {', '.join(KINDS)}, got {self.kind!r}",
                               field="kind")
        for name in ("percentage", "amount", "limit"):
            value = getattr(self, name)
            # A float here would already have lost the exact amount the ledger holds.
            if not isinstance(value, Decimal) or not value.is_finite():
                raise InvalidInput(f"{name}: must be a finite Decimal, got {value!r}", field=name)
        if self.currency not in MINOR_UNITS and not (self.kind in MONEYLESS_KINDS
                                                     and self.currency == ""):
            raise InvalidInput(f"currency: unknown currency {self.currency!r}", field="currency")
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise InvalidInput("created_at: must be timezone-aware", field="created_at")
        if self.created_at.tzinfo is not UTC:
            # Frozen, but normalising here keeps every rendering of the time in UTC.
            object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))


def level_for(fraction: Decimal) -> str:
    """Severity of a spent (or projected) fraction of the limit: ≥1 critical, ≥0.8 warning."""
    if not isinstance(fraction, Decimal):
        raise TypeError(f"fraction must be Decimal, got {type(fraction).__name__}")
    if fraction >= CRITICAL_FRACTION:
        return "critical"
    if fraction >= WARNING_FRACTION:
        return "warning"
    return "info"


def display_money(value: Decimal, currency: str) -> str:
    """An amount for a person to read (``money.readable``): the currency's minor digits
    ("8.00"), and below one minor unit two significant digits ("0.0042"), so a small budget
    never reads as "0.00 of 0.00 USD"."""
    return readable(value, currency)


def display_percentage(value: Decimal) -> str:
    """At most one decimal place, cut rather than rounded: 99.96% must not read as 100%."""
    return format_decimal(value.quantize(Decimal("0.1"), rounding=ROUND_DOWN))


def _for_period(period: str) -> str:
    return " in total" if period == TOTAL_PERIOD else f" for {period}"


def alert_message(scope: str, *, kind: str, percentage: Decimal, amount: Decimal,
                  limit: Decimal, currency: str, period: str) -> str:
    """The alert's sentence, e.g.
    "Budget 'tenant acme · month' reached 80% (8.00 of 10.00 USD) for 2026-11"."""
    spent, cap = display_money(amount, currency), display_money(limit, currency)
    percent = display_percentage(percentage)
    if kind == "threshold":
        return (f"Budget '{scope}' reached {percent}% ({spent} of {cap} {currency})"
                f"{_for_period(period)}")
    if kind == "projected_overrun":
        return (f"Budget '{scope}' is projected to reach {percent}% of its limit "
                f"({spent} of {cap} {currency} spent so far){_for_period(period)}")
    raise InvalidInput(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
