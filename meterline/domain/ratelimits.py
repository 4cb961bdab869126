"""Rate limits: requests and tokens per minute per key, by a sliding window.

Counts are kept per whole minute. The load of the last 60 seconds is estimated as this minute's
count plus the previous minute's, weighted by the part of it still inside the window — the
approximation Cloudflare and Redis' own examples use: no burst of twice the limit at a minute's
edge, two counters per key instead of a log of every call. Tokens are counted when the call is
admitted, as the prompt estimate plus ``max_tokens`` (what the call may use), as the providers'
own token limits do.

The Redis limiter runs the same decision in Lua (see meterline.gateway.ratelimit); both are
tested against :func:`decide`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Window:
    """Counts of the previous and the current minute of one key."""

    previous_requests: int = 0
    current_requests: int = 0
    previous_tokens: int = 0
    current_tokens: int = 0


def _decayed(count: int, room: int) -> float:  # money-ok: seconds
    """Seconds into a minute after which ``floor(count × (1 - e / 60)) <= room``: the load is
    counted in whole calls or tokens (floored), so it is ``count × weight < room + 1`` — the
    floor frees a whole unit as soon as the weight drops below the next one, not when the
    product reaches ``room``. Waiting for ``<= room`` instead was up to a unit's worth of the
    minute too long: with rpm=2, half a minute more than needed (Retry-After 81 for 51)."""
    if count <= room:
        return 0.0
    return WINDOW_SECONDS * (1 - (room + 1) / count)


def _wait(limit: int, previous: int, current: int, need: int,
          elapsed: float) -> float | None:  # money-ok: seconds
    """Seconds until ``need`` more fits under ``limit``; None if it fits now."""
    weight = 1 - elapsed / WINDOW_SECONDS
    if current + math.floor(previous * weight) + need <= limit:
        return None
    if need > limit:
        return 2.0 * WINDOW_SECONDS  # one call larger than the limit: it never fits
    if current + need > limit:
        # Not before this minute has become the previous one and decayed enough, e seconds
        # into the next: floor(current × (1 - e / 60)) + need <= limit.
        return WINDOW_SECONDS - elapsed + _decayed(current, limit - need)
    # The previous minute must decay until floor(previous × weight') <= limit - current - need.
    return max(0.0, _decayed(previous, limit - current - need) - elapsed)


def decide(rpm: int | None, tpm: int | None, window: Window, tokens: int,
           elapsed: float) -> int | None:  # money-ok: seconds
    """Whole seconds to wait (for ``Retry-After``) if one more call of ``tokens`` would pass a
    limit, else None. ``elapsed`` is the seconds into the current minute."""
    waits = []
    if rpm:
        waits.append(_wait(rpm, window.previous_requests, window.current_requests, 1, elapsed))
    if tpm:
        waits.append(_wait(tpm, window.previous_tokens, window.current_tokens, tokens, elapsed))
    found = [w for w in waits if w is not None]
    if not found:
        return None
    # A refused call waits at least a second (Retry-After counts whole seconds), so a
    # limit that frees a unit right at the minute's edge answers the minute's remaining seconds.
    return max(1, math.ceil(max(found)))
