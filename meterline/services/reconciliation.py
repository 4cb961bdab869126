"""Provider bills in, reconciliation out (``meterline sync --file``, ``meterline reconcile``,
``POST /api/provider-bills``, ``GET /api/reconcile``).

Metered amounts are the daily rollups' costs (refunds included, so they net out) per provider,
model and day; rollup days are each tenant's local days, provider bills are in the provider's
own days, so a day's split between two bills can differ by the hours between the two timezones:
reconcile whole cycles, or allow for it with the tolerance. A metered day has its cost in the
price's currency and, where the ledger converted it, in the tenant's (``billed_cost``): the report
takes whichever is in its currency (so a tenant's own bill, exported and imported back,
reconciles to the digit), and converts other amounts at the FX rate in force at the start of
their day; what no rate covers is listed under ``unconverted``, never guessed. Each row that
differs names its likely causes where the ledger shows one (``domain.reconcile.explain``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from meterline.domain.bills import parse_cycle
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, ZERO, Amount, currency_code, format_decimal
from meterline.domain.pricebook import PriceBook
from meterline.domain.reconcile import (
    DEFAULT_TOLERANCE,
    DIFFERING,
    BilledPeriod,
    Evidence,
    MeteredDay,
    Row,
    explain,
    reconcile,
    tolerance_of,
)
from meterline.errors import FxRateMissing, InvalidInput, PriceNotFound, UnknownModel
from meterline.providers.bill_files import read_bill
from meterline.store import audit, pricing, provider_bills
from meterline.store import reconcile as store
from meterline.store.audit import Actor
from meterline.store.reconcile import MeteredCost


@dataclass(frozen=True)
class ImportSummary:
    """What a bill file import stored."""

    format: str
    rows: int
    lines: int
    providers: list[str]
    first: date
    until: date
    totals: dict[str, Decimal]

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "rows": self.rows, "lines": self.lines,
                "providers": self.providers, "from": self.first.isoformat(),
                "until": self.until.isoformat(),
                "totals": {code: format_decimal(total) for code, total in self.totals.items()}}


@dataclass(frozen=True)
class Unconverted:
    """An amount left out of the report: no FX rate into its currency covers its day."""

    side: str
    day: date
    currency: str
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "date": self.day.isoformat(), "currency": self.currency,
                "amount": format_decimal(self.amount)}


@dataclass(frozen=True)
class Report:
    """Metered against billed for a cycle, in one currency."""

    cycle: str
    currency: str
    tolerance: Decimal
    rows: list[Row]
    unconverted: list[Unconverted]

    def differing(self) -> list[Row]:
        return [row for row in self.rows if row.status in DIFFERING]

    def to_json(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "currency": self.currency,
                "tolerance": format_decimal(self.tolerance),
                "rows": [row.to_json() for row in self.rows],
                "unconverted": [item.to_json() for item in self.unconverted]}


def import_bill(engine: Engine, text: str, file_format: str,
                provider: str | None = None, *, actor: Actor | None) -> ImportSummary:
    """Store a provider bill file's charges (replacing what was stored for its days)."""
    lines = read_bill(text, file_format, provider)
    if not lines:
        raise InvalidInput("file: no charges in it", field="file")
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.currency] = MONEY_CONTEXT.add(totals.get(line.currency, ZERO),
                                                  line.period.amount)
    with engine.begin() as conn:
        stored = provider_bills.replace(
            conn, [(line.period, line.currency, line.raw) for line in lines], file_format)
        summary = ImportSummary(
            format=file_format, rows=len(lines), lines=stored,
            providers=sorted({line.period.provider for line in lines}),
            first=min(line.period.start for line in lines),
            until=max(line.period.end for line in lines), totals=dict(sorted(totals.items())))
        audit.record(conn, actor, "provider_bill.import", target=",".join(summary.providers),
                     details=summary.to_json())
    return summary


def report(engine: Engine, cycle: object, *, provider: str | None = None,
           tolerance: object = DEFAULT_TOLERANCE, currency: str | None = None,
           reporting_currency: str = "USD", book: PriceBook | None = None) -> Report:
    """Metered against billed for the billed periods that start in ``cycle`` and the metered
    days of the cycle, in one currency (``currency``; else the one both sides share; else
    ``reporting_currency``); each differing row with its likely causes. ``book``: the price
    book the caller holds (a running app's ``metering.book``), else it is loaded from the
    database when a row differs (about 3,000 versions: 120 ms)."""
    month = parse_cycle(cycle)
    share = tolerance_of(tolerance)
    first = date(month.year, month.month, 1)
    following = month.next()
    last = date(following.year, following.month, 1)
    with engine.connect() as conn:
        billed = [(period, code) for period, code in
                  provider_bills.overlapping(conn, first, last, provider)
                  if first <= period.start < last]
        until = max([last, *(period.end for period, _ in billed)])
        metered = store.metered(conn, first, until, provider)
        fx = pricing.load_fx(conn)
        metered = [m for m in metered if m.day.day < last or _covered(m.day, billed)]
        target = (currency_code(currency) if currency
                  else _shared_currency(metered, [code for _, code in billed],
                                        reporting_currency))
        unconverted: list[Unconverted] = []
        metered_days = [MeteredDay(m.day.provider, m.day.model, m.day.day, amount)
                        for m, amount in _converted(
                            ((m, *m.in_currency(target), m.day.day) for m in metered),
                            target, fx, "metered", unconverted)]
        billed_periods = [BilledPeriod(period.provider, period.model, period.start,
                                       period.end, amount)
                          for period, amount in _converted(
                              ((period, period.amount, code, period.start)
                               for period, code in billed), target, fx, "billed",
                              unconverted)]
        rows = reconcile(metered_days, billed_periods, share)
        rows = explain(rows, _evidence(conn, rows, first, until, book))
    return Report(str(month), target, share, rows, unconverted)


T = TypeVar("T")
_ONE_DAY = timedelta(days=1)


def _evidence(conn: Connection, rows: list[Row], first: date, until: date,
              book: PriceBook | None = None) -> Evidence:
    """What the ledger shows about the pairs whose rows differ (nothing is read when none
    does)."""
    pairs = {(row.provider, row.model) for row in rows if row.status in DIFFERING}
    if not pairs:
        return Evidence()
    # A day either side: the tenants' days and the provider's overlap across midnight.
    start, end = first - _ONE_DAY, until + _ONE_DAY
    counts = store.day_counts(conn, start, end, pairs)
    if book is None:
        book = pricing.load_pricebook(conn)
    return Evidence(
        unpriced={key: found.unpriced for key, found in counts.items() if found.unpriced},
        estimated={key: found.estimated for key, found in counts.items() if found.estimated},
        reported=store.reported_calls(conn, start, end, pairs),
        price_changes={pair: changes for pair in pairs
                       if (changes := _price_changes(book, *pair, start, end))},
        tenant_zones=frozenset(store.tenant_zones(conn)))


def _price_changes(book: PriceBook, provider: str, model: str, first: date,
                   until: date) -> list[tuple[date, str]]:
    """The days in ``[first, until]`` on which the version pricing the model changed in some
    currency (a version that starts but does not win changes nothing), with the new version."""
    name = f"{provider}/{model}" if "/" not in model else model
    if not book.knows(name):
        return []  # before resolve: its "did you mean" search costs tens of ms, unused here
    try:
        model_id = book.resolve(name)
    except UnknownModel:
        return []
    versions = book.versions(model_id)
    currencies = {version.currency for version in versions}
    changes = []
    for version in versions:
        at = version.effective_from
        if not first <= at.date() <= until:
            continue
        for code in sorted(currencies):
            try:
                now = book.version_at(model_id, at, code)
                before = book.version_at(model_id, at - timedelta(microseconds=1), code)
            except PriceNotFound:
                continue
            if now.id != before.id:
                changes.append((at.date(), now.id))
                break
    return sorted(set(changes))


def _covered(day: MeteredDay, billed: list[tuple[BilledPeriod, str]]) -> bool:
    """Whether a billed period of the day's provider and model covers it."""
    return any(period.provider == day.provider and period.model == day.model
               and period.start <= day.day < period.end for period, _ in billed)


def _shared_currency(metered: list[MeteredCost], billed: list[str], reporting: str) -> str:
    """The report's currency when none is asked for: the one every amount is in; else one that
    every metered day has (priced or billed) and every billed line is in; else ``reporting``."""
    codes = {m.currency for m in metered} | set(billed)
    if len(codes) == 1:
        return next(iter(codes))
    shared = set(billed)
    for m in metered:
        shared &= m.currencies()
    return next(iter(shared)) if len(shared) == 1 else reporting


def _converted(items: Iterable[tuple[T, Decimal, str, date]], target: str, fx: FxTable,
               side: str, unconverted: list[Unconverted]) -> list[tuple[T, Decimal]]:
    out = []
    for item, amount, code, day in items:
        if code == target:
            out.append((item, amount))
            continue
        try:
            converted, _ = fx.convert(Amount(amount, code), target,
                                      datetime.combine(day, time(), UTC))
        except FxRateMissing:
            unconverted.append(Unconverted(side, day, code, amount))
            continue
        out.append((item, converted.number))
    return out
