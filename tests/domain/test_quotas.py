"""meterline.domain.quotas: grants, ledger entries, cycles, balance, allocation and closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.quotas import (
    QUOTA_TYPES,
    SOURCES,
    Entry,
    Grant,
    allocate,
    balance,
    credit_entry,
    cycle_bounds,
    cycle_of,
    draw_order,
    grant_amount,
    next_cycle_start,
    parse_cycle,
    quota_source,
    quota_type,
    reset_entries,
)
from meterline.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOV = datetime(2026, 11, 1, tzinfo=UTC)
NOV_15 = datetime(2026, 11, 15, tzinfo=UTC)
# 16:30 UTC on 30 November is 00:30 on 1 December in Shanghai.
LATE_NOV = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
prop = settings(deadline=None, max_examples=300)


def grant(id: str, source: str = "package", amount: int = 1000, *, type: str = "text_token",
          bonus: int = 0, cycle: str | None = None, granted_at: datetime = NOV,
          expires_at: datetime | None = None, user: str | None = None) -> Grant:
    if source == "plan" and cycle is None:
        cycle = "2026-11"
    return Grant(id, "acme", user, type, source, amount, bonus, None, None, granted_at,
                 expires_at, cycle)


def credited(*grants: Grant) -> list[Entry]:
    return [credit_entry(g) for g in grants]


def drawn(entries: tuple[Entry, ...] | list[Entry]) -> list[tuple[str, int]]:
    return [(e.grant_id, e.delta) for e in entries]


# --- validators --------------------------------------------------------------------------------

def test_quota_type_and_source_accept_the_known_names() -> None:
    assert all(quota_type(t) == t for t in QUOTA_TYPES)
    assert all(quota_source(s) == s for s in SOURCES)
    assert QUOTA_TYPES == ("text_token", "image", "tts_character", "video_second")
    assert SOURCES == ("plan", "package", "admin_grant")


@pytest.mark.parametrize("value", ["tokens", "TEXT_TOKEN", "", None, 3])
def test_quota_type_names_the_field_and_the_allowed_values(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        quota_type(value)
    assert info.value.field == "type"
    assert "text_token, image, tts_character, video_second" in str(info.value)


def test_quota_source_names_the_field_and_the_allowed_values() -> None:
    with pytest.raises(InvalidInput) as info:
        quota_source("gift")
    assert info.value.field == "source"
    assert "plan, package, admin_grant" in str(info.value)


@pytest.mark.parametrize("value", [1, 1_000_000, 10**15])
def test_grant_amount_accepts_positive_whole_units(value: int) -> None:
    assert grant_amount(value) == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, "between 1 and"), (-5, "between 1 and"), (10**15 + 1, "1,000,000,000,000,000"),
     (1.5, "whole number"), (2.0, "whole number"), (True, "whole number"),
     ("10", "whole number"), (None, "whole number")],
    ids=repr,
)
def test_grant_amount_refuses_what_is_not_a_positive_whole_number(value: object,
                                                                  fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        grant_amount(value)
    assert info.value.field == "amount"
    assert str(info.value).startswith("amount:")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"type": "tokens"}, "type"), ({"source": "gift"}, "source"), ({"amount": 0}, "amount"),
     ({"bonus": -1}, "bonus"), ({"bonus": 5}, "bonus"), ({"cycle": None}, "cycle"),
     ({"cycle": "2026-13"}, "cycle"), ({"source": "package"}, "cycle"),
     ({"granted_at": datetime(2026, 11, 1)}, "granted_at"),
     ({"expires_at": NOV}, "expires_at"), ({"expires_at": NOV - timedelta(1)}, "expires_at"),
     ({"id": ""}, "id")],
    ids=str,
)
def test_grant_refuses_inconsistent_fields(changes: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "id": "g", "tenant": "acme", "user": None, "type": "text_token", "source": "plan",
        "amount": 10, "bonus": 0, "reference": None, "reason": None, "granted_at": NOV,
        "expires_at": None, "cycle": "2026-11"} | changes
    with pytest.raises(InvalidInput) as info:
        Grant(**fields)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kind", "delta", "field"),
    [("consume", 5, "delta"), ("consume", 0, "delta"), ("grant", -1, "delta"),
     ("release", 0, "delta"), ("reset", 1, "delta"), ("expire", 1, "delta"),
     ("refund", -1, "kind"), ("consume", True, "delta"), ("consume", -1.0, "delta")],
)
def test_entry_refuses_a_delta_of_the_wrong_sign(kind: str, delta: object, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Entry("g", "image", kind, delta, NOV)  # type: ignore[arg-type]
    assert info.value.field == field


def test_entry_needs_an_aware_time() -> None:
    with pytest.raises(InvalidInput) as info:
        Entry("g", "image", "consume", -1, datetime(2026, 11, 1))
    assert info.value.field == "at"


# --- cycles ------------------------------------------------------------------------------------

def test_cycle_of_follows_the_tenant_timezone() -> None:
    assert cycle_of(LATE_NOV, "UTC") == "2026-11"
    assert cycle_of(LATE_NOV, SHANGHAI) == "2026-12"
    assert cycle_of(LATE_NOV, "Asia/Shanghai") == "2026-12"


def test_cycle_bounds_are_local_midnights_in_utc() -> None:
    assert cycle_bounds("2026-12", SHANGHAI) == (datetime(2026, 11, 30, 16, tzinfo=UTC),
                                                 datetime(2026, 12, 31, 16, tzinfo=UTC))
    assert cycle_bounds("2026-12", "UTC") == (datetime(2026, 12, 1, tzinfo=UTC),
                                              datetime(2027, 1, 1, tzinfo=UTC))


def test_next_cycle_start_is_in_the_tenant_timezone() -> None:
    start = next_cycle_start(LATE_NOV, SHANGHAI)
    assert start == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert start.utcoffset() == timedelta(hours=8)
    assert next_cycle_start(LATE_NOV, "UTC") == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "previous", "cycle", "start"),
    [
        # clocks fall back 01:00 -> 00:00 on 1 November: the month starts at the first midnight
        ("America/Havana", "2026-10", "2026-11", datetime(2026, 11, 1, 4, tzinfo=UTC)),
        # clocks jump 00:00 -> 01:00 on 1 April: the month starts at the jump
        ("Asia/Amman", "2016-03", "2016-04", datetime(2016, 3, 31, 22, tzinfo=UTC)),
    ],
)
def test_a_cycle_starts_when_the_day_begins_even_if_midnight_repeats_or_is_skipped(
        zone: str, previous: str, cycle: str, start: datetime) -> None:
    assert cycle_bounds(cycle, zone)[0] == start
    assert cycle_bounds(previous, zone)[1] == start
    assert cycle_of(start, zone) == cycle
    assert cycle_of(start - timedelta(microseconds=1), zone) != cycle


@pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01",
                                   " 2026-01", "1969-12", 202601, None])
def test_parse_cycle_names_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_cycle(value)
    assert info.value.field == "cycle"


def test_parse_cycle() -> None:
    assert parse_cycle("2026-03") == (2026, 3)


def test_unknown_timezone_and_naive_time_are_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        cycle_of(NOV, "Mars/Olympus")
    assert info.value.field == "timezone"
    with pytest.raises(InvalidInput) as info:
        cycle_of(datetime(2026, 11, 1), "UTC")
    assert info.value.field == "at"


ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "America/St_Johns", "Pacific/Kiritimati",
         "Pacific/Apia", "America/Havana", "Asia/Amman", "Asia/Kathmandu", "Europe/London"]
instants = st.datetimes(datetime(1971, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC))


@prop
@given(instants, st.sampled_from(ZONES))
def test_every_instant_lies_in_the_bounds_of_its_cycle(at: datetime, zone: str) -> None:
    start, end = cycle_bounds(cycle_of(at, zone), zone)
    assert start <= at < end
    assert cycle_of(start, zone) == cycle_of(at, zone)
    assert cycle_of(end, zone) != cycle_of(end - timedelta(microseconds=1), zone)
    # compared in UTC: PEP 495 makes a time in a repeated local hour unequal to any other zone's
    assert next_cycle_start(at, zone).astimezone(UTC) == end


# --- balance -----------------------------------------------------------------------------------

def test_package_bonus_is_credited() -> None:
    pack = grant("p", amount=1_000_000, bonus=200_000)
    result = balance([pack], credited(pack), NOV_15, "UTC")
    assert result.available("text_token") == 1_200_000
    assert result.types["text_token"].by_source == {"plan": 0, "package": 1_200_000,
                                                    "admin_grant": 0}
    assert result.remaining == {"p": 1_200_000}
    assert result.available("image") == 0


def test_balance_is_derived_from_the_ledger_per_type_and_source() -> None:
    grants = [grant("plan", "plan", 500), grant("pack", amount=300),
              grant("admin", "admin_grant", 20), grant("img", amount=7, type="image")]
    entries = [*credited(*grants), Entry("pack", "text_token", "consume", -100, NOV_15),
               Entry("pack", "text_token", "release", 40, NOV_15)]
    result = balance(grants, entries, NOV_15, "UTC")
    assert result.types["text_token"].available == 500 + 240 + 20
    assert result.types["text_token"].by_source == {"plan": 500, "package": 240,
                                                    "admin_grant": 20}
    assert result.available("image") == 7
    assert result.remaining == {"plan": 500, "pack": 240, "admin": 20, "img": 7}
    assert result.cycle == "2026-11"


def test_a_grant_without_its_credit_entry_has_nothing() -> None:
    assert balance([grant("p")], [], NOV_15, "UTC").available("text_token") == 0


def test_plan_allowance_does_not_carry_over() -> None:
    november = grant("nov", "plan", 1000, cycle="2026-11")
    december = grant("dec", "plan", 1000, cycle="2026-12", granted_at=datetime(2026, 12, 1,
                                                                                tzinfo=UTC))
    entries = [*credited(november, december), Entry("nov", "text_token", "consume", -300, NOV_15)]
    assert balance([november, december], entries, NOV_15, "UTC").remaining == {"nov": 700,
                                                                               "dec": 0}
    later = datetime(2026, 12, 2, tzinfo=UTC)
    assert balance([november, december], entries, later, "UTC").available("text_token") == 1000


def test_plan_resets_at_the_cycle_start_in_the_tenant_timezone() -> None:
    plan, pack = grant("plan", "plan", 100), grant("pack", amount=100)
    entries = credited(plan, pack)
    assert balance([plan, pack], entries, LATE_NOV, "UTC").available("text_token") == 200
    assert balance([plan, pack], entries, LATE_NOV, SHANGHAI).available("text_token") == 100
    # a consumption at 16:30 UTC is already December in Shanghai: the November plan is gone
    utc = allocate([plan, pack], entries, "text_token", 30, LATE_NOV, "UTC")
    shanghai = allocate([plan, pack], entries, "text_token", 30, LATE_NOV, SHANGHAI)
    assert drawn(utc.entries) == [("plan", -30)]
    assert drawn(shanghai.entries) == [("pack", -30)]


def test_expired_grants_count_as_zero_from_expires_at_on() -> None:
    expiry = datetime(2026, 11, 20, tzinfo=UTC)
    pack = grant("p", amount=50, expires_at=expiry)
    assert balance([pack], credited(pack), expiry - timedelta(microseconds=1),
                   "UTC").available("text_token") == 50
    assert balance([pack], credited(pack), expiry, "UTC").available("text_token") == 0


def test_a_grant_overdrawn_by_racing_writers_shows_zero_and_spares_the_others() -> None:
    plan, pack = grant("plan", "plan", 100), grant("pack", amount=100)
    entries = [*credited(plan, pack), Entry("plan", "text_token", "consume", -80, NOV_15),
               Entry("plan", "text_token", "consume", -70, NOV_15)]
    result = balance([plan, pack], entries, NOV_15, "UTC")
    assert result.remaining == {"plan": 0, "pack": 100}
    assert drawn(allocate([plan, pack], entries, "text_token", 10, NOV_15, "UTC").entries) == [
        ("pack", -10)]
    # a closing entry never credits back what was overdrawn
    assert drawn(reset_entries([plan], entries, LATE_NOV, SHANGHAI)) == [("plan", 0)]


def test_balance_ignores_entries_of_grants_not_given_and_refuses_mismatches() -> None:
    pack = grant("p", amount=50)
    stranger = Entry("other", "text_token", "consume", -10, NOV_15)
    assert balance([pack], [*credited(pack), stranger], NOV_15, "UTC").remaining == {"p": 50}
    with pytest.raises(InvalidInput) as info:
        balance([pack], [Entry("p", "image", "grant", 5, NOV)], NOV_15, "UTC")
    assert info.value.field == "entries"
    with pytest.raises(InvalidInput) as info:
        balance([pack, pack], [], NOV_15, "UTC")
    assert info.value.field == "grants"


# --- allocation --------------------------------------------------------------------------------

def test_plan_first_then_packages_then_admin_grants() -> None:
    grants = [grant("admin", "admin_grant", 100), grant("pack", amount=100),
              grant("plan", "plan", 100)]
    result = allocate(grants, credited(*grants), "text_token", 250, NOV_15, "UTC",
                      request_id="req-1")
    assert drawn(result.entries) == [("plan", -100), ("pack", -100), ("admin", -50)]
    assert result.fits and result.shortfall == 0 and result.allocated == 250
    assert {(e.kind, e.type, e.at, e.request_id) for e in result.entries} == {
        ("consume", "text_token", NOV_15, "req-1")}


def test_packages_expiring_soonest_go_first_then_the_oldest() -> None:
    old = grant("old", granted_at=NOV)
    young = grant("young", granted_at=NOV + timedelta(days=1))
    expiring = grant("expiring", granted_at=NOV + timedelta(days=2),
                     expires_at=NOV + timedelta(days=60))
    grants = [young, expiring, old]
    result = allocate(grants, credited(*grants), "text_token", 2500, NOV_15, "UTC")
    assert drawn(result.entries) == [("expiring", -1000), ("old", -1000), ("young", -500)]
    assert sorted(grants, key=draw_order) == [expiring, old, young]


def test_allocation_only_draws_the_requested_type() -> None:
    grants = [grant("img", amount=5, type="image"), grant("txt", amount=5)]
    result = allocate(grants, credited(*grants), "image", 3, NOV_15, "UTC")
    assert drawn(result.entries) == [("img", -3)]


def test_shortfall_takes_everything_available_and_reports_the_rest() -> None:
    plan, pack = grant("plan", "plan", 100), grant("pack", amount=50)
    entries = [*credited(plan, pack), Entry("pack", "text_token", "consume", -20, NOV_15)]
    result = allocate([plan, pack], entries, "text_token", 200, NOV_15, "UTC")
    assert drawn(result.entries) == [("plan", -100), ("pack", -30)]
    assert (result.requested, result.allocated, result.shortfall) == (200, 130, 70)
    assert not result.fits
    empty = allocate([], [], "video_second", 5, NOV_15, "UTC")
    assert (empty.entries, empty.shortfall) == ((), 5)


def test_allocating_nothing_writes_nothing_and_bad_amounts_are_refused() -> None:
    pack = grant("p")
    assert allocate([pack], credited(pack), "text_token", 0, NOV_15, "UTC").entries == ()
    for bad, field in ((-1, "amount"), (1.5, "amount"), (True, "amount")):
        with pytest.raises(InvalidInput) as info:
            allocate([pack], credited(pack), "text_token", bad, NOV_15, "UTC")  # type: ignore[arg-type]
        assert info.value.field == field
    with pytest.raises(InvalidInput) as info:
        allocate([pack], credited(pack), "tokens", 1, NOV_15, "UTC")
    assert info.value.field == "type"


# --- closing entries ---------------------------------------------------------------------------

def test_reset_entries_zero_the_unused_plan_remainder_once_dated_at_the_cycle_end() -> None:
    plan = grant("plan", "plan", 1000)
    entries = [*credited(plan), Entry("plan", "text_token", "consume", -300, NOV_15)]
    assert reset_entries([plan], entries, NOV_15, "UTC") == []
    written = reset_entries([plan], entries, LATE_NOV, SHANGHAI)
    assert drawn(written) == [("plan", -700)]
    assert written[0].kind == "reset"
    assert written[0].at == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert reset_entries([plan], entries, LATE_NOV, "UTC") == []  # still November in UTC
    assert reset_entries([plan], [*entries, *written], datetime(2027, 3, 1, tzinfo=UTC),
                         SHANGHAI) == []


def test_expire_entries_for_lapsed_grants_and_a_marker_when_nothing_is_left() -> None:
    expiry = datetime(2026, 11, 20, tzinfo=UTC)
    partly = grant("partly", amount=50, expires_at=expiry)
    used = grant("used", "admin_grant", 10, expires_at=expiry)
    forever = grant("forever")
    grants = [partly, used, forever]
    entries = [*credited(*grants), Entry("used", "text_token", "consume", -10, NOV_15)]
    written = reset_entries(grants, entries, expiry, "UTC")
    assert [(e.grant_id, e.kind, e.delta, e.at) for e in written] == [
        ("partly", "expire", -50, expiry), ("used", "expire", 0, expiry)]
    assert reset_entries(grants, [*entries, *written], expiry + timedelta(days=400), "UTC") == []


def test_a_plan_grant_expiring_before_its_cycle_ends_is_expired_not_reset() -> None:
    expiry = datetime(2026, 11, 10, tzinfo=UTC)
    plan = grant("plan", "plan", 10, expires_at=expiry)
    written = reset_entries([plan], credited(plan), datetime(2026, 12, 5, tzinfo=UTC), "UTC")
    assert [(e.kind, e.delta, e.at) for e in written] == [("expire", -10, expiry)]


# --- properties --------------------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_MINUTES = 200 * 24 * 60
CYCLES = ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07"]
minutes = st.integers(0, SPAN_MINUTES).map(lambda m: START + timedelta(minutes=m))
TYPES = ["text_token", "image"]


@st.composite
def grant_sets(draw: st.DrawFn) -> list[Grant]:
    grants = []
    for index in range(draw(st.integers(0, 8))):
        source = draw(st.sampled_from(SOURCES))
        granted_at = draw(minutes)
        lifetime = draw(st.none() | st.integers(1, SPAN_MINUTES))
        grants.append(Grant(
            f"g{index}", "acme", None, draw(st.sampled_from(TYPES)), source,
            draw(st.integers(1, 1000)),
            draw(st.integers(0, 500)) if source == "package" else 0, None, None, granted_at,
            None if lifetime is None else granted_at + timedelta(minutes=lifetime),
            draw(st.sampled_from(CYCLES)) if source == "plan" else None))
    return grants


# (time, type, amount) requests, and whether the closing job runs before each one
requests = st.lists(st.tuples(minutes, st.sampled_from(TYPES), st.integers(0, 1500),
                              st.booleans()), max_size=12)
zones = st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Pacific/Kiritimati"])


def ledger_sums(grants: list[Grant], entries: list[Entry]) -> dict[str, int]:
    return {g.id: sum(e.delta for e in entries if e.grant_id == g.id) for g in grants}


def run(grants: list[Grant], steps: list[tuple[datetime, str, int, bool]],
        zone: str) -> list[Entry]:
    """Replay requests in time order, checking (a), (c) and (d) after every allocation."""
    entries = credited(*grants)
    for at, kind, amount, close in sorted(steps, key=lambda s: s[0]):
        if close:
            entries += reset_entries(grants, entries, at, zone)
        before = balance(grants, entries, at, zone)
        result = allocate(grants, entries, kind, amount, at, zone)
        # (a) takes min(requested, available), never more than a grant has
        assert sum(e.delta for e in result.entries) == -min(amount, before.available(kind))
        assert result.shortfall == max(0, amount - before.available(kind))
        assert len({e.grant_id for e in result.entries}) == len(result.entries)
        for entry in result.entries:
            assert entry.kind == "consume" and entry.type == kind
            assert 0 < -entry.delta <= before.remaining[entry.grant_id]
        entries += result.entries
        after = balance(grants, entries, at, zone)
        # (c) neither the balance nor any grant's raw ledger sum goes negative
        assert all(v >= 0 for v in after.remaining.values())
        assert all(v >= 0 for v in ledger_sums(grants, entries).values())
        # (d) a tier is drawn only once every earlier tier of that type is empty
        by_id = {g.id: g for g in grants}
        for entry in result.entries:
            tier = SOURCES.index(by_id[entry.grant_id].source)
            assert all(after.remaining[g.id] == 0 for g in grants
                       if g.type == kind and SOURCES.index(g.source) < tier)
    return entries


@prop
@given(grant_sets(), requests, zones)
def test_allocations_take_what_is_available_in_order_and_never_overdraw(
        grants: list[Grant], steps: list[tuple[datetime, str, int, bool]], zone: str) -> None:
    run(grants, steps, zone)


@prop
@given(grant_sets(), requests, zones, minutes, minutes)
def test_closing_entries_never_change_the_balance(
        grants: list[Grant], steps: list[tuple[datetime, str, int, bool]], zone: str,
        closed_at: datetime, later: datetime) -> None:
    entries = run(grants, steps, zone)
    at = max(closed_at, later)
    closing = reset_entries(grants, entries, closed_at, zone)
    assert balance(grants, [*entries, *closing], at, zone) == balance(grants, entries, at, zone)
    # written once: a second run finds nothing more to write for the same moment
    assert reset_entries(grants, [*entries, *closing], closed_at, zone) == []
    # and a closed grant's ledger sum is exactly zero
    sums = ledger_sums(grants, [*entries, *closing])
    assert all(sums[e.grant_id] == 0 for e in closing)


@prop
@given(grant_sets(), minutes, zones)
def test_balance_adds_up_and_is_never_negative(grants: list[Grant], at: datetime,
                                               zone: str) -> None:
    result = balance(grants, credited(*grants), at, zone)
    for kind in QUOTA_TYPES:
        mine = [g for g in grants if g.type == kind]
        assert result.available(kind) == sum(result.types[kind].by_source.values())
        assert result.available(kind) == sum(result.remaining[g.id] for g in mine)
    assert all(v >= 0 for v in result.remaining.values())
    cycle = cycle_of(at, zone)
    for g in grants:
        alive = (g.cycle in (None, cycle)) and (g.expires_at is None or at < g.expires_at)
        assert result.remaining[g.id] == (g.credited if alive else 0)
