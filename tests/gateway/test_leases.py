"""meterline.gateway.leases: the in-memory book of leases never admits more than a lease holds,
and every unit it was granted is either used by a call, given back, or released at close."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.gateway.leases import GiveBack, LeaseBook, LeaseKey

BUDGET: LeaseKey = ("budget", "b1", datetime(2026, 11, 1, tzinfo=UTC))
QUOTA: LeaseKey = ("quota", "acme", "text_token", "")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_calls_are_admitted_from_an_open_lease_until_it_runs_out() -> None:
    book = LeaseBook(0.5, Clock())
    assert not book.take("r0", {BUDGET: Decimal(1)})  # nothing leased yet
    book.opened("lease-1", "r0", {BUDGET: Decimal(4), QUOTA: 400}, {BUDGET: Decimal(1),
                                                                     QUOTA: 100})
    assert book.take("r1", {BUDGET: Decimal(1), QUOTA: 100})
    assert book.take("r2", {BUDGET: Decimal(2), QUOTA: 100})
    # all or nothing: the budget has 0 left, so the quota is not touched either
    assert not book.take("r3", {BUDGET: Decimal("0.1"), QUOTA: 100})
    assert book.take("r3", {QUOTA: 100})
    assert not book.take("r4", {QUOTA: 1})
    assert (book.opened_total, book.taken_total) == (1, 3)


def test_sealing_gives_back_the_unused_part_and_closes_after_the_last_call() -> None:
    clock = Clock()
    book = LeaseBook(0.5, clock)
    book.opened("lease-1", "r0", {BUDGET: Decimal(10)}, {BUDGET: Decimal(1)})
    assert book.take("r1", {BUDGET: Decimal(3)})
    give_back, close = book.seal([BUDGET])
    assert [(g.lease_id, g.key, g.amount) for g in give_back] == [("lease-1", BUDGET, 6)]
    assert close == []  # r0 and r1 are in flight
    assert not book.take("r2", {BUDGET: Decimal(1)})  # sealed: admits nothing more
    book.settled(["r0"])
    assert book.due() == ([], [])
    book.settled(["r1", "unknown"])
    assert book.due() == ([], ["lease-1"])
    assert book.due() == ([], [])  # closed once


def test_a_lease_is_due_after_its_time_and_one_without_calls_closes_at_once() -> None:
    clock = Clock()
    book = LeaseBook(0.5, clock)
    book.opened("lease-1", "r0", {QUOTA: 500}, {QUOTA: 100})
    book.settled(["r0"])
    clock.now = 0.4
    assert book.take("r1", {QUOTA: 100})
    clock.now = 0.6
    assert not book.take("r2", {QUOTA: 100})  # too old to admit
    give_back, close = book.due()
    assert [(g.key, g.amount) for g in give_back] == [(QUOTA, 300)] and close == []
    book.settled(["r1"])
    assert book.due() == ([], ["lease-1"])
    book.opened("lease-2", "r3", {QUOTA: 500}, {QUOTA: 100})
    book.settled(["r3"])
    assert book.seal([QUOTA]) == ([], ["lease-2"])  # nothing in flight: released whole


def test_lease_ids_carry_the_process_prefix() -> None:
    book = LeaseBook(0.5)
    first, second = book.new_id(), book.new_id()
    assert first != second and first.startswith(book.prefix) and second.startswith(book.prefix)
    assert book.prefix.startswith("lease_") and len(first) <= 40  # fits a hold's request_id


operations = st.lists(st.one_of(
    st.tuples(st.just("take"), st.integers(1, 5)),
    st.tuples(st.just("open"), st.integers(1, 5), st.integers(1, 8)),
    st.tuples(st.just("seal")),
    st.tuples(st.just("settle"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 0.3, 0.6])),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_granted_units_are_used_given_back_or_released(steps: list[tuple[Any, ...]]) -> None:
    """Whatever the interleaving: a lease never admits past what it holds, and once every call
    settled and everything is due, all it was granted went to calls, back, or out at close."""
    clock = Clock()
    book = LeaseBook(0.5, clock)
    granted: dict[str, int] = {}
    used: dict[str, int] = defaultdict(int)  # by lease, what admitted calls took
    lease_of: dict[str, str] = {}
    returned: dict[str, int] = defaultdict(int)
    closed: list[str] = []
    calls = 0

    def account(result: tuple[list[GiveBack], list[str]]) -> None:
        for part in result[0]:
            returned[part.lease_id] += int(part.amount)
        closed.extend(result[1])

    for step in steps:
        if step[0] == "take":
            request = f"r{calls}"
            calls += 1
            current = book._open.get(QUOTA)
            if book.take(request, {QUOTA: int(step[1])}):
                assert current is not None
                used[current.id] += int(step[1])
                lease_of[request] = current.id
        elif step[0] == "open":
            size, first = int(step[1]) * int(step[2]), int(step[1])
            request, lease = f"r{calls}", book.new_id()
            calls += 1
            account(book.seal([QUOTA]))
            book.opened(lease, request, {QUOTA: size}, {QUOTA: first})
            granted[lease], used[lease], lease_of[request] = size, used[lease] + first, lease
        elif step[0] == "seal":
            account(book.seal([QUOTA]))
        elif step[0] == "settle":
            book.settled([f"r{step[1]}"])
        else:
            clock.now += float(step[1])
            account(book.due())
        for lease_id, size in granted.items():
            assert used[lease_id] + returned[lease_id] <= size
    book.settled([f"r{n}" for n in range(calls)])
    clock.now += 1
    account(book.due())
    account(book.seal_all())
    assert sorted(closed) == sorted(granted)  # every lease closed, once
    for lease_id, size in granted.items():
        assert used[lease_id] + returned[lease_id] <= size
