"""Leases: a process holds a slice of a budget or quota in the database and admits calls from it
in memory, so most limited calls cost no database round trip (docs/limits.md, "Leases").

The database never learns less than the truth. A lease is an ordinary hold row (its request id
is the lease id) for many calls' worst case; every call admitted from it takes its own worst case
out of the lease's ``available`` part in memory. A lease is open for ``seconds`` at most; then,
or when a call does not fit, it is sealed: no call is admitted from it any more and its unused
part is given back (the hold row shrinks by it). When every call admitted from a sealed lease has
its record in the ledger, the lease is closed (its hold row released). Until then a recorded
call counts twice, in ``spent`` and in the lease's hold: a budget can only look fuller than it
is, never emptier. The hold row of a process that died expires like any other hold.

This module is the in-memory book only; :mod:`meterline.gateway.admission` talks to the
database.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from meterline.store.reservations import LEASE_PREFIX

#: ("budget", budget id, period start) or ("quota", tenant id, quota type, user id or "").
LeaseKey = tuple[str, str, datetime | str] | tuple[str, str, str, str]
Amount = Decimal | int


@dataclass(eq=False)
class Lease:
    id: str
    opened_at: float
    #: What calls may still take from it, per key (the keys the lease holds).
    available: dict[LeaseKey, Amount]
    in_flight: set[str] = field(default_factory=set)
    sealed: bool = False


@dataclass(frozen=True, slots=True)
class GiveBack:
    """The unused part of a sealed lease, to be taken off its hold row."""

    lease_id: str
    key: LeaseKey
    amount: Amount


class LeaseBook:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        #: When leases open and fall due (seconds, monotonic). Public so that a test can hold
        #: time still while it makes calls, however slowly the machine runs them.
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[LeaseKey, Lease] = {}
        self._leases: dict[str, Lease] = {}
        self._calls: dict[str, list[Lease]] = {}
        self._tag = secrets.token_hex(4)
        self._numbers = itertools.count()
        #: Leases the database granted, and calls admitted from them in memory.
        self.opened_total = 0
        self.taken_total = 0

    @property
    def prefix(self) -> str:
        """Every lease id of this process starts with it."""
        return f"{LEASE_PREFIX}{self._tag}_"

    def new_id(self) -> str:
        return f"{self.prefix}{next(self._numbers)}"

    def take(self, request_id: str, wants: Mapping[LeaseKey, Amount]) -> bool:
        """Admit a call from open leases if every key has enough left; all or nothing."""
        with self._lock:
            now = self.clock()
            found = []
            for key, amount in wants.items():
                lease = self._open.get(key)
                if (lease is None or lease.sealed or now - lease.opened_at > self.seconds
                        or lease.available[key] < amount):
                    return False
                found.append(lease)
            for key, amount in wants.items():
                self._open[key].available[key] -= amount
            leases = list(dict.fromkeys(found))
            for lease in leases:
                lease.in_flight.add(request_id)
            self._calls[request_id] = leases
            self.taken_total += 1
            return True

    def opened(self, lease_id: str, request_id: str, held: Mapping[LeaseKey, Amount],
               used: Mapping[LeaseKey, Amount]) -> None:
        """The database granted ``held`` under ``lease_id``; the call that asked takes ``used``."""
        lease = Lease(lease_id, self.clock(),
                      {key: amount - used[key] for key, amount in held.items()}, {request_id})
        with self._lock:
            self.opened_total += 1
            self._leases[lease_id] = lease
            for key in held:
                # A lease another thread opened meanwhile stays unsealed until it is due.
                self._open[key] = lease
            self._calls[request_id] = [lease]

    def seal(self, keys: Iterable[LeaseKey]) -> tuple[list[GiveBack], list[str]]:
        """Seal the open leases of these keys: their unused parts to give back, and the ids of
        leases with no call in flight (to close)."""
        with self._lock:
            leases = {self._open[key] for key in keys if key in self._open}
            return self._seal(leases)

    def due(self) -> tuple[list[GiveBack], list[str]]:
        """Seal leases open longer than ``seconds``; what to give back and which to close."""
        with self._lock:
            now = self.clock()
            stale = {lease for lease in self._leases.values()
                     if not lease.sealed and now - lease.opened_at > self.seconds}
            give_back, close = self._seal(stale)
            for lease in list(self._leases.values()):
                if lease.sealed and not lease.in_flight and lease.id not in close:
                    close.append(lease.id)
                    del self._leases[lease.id]
            return give_back, close

    def seal_all(self) -> tuple[list[GiveBack], list[str]]:
        """On shutdown: everything sealed and given back; leases with calls in flight expire."""
        with self._lock:
            give_back, close = self._seal(set(self._leases.values()))
            self._leases.clear()
            return give_back, close

    def _seal(self, leases: set[Lease]) -> tuple[list[GiveBack], list[str]]:
        give_back: list[GiveBack] = []
        close: list[str] = []
        for lease in sorted(leases, key=lambda lease: lease.id):
            lease.sealed = True
            for key in lease.available:
                if self._open.get(key) is lease:
                    del self._open[key]
            if not lease.in_flight:
                close.append(lease.id)  # closing releases all it holds
                self._leases.pop(lease.id, None)
                continue
            for key, unused in lease.available.items():
                if unused:
                    give_back.append(GiveBack(lease.id, key, unused))
                    lease.available[key] = 0
        return give_back, close

    def settled(self, request_ids: Iterable[str]) -> None:
        """These calls' records are in the ledger (or never will be): their leases may close."""
        with self._lock:
            for request_id in request_ids:
                for lease in self._calls.pop(request_id, ()):
                    lease.in_flight.discard(request_id)

    def open_leases(self) -> int:
        with self._lock:
            return len(self._leases)

