"""Budgets: money limits on a scope, per period, and the arithmetic of holding spend against them.

A budget's *scope* names what it covers — the whole deployment, or any combination of tenant,
user, key, provider and model — and its *period* is a day or a calendar month in the budget's
timezone, or ``total`` (one period forever). For each period the store keeps two numbers: what
was spent (the ledger's cost of the calls it covers) and what is reserved (the worst case of the
calls still in flight). A call may start only if ``spent + reserved + hold <= limit``; when it
ends its hold is released and its real cost added to ``spent``. As long as no call costs more
than its hold, spent can never pass the limit, however many calls run at once (SPEC §7.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.domain.money import MONEY_CONTEXT, decimal, format_decimal
from meterline.errors import InvalidInput

PERIODS = ("day", "month", "total")
MODES = ("block", "alert")
DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
#: The one period of a ``total`` budget starts here.
TOTAL_START = datetime(1970, 1, 1, tzinfo=UTC)
ZERO = Decimal(0)
#: A projection is an estimate, so it may round (to 12 places), unlike ledger money.
_PROJECTION_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP)


def choice(value: object, allowed: Sequence[str], field: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}, not {value!r}",
                           field=field)
    return value


def timezone(name: object, field: str = "timezone") -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{field} must be an IANA timezone name such as Asia/Shanghai",
                           field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"{field}: unknown timezone {name!r}", field=field) from exc


def limit_amount(value: object, field: str = "amount") -> Decimal:
    number = decimal(value, field=field)
    if number <= 0:
        raise InvalidInput(f"{field} must be greater than zero, not {format_decimal(number)}",
                           field=field)
    return number


def thresholds(value: object, field: str = "thresholds") -> tuple[Decimal, ...]:
    """``"0.5,0.8,1"`` or a list of numbers: fractions of the limit in (0, 1], sorted, unique."""
    if value is None:
        return DEFAULT_THRESHOLDS
    parts: Iterable[object]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        parts = value
    else:
        raise InvalidInput(f"{field} must be a list of fractions such as 0.5,0.8,1", field=field)
    found = set()
    for part in parts:
        number = decimal(part, field=field)
        if not ZERO < number <= 1:
            raise InvalidInput(f"{field}: each threshold must be in (0, 1], not "
                               f"{format_decimal(number)}", field=field)
        found.add(number.normalize())
    if not found:
        raise InvalidInput(f"{field} must name at least one threshold", field=field)
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Scope:
    """What a budget covers; ``None`` everywhere is the whole deployment."""

    tenant: str | None = None
    user: str | None = None
    key: str | None = None
    provider: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.user is not None and self.tenant is None:
            raise InvalidInput("a user budget needs its tenant", field="tenant")
        if self.user is not None and self.key is not None:
            raise InvalidInput("a budget covers a user or a key, not both", field="key")

    def covers(self, tenant: str, user: str | None, key: str | None, provider: str,
               model: str) -> bool:
        return ((self.tenant is None or self.tenant == tenant)
                and (self.user is None or self.user == user)
                and (self.key is None or self.key == key)
                and (self.provider is None or self.provider == provider)
                and (self.model is None or self.model == model))

    @property
    def key_text(self) -> str:
        """A stable identity of the scope (one budget per scope and period)."""
        return ";".join(f"{name}={value or ''}" for name, value in self._parts())

    def describe(self) -> str:
        named = [f"{name} {value}" for name, value in self._parts() if value is not None]
        return " · ".join(named) if named else "deployment"

    def _parts(self) -> list[tuple[str, str | None]]:
        return [("tenant", self.tenant), ("user", self.user), ("key", self.key),
                ("provider", self.provider), ("model", self.model)]


def period_bounds(period: str, at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The UTC start and end of the period holding ``at`` (end None for ``total``)."""
    if period == "total":
        return TOTAL_START, None
    local = at.astimezone(tz)
    if period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
        end = datetime.combine(start.date() + timedelta(days=1), start.timetz())
    else:
        start = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def period_label(period: str, start: datetime, tz: ZoneInfo) -> str:
    if period == "total":
        return "total"
    local = start.astimezone(tz)
    return local.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    scope: Scope
    period: str
    mode: str
    limit: Decimal
    currency: str
    thresholds: tuple[Decimal, ...]
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def bounds(self, at: datetime) -> tuple[datetime, datetime | None]:
        return period_bounds(self.period, at, self.zone)

    def describe(self) -> str:
        return f"{self.scope.describe()} · {self.period}"


def fits(limit: Decimal, spent: Decimal, reserved: Decimal, hold: Decimal) -> bool:
    """Whether a call holding ``hold`` may start (the check the store makes atomically)."""
    with localcontext(MONEY_CONTEXT):
        return spent + reserved + hold <= limit


def remaining(limit: Decimal, spent: Decimal, reserved: Decimal) -> Decimal:
    with localcontext(MONEY_CONTEXT):
        return max(ZERO, limit - spent - reserved)


def crossed(limit: Decimal, levels: Sequence[Decimal], before: Decimal,
            after: Decimal) -> list[Decimal]:
    """The thresholds that spend moving from ``before`` to ``after`` reached for the first time."""
    with localcontext(MONEY_CONTEXT):
        return [level for level in levels if before < level * limit <= after]


def projection(spent: Decimal, start: datetime, end: datetime | None, now: datetime) -> Decimal:
    """Spend at the period's end if it goes on at the pace so far (linear in time).

    ``total`` budgets have no end, so their projection is what was spent. In the first hour of a
    period the pace says little, so the projection is the spend itself until then.
    """
    if end is None or now >= end:
        return spent
    elapsed = (now - start).total_seconds()
    if elapsed < 3600:
        return spent
    whole = (end - start).total_seconds()
    with localcontext(_PROJECTION_CONTEXT):
        return (spent * Decimal(int(whole)) / Decimal(int(elapsed))).quantize(Decimal("1e-12"))
