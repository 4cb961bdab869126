"""Quotas: prepaid allowances of whole units, kept in an append-only ledger.

A :class:`Grant` credits units of one quota type; every change to what it has left is an
:class:`Entry` (``grant``, ``consume``, ``release``, ``reset``, ``expire``) and a grant's
remainder is the sum of its entries. Two rules close a grant without any entry being needed:

* a ``plan`` grant belongs to one cycle — the calendar month ``YYYY-MM`` in the tenant's
  timezone — and is worth nothing outside it (no carry-over, and no use ahead of its month);
* a grant with ``expires_at`` is worth nothing from that instant on.

``package`` and ``admin_grant`` grants never reset; they only expire if given ``expires_at``.
:func:`reset_entries` writes the ``reset``/``expire`` entries that record those closings for the
audit trail; :func:`balance` gives the same answer with or without them, so a late or missed
closing job never changes what a tenant may spend.

Consumption draws plan grants first, then packages, then admin grants (admin credit is usually
compensation, so it is kept longest). Within a tier the grant expiring soonest goes first (units
that expire are lost), then the oldest, then the lowest id, so the order is total and repeatable.

``at`` is the moment the rules are applied; every grant and entry passed counts, whatever its
time, so clock skew between writers can never hide a consumption. For a balance as it stood in
the past, pass only the entries written up to then. The caller picks the grants that apply
(a tenant's tenant-wide grants plus the user's own); entries of grants not passed are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline.errors import InvalidInput

QUOTA_TYPES: Final = ("text_token", "image", "tts_character", "video_second")
SOURCES: Final = ("plan", "package", "admin_grant")
KINDS: Final = ("grant", "consume", "release", "reset", "expire")
#: Far above any real allowance; keeps every sum an exact, database-friendly integer.
MAX_UNITS: Final = 10**15

#: Consumption order across sources (lower first).
_TIER: Final[Mapping[str, int]] = MappingProxyType({s: i for i, s in enumerate(SOURCES)})
#: The sign each kind of entry must have: +1 credits, -1 debits, 0 debits or records nothing.
_SIGN: Final[Mapping[str, int]] = MappingProxyType(
    {"grant": 1, "release": 1, "consume": -1, "reset": 0, "expire": 0})
_CYCLE: Final = re.compile(r"(\d{4})-(\d{2})")

Zone = tzinfo | str


# --- validators --------------------------------------------------------------------------------

def _one_of(value: object, allowed: tuple[str, ...], field: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(allowed)}",
                           field=field, allowed=list(allowed))
    return value


def quota_type(value: object, *, field: str = "type") -> str:
    return _one_of(value, QUOTA_TYPES, field)


def quota_source(value: object, *, field: str = "source") -> str:
    return _one_of(value, SOURCES, field)


def units(value: object, *, field: str, minimum: int = 0) -> int:
    """A whole number of units, ``minimum`` ≤ value ≤ 10^15; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: must be a whole number of units, got {value!r}", field=field)
    if not minimum <= value <= MAX_UNITS:
        raise InvalidInput(f"{field}: must be between {minimum} and {MAX_UNITS:,}, got {value!r}",
                           field=field)
    return value


def grant_amount(value: object, *, field: str = "amount") -> int:
    """A positive whole number of units, at most 10^15."""
    return units(value, field=field, minimum=1)


def _instant(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{field}: must be a datetime with a timezone, got {value!r}",
                           field=field)
    return value


def _zone(tz: Zone) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput(f"timezone: unknown timezone {tz!r}", field="timezone") from None


# --- cycles ------------------------------------------------------------------------------------

def parse_cycle(value: object, *, field: str = "cycle") -> tuple[int, int]:
    """``"2026-03"`` -> ``(2026, 3)``; years 1970–9998 so the next cycle always exists."""
    match = _CYCLE.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match[2]) <= 12 or not 1970 <= int(match[1]) <= 9998:
        raise InvalidInput(f"{field}: {value!r} is not a month YYYY-MM (1970-01 to 9998-12)",
                           field=field)
    return int(match[1]), int(match[2])


def cycle_of(at: datetime, tz: Zone) -> str:
    """The cycle (``YYYY-MM`` in the tenant's timezone) that contains ``at``."""
    local = _instant(at, "at").astimezone(_zone(tz))
    return f"{local.year:04d}-{local.month:02d}"


def cycle_bounds(cycle: str, tz: Zone) -> tuple[datetime, datetime]:
    """The cycle's [start, end) in UTC: local midnights on the 1st of this and the next month."""
    year, month = parse_cycle(cycle)
    zone = _zone(tz)
    after = (year + 1, 1) if month == 12 else (year, month + 1)
    # fold=0 picks the earlier instant where midnight is ambiguous, and the moment the clocks
    # jump where a DST gap swallows midnight: in both cases the instant the day begins.
    return (datetime(year, month, 1, tzinfo=zone).astimezone(UTC),
            datetime(*after, 1, tzinfo=zone).astimezone(UTC))


def next_cycle_start(at: datetime, tz: Zone) -> datetime:
    """When the cycle containing ``at`` ends and plan allowances reset, in the tenant's zone."""
    return cycle_bounds(cycle_of(at, tz), tz)[1].astimezone(_zone(tz))


# --- ledger records ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Grant:
    """Units credited to a tenant (``user`` None: tenant-wide) of one quota type.

    ``bonus`` is for packages only (1,000,000 + 200,000 bonus credits 1,200,000); ``cycle`` is
    required for plan grants — the month the allowance belongs to — and refused for others.
    """

    id: str
    tenant: str
    user: str | None
    type: str
    source: str
    amount: int
    bonus: int
    reference: str | None
    reason: str | None
    granted_at: datetime
    expires_at: datetime | None
    cycle: str | None

    def __post_init__(self) -> None:
        for name in ("id", "tenant"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInput(f"{name}: must be a non-empty string", field=name)
        quota_type(self.type)
        quota_source(self.source)
        grant_amount(self.amount)
        units(self.bonus, field="bonus")
        if self.bonus and self.source != "package":
            raise InvalidInput("bonus: only package grants carry a bonus", field="bonus")
        _instant(self.granted_at, "granted_at")
        if self.expires_at is not None and _instant(self.expires_at, "expires_at") \
                <= self.granted_at:
            raise InvalidInput("expires_at: must be after granted_at", field="expires_at")
        if self.source == "plan":
            parse_cycle(self.cycle)
        elif self.cycle is not None:
            raise InvalidInput("cycle: only plan grants belong to a cycle", field="cycle")

    @property
    def credited(self) -> int:
        return self.amount + self.bonus


@dataclass(frozen=True, slots=True)
class Entry:
    """One change to one grant's remainder; ``delta`` is signed (credits positive)."""

    grant_id: str
    type: str
    kind: str
    delta: int
    at: datetime
    request_id: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        quota_type(self.type)
        _one_of(self.kind, KINDS, "kind")
        if isinstance(self.delta, bool) or not isinstance(self.delta, int):
            raise InvalidInput(f"delta: must be an integer, got {self.delta!r}", field="delta")
        sign = _SIGN[self.kind]
        if (sign > 0 and self.delta <= 0) or (sign < 0 and self.delta >= 0) or \
                (sign == 0 and self.delta > 0):
            raise InvalidInput(f"delta: {self.delta} has the wrong sign for a {self.kind} entry",
                               field="delta")
        _instant(self.at, "at")


def credit_entry(grant: Grant) -> Entry:
    """The ``grant`` entry that puts a grant's units (bonus included) on the ledger."""
    return Entry(grant.id, grant.type, "grant", grant.credited, grant.granted_at,
                 note=grant.reason)


def _ledger(grants: Iterable[Grant], entries: Iterable[Entry]) -> dict[str, int]:
    """Each grant's entry sum, by grant id."""
    by_id: dict[str, Grant] = {}
    for grant in grants:
        if grant.id in by_id:
            raise InvalidInput(f"grants: grant id {grant.id!r} appears twice", field="grants")
        by_id[grant.id] = grant
    sums = dict.fromkeys(by_id, 0)
    for entry in entries:
        owner = by_id.get(entry.grant_id)
        if owner is None:
            continue
        if entry.type != owner.type:
            raise InvalidInput(f"entries: a {entry.type} entry for {owner.type} grant "
                               f"{owner.id!r}", field="entries")
        sums[owner.id] += entry.delta
    return sums


def _closing(grant: Grant, zone: tzinfo) -> tuple[str, datetime] | None:
    """How and when a grant closes: the earlier of its cycle end (``reset``) and expiry."""
    end = cycle_bounds(grant.cycle, zone)[1] if grant.cycle is not None else None
    if end is not None and (grant.expires_at is None or end <= grant.expires_at):
        return "reset", end
    return ("expire", grant.expires_at) if grant.expires_at is not None else None


def _is_open(grant: Grant, at: datetime, cycle: str) -> bool:
    if grant.expires_at is not None and at >= grant.expires_at:
        return False
    return grant.cycle is None or grant.cycle == cycle


def _usable(grants: Iterable[Grant], entries: Iterable[Entry], at: datetime,
            zone: tzinfo) -> dict[str, int]:
    """What each grant can still give at ``at``: 0 once closed, and never below 0 (a grant
    overdrawn by racing writers must not eat into the others)."""
    grants = list(grants)
    sums = _ledger(grants, entries)
    cycle = cycle_of(at, zone)
    return {g.id: max(0, sums[g.id]) if _is_open(g, at, cycle) else 0 for g in grants}


# --- balance -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TypeBalance:
    available: int
    by_source: Mapping[str, int]  # every source, zeros included


@dataclass(frozen=True, slots=True)
class Balance:
    """Units usable at ``at``, per quota type (every type present) and per grant id."""

    cycle: str
    resets_at: datetime  # next cycle start, tenant timezone: when plan allowances renew
    types: Mapping[str, TypeBalance]
    remaining: Mapping[str, int]  # grant id -> usable units; 0 once reset or expired

    def available(self, type: str) -> int:
        return self.types[quota_type(type)].available


def balance(grants: Iterable[Grant], entries: Iterable[Entry], at: datetime,
            tz: Zone) -> Balance:
    zone = _zone(tz)
    grants = list(grants)
    remaining = _usable(grants, entries, _instant(at, "at"), zone)
    by_source = {t: dict.fromkeys(SOURCES, 0) for t in QUOTA_TYPES}
    for grant in grants:
        by_source[grant.type][grant.source] += remaining[grant.id]
    types = {t: TypeBalance(sum(s.values()), MappingProxyType(s)) for t, s in by_source.items()}
    return Balance(cycle_of(at, zone), next_cycle_start(at, zone), MappingProxyType(types),
                   MappingProxyType(remaining))


# --- consumption -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Allocation:
    """The ``consume`` entries for a request, one per grant drawn, in draw order.

    When the request does not fit, ``entries`` take everything available and ``shortfall`` is
    the rest: write them and bill the shortfall, or check ``fits`` first for all-or-nothing.
    """

    entries: tuple[Entry, ...]
    requested: int
    shortfall: int

    @property
    def allocated(self) -> int:
        return self.requested - self.shortfall

    @property
    def fits(self) -> bool:
        return self.shortfall == 0


def draw_order(grant: Grant) -> tuple[int, bool, datetime, datetime, str]:
    """Sort key for consumption: tier, then soonest expiry (never-expiring last), oldest, id."""
    return (_TIER[grant.source], grant.expires_at is None, grant.expires_at or grant.granted_at,
            grant.granted_at, grant.id)


def allocate(grants: Iterable[Grant], entries: Iterable[Entry], type: str, amount: int,
             at: datetime, tz: Zone, *, request_id: str | None = None,
             note: str | None = None) -> Allocation:
    """Take ``amount`` units of ``type`` at ``at``, plan → package → admin_grant."""
    quota_type(type)
    requested = units(amount, field="amount")
    candidates = sorted((g for g in grants if g.type == type), key=draw_order)
    remaining = _usable(candidates, entries, _instant(at, "at"), _zone(tz))
    taken: list[Entry] = []
    wanted = requested
    for grant in candidates:
        if not wanted:
            break
        take = min(wanted, remaining[grant.id])
        if take:
            taken.append(Entry(grant.id, type, "consume", -take, at, request_id, note))
            wanted -= take
    return Allocation(tuple(taken), requested, wanted)


# --- closing -----------------------------------------------------------------------------------

def reset_entries(grants: Iterable[Grant], entries: Iterable[Entry], at: datetime,
                  tz: Zone) -> list[Entry]:
    """The ``reset``/``expire`` entries for grants closed by ``at`` that have none yet.

    Each takes the grant's unused remainder to zero and is dated when the grant closed (cycle
    end or ``expires_at``), not when the job ran. A grant closing with nothing left still gets
    one, with delta 0: it marks the grant closed, which is what makes the job idempotent.
    """
    zone = _zone(tz)
    _instant(at, "at")
    entries = list(entries)
    grants = list(grants)
    sums = _ledger(grants, entries)
    closed = {e.grant_id for e in entries if e.kind in ("reset", "expire")}
    result: list[Entry] = []
    for grant in sorted(grants, key=lambda g: g.id):
        closing = _closing(grant, zone)
        if closing is None or grant.id in closed or at < closing[1]:
            continue
        kind, when = closing
        note = f"cycle {grant.cycle} ended" if kind == "reset" else "expired"
        result.append(Entry(grant.id, grant.type, kind, -max(0, sums[grant.id]), when,
                            note=note))
    return result
