"""The pieces statistics are made of: whose numbers in which currency (View), adding amounts
in that currency (Tally), one group of a breakdown (Group), and the checks of their inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from meterline.domain.events import parse_timestamp
from meterline.domain.fx import FxTable
from meterline.domain.money import format_decimal
from meterline.errors import FxRateMissing, InvalidInput
from meterline.services.inputs import whole_number
from meterline.store.accounts import get_tenant, list_tenants
from meterline.store.pricing import load_fx
from meterline.store.rollup_writes import SUM_CONTEXT, ZERO
from meterline.store.stats import LATENCY_BOUNDS_MS, LATENCY_BUCKETS

UTC_ZONE = ZoneInfo("UTC")
MAX_DAYS = 3660
#: Days far enough from the ends of the calendar that a day before or after still exists.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
#: The one rounded figure: a trend's average, half-up to this many decimal places.
AVERAGE_PLACES = Decimal("1E-12")


def day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """The last instant of a day: rates added during the day count for all of it."""
    return day_start(day + timedelta(days=1), zone) - timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class View:
    """One tenant in its own currency (``fx`` None: nothing is converted), or every tenant in
    the reporting currency, converted with the stored FX rates."""

    tenant_id: str | None
    currency: str
    zones: dict[str, ZoneInfo]
    fx: FxTable | None
    now: datetime

    @property
    def converts(self) -> bool:
        return self.fx is not None

    def zone_of(self, tenant_id: str | None) -> ZoneInfo:
        return self.zones.get(tenant_id or "", UTC_ZONE)

    def today_of(self, tenant_id: str | None) -> date:
        return self.now.astimezone(self.zone_of(tenant_id)).date()

    @property
    def zone(self) -> ZoneInfo:
        """The timezone of dates given as times: the tenant's, or UTC for all tenants."""
        return self.zone_of(self.tenant_id) if self.tenant_id else UTC_ZONE

    @property
    def today(self) -> date:
        if self.tenant_id is not None or not self.zones:
            return self.now.astimezone(self.zone).date()
        return max(self.today_of(t) for t in self.zones)

    def bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        """The widest instants holding these days in any of the view's timezones."""
        zones = list(self.zones.values()) or [UTC_ZONE]
        return (min(day_start(first, z) for z in zones),
                max(day_start(last + timedelta(days=1), z) for z in zones))


def load_view(conn: Connection, tenant: str | None, reporting_currency: str,
              now: datetime | None = None) -> View:
    at = now or datetime.now(UTC)
    if tenant:
        if len(tenant) > 64 or "\x00" in tenant:
            raise InvalidInput("tenant: at most 64 characters", field="tenant")
        found = get_tenant(conn, tenant)  # UnknownTenant: 404
        return View(found.id, found.currency, {found.id: ZoneInfo(found.timezone)}, None, at)
    return View(None, reporting_currency,
                {t.id: ZoneInfo(t.timezone) for t in list_tenants(conn)}, load_fx(conn), at)


def parse_day(value: str, name: str, view: View, *, end: bool = False) -> date:
    """A date (YYYY-MM-DD), or an ISO 8601 time taken as its day in the view's timezone. A time
    that ends a range is exclusive: an end at midnight ends with the day before."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
        else:
            at = parse_timestamp(text, name)
            day = (at - timedelta(microseconds=1) if end else at).astimezone(view.zone).date()
    except (ValueError, OverflowError, InvalidInput):  # Overflow: a time at datetime's ends
        raise InvalidInput(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                           "time", field=name) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{name}: {value!r} is out of range", field=name)
    return day


def parse_days(value: object) -> int:
    value = whole_number(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
        raise InvalidInput(f"days: must be a whole number from 1 to {MAX_DAYS}, got {value!r}",
                           field="days")
    return value


def rounded_average(total: Decimal, count: int) -> Decimal:
    # Rounds on purpose (a third is not a finite decimal); digits to spare before the rounding.
    context = Context(prec=SUM_CONTEXT.prec, rounding=ROUND_HALF_UP)
    return context.divide(total, Decimal(count)).quantize(AVERAGE_PLACES, context=context)


class Unconverted(NamedTuple):
    """What no FX rate converted, in its price currency."""

    currency: str
    amount: Decimal
    calls: int

    def to_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "amount": format_decimal(self.amount),
                "calls": self.calls}


class Tally:
    """Adds amounts up in the view's currency; what it cannot convert is kept apart."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.total = ZERO
        self.unpriced = 0
        self._unconverted: dict[str, tuple[Decimal, int]] = {}

    def add(self, row: Any, calls: int) -> Decimal:
        """A rollup row (with ``tenant_id`` and ``day`` where the view converts)."""
        per_day = self.view.converts
        return self.add_values(row.currency, row.billed_currency, row.cost, row.billed_cost,
                               row.tenant_id if per_day else None, row.day if per_day else None,
                               calls)

    def add_values(self, currency: str, billed_currency: str, cost: Decimal,
                   billed_cost: Decimal, tenant_id: str | None, day: date | None,
                   calls: int) -> Decimal:
        """The amount in the view's currency (0 for what is unpriced or not converted)."""
        if not currency:
            self.unpriced += calls
            return ZERO
        target = self.view.currency
        amount: Decimal | None
        if billed_currency == target:
            amount = billed_cost
        elif currency == target:
            amount = cost
        else:
            amount = self._converted(currency, billed_currency, cost, billed_cost, tenant_id,
                                     day)
        if amount is None:
            before, count = self._unconverted.get(currency, (ZERO, 0))
            self._unconverted[currency] = (SUM_CONTEXT.add(before, cost), count + calls)
            return ZERO
        self.total = SUM_CONTEXT.add(self.total, amount)
        return amount

    def _converted(self, currency: str, billed_currency: str, cost: Decimal,
                   billed_cost: Decimal, tenant_id: str | None, day: date | None
                   ) -> Decimal | None:
        fx = self.view.fx
        if fx is None or day is None:
            return None
        at = day_end(day, self.view.zone_of(tenant_id))
        # The billed amount first: it is what the tenant was charged.
        for source, amount in ((billed_currency, billed_cost), (currency, cost)):
            if source:
                try:
                    return fx.converted(amount, source, self.view.currency, at)
                except FxRateMissing:
                    continue
        return None

    def unconverted(self) -> list[Unconverted]:
        return [Unconverted(c, a, n) for c, (a, n) in sorted(self._unconverted.items())]


def _percentile_from_buckets(buckets: list[int], share: Decimal) -> int | None:
    """Estimated like Prometheus' histogram_quantile: linear within the bucket holding the
    rank; in the open last bucket, its lower bound."""
    count = sum(buckets)
    if not count:
        return None
    rank = share * count
    seen = 0
    for index, in_bucket in enumerate(buckets):
        if in_bucket and seen + in_bucket >= rank:
            if index == len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0
            upper = LATENCY_BOUNDS_MS[index]
            return int(lower + (upper - lower) * (rank - seen) / in_bucket)
        seen += in_bucket
    return LATENCY_BOUNDS_MS[-1]


def _percentile_exact(values: list[int], share: Decimal) -> int | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = int((share * len(ordered)).to_integral_value(rounding="ROUND_CEILING"))
    return ordered[max(rank, 1) - 1]


@dataclass
class Group:
    """One group of a breakdown. Meter groups count charge lines and have a quantity instead
    of token counts; tag and purpose groups (raw records) have exact latency percentiles."""

    key: Any
    cost: Decimal = ZERO
    calls: int = 0
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    quantity: Decimal | None = None
    latency_total: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latencies: list[int] | None = None

    def add_rollup(self, row: Any, amount: Decimal) -> None:
        self.cost = SUM_CONTEXT.add(self.cost, amount)
        fields = row._fields  # hasattr on a Row raises and catches inside: 10× dearer
        if "lines" in fields:
            self.calls += row.lines
            self.input_tokens = self.output_tokens = None
            self.quantity = SUM_CONTEXT.add(self.quantity or ZERO, row.quantity)
            return
        self.calls += row.calls
        self.input_tokens = (self.input_tokens or 0) + row.input_tokens
        self.output_tokens = (self.output_tokens or 0) + row.output_tokens
        if "latency_ms_total" in fields:  # left out where no latency is shown
            self.latency_total += row.latency_ms_total
            for index, name in enumerate(LATENCY_BUCKETS):
                self.buckets[index] += getattr(row, name)

    def add_record(self, record: Any, amount: Decimal) -> None:
        self.cost = SUM_CONTEXT.add(self.cost, amount)
        self.calls += 1
        self.input_tokens = (self.input_tokens or 0) + record.input_tokens
        self.output_tokens = (self.output_tokens or 0) + record.output_tokens
        if self.latencies is None:
            self.latencies = []
        if record.latency_ms is not None:
            self.latencies.append(record.latency_ms)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "cost": format_decimal(self.cost),
                               "calls": self.calls, "input_tokens": self.input_tokens,
                               "output_tokens": self.output_tokens}
        if self.quantity is not None:
            out["quantity"] = format_decimal(self.quantity)
            return out
        if self.latencies is not None:
            count, total = len(self.latencies), sum(self.latencies)
            p50 = _percentile_exact(self.latencies, Decimal("0.5"))
            p95 = _percentile_exact(self.latencies, Decimal("0.95"))
        else:
            count, total = sum(self.buckets), self.latency_total
            p50 = _percentile_from_buckets(self.buckets, Decimal("0.5"))
            p95 = _percentile_from_buckets(self.buckets, Decimal("0.95"))
        out["latency_avg_ms"] = (total + count // 2) // count if count else None
        out["latency_p50_ms"], out["latency_p95_ms"] = p50, p95
        return out
