"""Provider bills in, reconciliation out (``meterline sync --file``, ``meterline reconcile``,
``POST /api/provider-bills``, ``GET /api/reconcile``).

Metered amounts are the daily rollups' costs (refunds included, so they net out) per provider,
model and day; rollup days are each tenant's local days, provider bills are in the provider's
own days, so a day's split between two bills can differ by the hours between the two timezones:
reconcile whole cycles, or allow for it with the tolerance. A metered day has its cost in the
price's currency and, where the ledger converted it, in the tenant's (``billed_cost``): the report
takes whichever is in its currency (so a tenant's own bill, exported and imported back,
reconciles to the digit), and converts other amounts at the FX rate in force at the start of
their day; what no rate covers is listed under ``unconverted``, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, select

from meterline.domain.bills import parse_cycle
from meterline.domain.fx import FxTable
from meterline.domain.money import MONEY_CONTEXT, ZERO, Amount, currency_code, format_decimal
from meterline.domain.reconcile import (
    DEFAULT_TOLERANCE,
    BilledPeriod,
    MeteredDay,
    reconcile,
    tolerance_of,
)
from meterline.errors import FxRateMissing, InvalidInput
from meterline.providers.bill_files import read_bill
from meterline.store import audit, pricing, provider_bills
from meterline.store.audit import Actor
from meterline.store.schema import usage_daily
from meterline.store.types import money_sum


def import_bill(engine: Engine, text: str, file_format: str,
                provider: str | None = None, *, actor: Actor | None) -> dict[str, Any]:
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
        names = sorted({line.period.provider for line in lines})
        summary = {
            "format": file_format, "rows": len(lines), "lines": stored, "providers": names,
            "from": min(line.period.start for line in lines).isoformat(),
            "until": max(line.period.end for line in lines).isoformat(),
            "totals": {currency: format_decimal(total)
                       for currency, total in sorted(totals.items())},
        }
        audit.record(conn, actor, "provider_bill.import", target=",".join(names),
                     details=summary)
    return summary


def report(engine: Engine, cycle: object, *, provider: str | None = None,
           tolerance: object = DEFAULT_TOLERANCE, currency: str | None = None,
           reporting_currency: str = "USD") -> dict[str, Any]:
    """Metered against billed for the billed periods that start in ``cycle`` and the metered
    days of the cycle, in one currency (``currency``; else the one both sides share; else
    ``reporting_currency``)."""
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
        metered = _metered(conn, first, until, provider)
        fx = pricing.load_fx(conn)
    metered = [m for m in metered if m.day.day < last or _covered(m.day, billed)]
    target = (currency_code(currency) if currency
              else _shared_currency(metered, [code for _, code in billed], reporting_currency))
    unconverted: list[dict[str, Any]] = []
    metered_days = [MeteredDay(m.day.provider, m.day.model, m.day.day, amount)
                    for m, amount in _converted(
                        ((m, *m.in_currency(target), m.day.day) for m in metered),
                        target, fx, "metered", unconverted)]
    billed_periods = [BilledPeriod(period.provider, period.model, period.start, period.end,
                                   amount)
                      for period, amount in _converted(
                          ((period, period.amount, code, period.start)
                           for period, code in billed), target, fx, "billed", unconverted)]
    rows = reconcile(metered_days, billed_periods, share)
    return {"cycle": str(month), "currency": target, "tolerance": format_decimal(share),
            "rows": [row.to_json() for row in rows], "unconverted": unconverted}


T = TypeVar("T")


def _covered(day: MeteredDay, billed: list[tuple[BilledPeriod, str]]) -> bool:
    """Whether a billed period of the day's provider and model covers it."""
    return any(period.provider == day.provider and period.model == day.model
               and period.start <= day.day < period.end for period, _ in billed)


class _Metered(NamedTuple):
    """A metered day (its amount: the cost in the price's currency ``currency``) and, where the
    ledger converted it, the same calls in the tenant's ``billed_currency``."""

    day: MeteredDay
    currency: str
    billed_currency: str
    billed: Decimal

    def currencies(self) -> set[str]:
        return {self.currency, *([self.billed_currency] if self.billed_currency else [])}

    def in_currency(self, target: str) -> tuple[Decimal, str]:
        """The amount as the ledger holds it in ``target`` where it does, else the cost to
        convert (in its price currency)."""
        if self.currency != target and self.billed_currency == target:
            return self.billed, target
        return self.day.amount, self.currency


def _shared_currency(metered: list[_Metered], billed: list[str], reporting: str) -> str:
    """The report's currency when none is asked for: the one every amount is in; else one that
    every metered day has (priced or billed) and every billed line is in; else ``reporting``."""
    codes = {m.currency for m in metered} | set(billed)
    if len(codes) == 1:
        return next(iter(codes))
    shared = set(billed)
    for m in metered:
        shared &= m.currencies()
    return next(iter(shared)) if len(shared) == 1 else reporting


def _metered(conn: Connection, first: date, until: date,
             provider: str | None) -> list[_Metered]:
    """Cost per provider, model, day and currencies (unpriced calls cost nothing here)."""
    c = usage_daily.c
    query = (select(c.provider, c.model, c.day, c.currency, c.billed_currency,
                    money_sum(c.cost).label("cost"), money_sum(c.billed_cost).label("billed"))
             .where(c.day >= first, c.day < until, c.currency != "")
             .group_by(c.provider, c.model, c.day, c.currency, c.billed_currency))
    if provider is not None:
        query = query.where(c.provider == provider)
    return [_Metered(MeteredDay(r.provider, r.model, r.day, r.cost), r.currency,
                     r.billed_currency, r.billed) for r in conn.execute(query)]


def _converted(items: Iterable[tuple[T, Decimal, str, date]], target: str, fx: FxTable,
                  side: str, unconverted: list[dict[str, Any]]) -> list[tuple[T, Decimal]]:
    out = []
    for item, amount, code, day in items:
        if code == target:
            out.append((item, amount))
            continue
        try:
            converted, _ = fx.convert(Amount(amount, code), target,
                                      datetime.combine(day, time(), UTC))
        except FxRateMissing:
            unconverted.append({"side": side, "date": day.isoformat(), "currency": code,
                                "amount": format_decimal(amount)})
            continue
        out.append((item, converted.number))
    return out
