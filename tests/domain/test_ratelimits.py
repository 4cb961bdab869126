"""Sliding-window rate limits: the decision, and that waiting as told is enough."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from meterline.domain.ratelimits import WINDOW_SECONDS, Window, decide


def load(previous: int, current: int, elapsed: float) -> int:
    return current + math.floor(previous * (1 - elapsed / WINDOW_SECONDS))


def test_requests_per_minute() -> None:
    assert decide(3, None, Window(current_requests=2), 0, 10) is None
    assert decide(3, None, Window(current_requests=3), 0, 10) is not None
    # The previous minute still weighs: 4 × (1 - 15/60) = 3, plus 1 is over a limit of 3,
    # until it has decayed below 3, which it does right after: come back in a second.
    assert decide(3, None, Window(previous_requests=4), 0, 15) == 1
    assert decide(3, None, Window(previous_requests=4), 0, 16) is None
    assert decide(3, None, Window(previous_requests=4), 0, 45) is None
    # 6 × (1 - e/60) drops below 3 (floor 2, room for one more) at e = 30.
    assert decide(3, None, Window(previous_requests=6), 0, 10) == 20


@given(rpm=st.integers(1, 1000), elapsed=st.floats(0, 59.999))
def test_a_full_minute_waits_at_most_for_its_end(rpm: int, elapsed: float) -> None:
    # rpm calls this minute: the next fits as soon as this minute is the previous one, since
    # floor(rpm × weight) < rpm for any weight below 1 (issue 13.9: rpm=2 said 81 s, not 51).
    wait = decide(rpm, None, Window(current_requests=rpm), 0, elapsed)
    assert wait == max(1, math.ceil(WINDOW_SECONDS - elapsed))


def test_tokens_per_minute_count_the_call() -> None:
    assert decide(None, 1000, Window(current_tokens=900), 100, 5) is None
    assert decide(None, 1000, Window(current_tokens=900), 101, 5) is not None
    assert decide(None, 1000, Window(), 5000, 5) == 120  # larger than the limit itself
    assert decide(None, None, Window(current_requests=10**9), 10**9, 0) is None


@given(limit=st.integers(1, 500), previous=st.integers(0, 1000), current=st.integers(0, 1000),
       need=st.integers(1, 50), elapsed=st.floats(0, 59.999))
def test_waiting_retry_after_makes_room(limit: int, previous: int, current: int, need: int,
                                        elapsed: float) -> None:
    wait = decide(None, limit, Window(previous_tokens=previous, current_tokens=current), need,
                  elapsed)
    if wait is None:
        assert load(previous, current, elapsed) + need <= limit
        return
    assert load(previous, current, elapsed) + need > limit
    if need > limit:
        return
    # A call made Retry-After seconds later reaches the limiter a moment after that.
    later = elapsed + wait + 0.001
    if later < WINDOW_SECONDS:
        assert load(previous, current, later) + need <= limit
    elif later < 2 * WINDOW_SECONDS:
        assert load(current, 0, later - WINDOW_SECONDS) + need <= limit
