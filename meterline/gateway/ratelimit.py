"""Rate limits of API keys, shared by every gateway process: in Redis when ``limits.redis_url``
is set (one script call per request), else in the database (one short transaction).

Only keys with an ``rpm`` or ``tpm`` cost anything; the rule is in
:mod:`meterline.domain.ratelimits`. A refused call gets 429 ``rate_limited`` with
``Retry-After`` before anything else is done for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import Engine, delete, select, update
from starlette.concurrency import run_in_threadpool

from meterline.domain.ratelimits import WINDOW_SECONDS, Window, decide
from meterline.errors import RateLimited, StoreError
from meterline.providers.estimate import estimate_prompt_tokens
from meterline.store.accounts import ApiKey
from meterline.store.schema import rate_windows
from meterline.store.upsert import insert_ignore


class Limiter(Protocol):
    clock: Callable[[], datetime]

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None,
                      tokens: int) -> int | None:
        """Count one call of ``tokens``; or, if it does not fit, the seconds to wait."""

    async def aclose(self) -> None: ...


def _minute(now: datetime) -> tuple[datetime, float]:
    start = now.replace(second=0, microsecond=0)
    return start, (now - start).total_seconds()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DatabaseLimiter:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        #: Where the time comes from: a test sets the moment within a minute it needs.
        self.clock = clock

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None,
                      tokens: int) -> int | None:
        return await run_in_threadpool(self._acquire, key_id, rpm, tpm, tokens, self.clock())

    def _acquire(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int,
                 now: datetime) -> int | None:
        current, elapsed = _minute(now)
        previous = current - timedelta(seconds=WINDOW_SECONDS)
        c = rate_windows.c
        with self.engine.begin() as conn:
            # A write first: on SQLite it takes the write lock before anything is read.
            conn.execute(insert_ignore(conn, rate_windows, ["key_id", "window_start"]),
                         [{"key_id": key_id, "window_start": current, "requests": 0,
                           "tokens": 0}])
            query = select(c.window_start, c.requests, c.tokens).where(
                c.key_id == key_id, c.window_start.in_([previous, current]))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            rows = {r.window_start: r for r in conn.execute(query)}
            now_row, before = rows[current], rows.get(previous)
            window = Window(before.requests if before else 0, now_row.requests,
                            before.tokens if before else 0, now_row.tokens)
            wait = decide(rpm, tpm, window, tokens, elapsed)
            if wait is not None:
                return wait
            conn.execute(update(rate_windows).where(c.key_id == key_id,
                                                    c.window_start == current)
                         .values(requests=now_row.requests + 1,
                                 tokens=now_row.tokens + tokens))
            conn.execute(delete(rate_windows).where(c.key_id == key_id,
                                                    c.window_start < previous))
        return None

    async def aclose(self) -> None:
        return None


# The decision of meterline.domain.ratelimits.decide (whether it fits), atomically in Redis:
# KEYS = requests now, requests before, tokens now, tokens before;
# ARGV = rpm (0: none), tpm (0: none), tokens of this call, weight of the previous minute.
_SCRIPT = """
local function load(now_key, before_key)
  return tonumber(redis.call('GET', now_key) or '0'),
         tonumber(redis.call('GET', before_key) or '0')
end
local rpm, tpm, need, weight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                               tonumber(ARGV[4])
local r_now, r_before = load(KEYS[1], KEYS[2])
local t_now, t_before = load(KEYS[3], KEYS[4])
if (rpm > 0 and r_now + math.floor(r_before * weight) + 1 > rpm) or
   (tpm > 0 and t_now + math.floor(t_before * weight) + need > tpm) then
  return {0, r_before, r_now, t_before, t_now}
end
redis.call('INCRBY', KEYS[1], 1)
redis.call('INCRBY', KEYS[3], need)
redis.call('EXPIRE', KEYS[1], 130)
redis.call('EXPIRE', KEYS[3], 130)
return {1}
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "meterline:rl:",
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.client: Any = aioredis.Redis.from_url(url)
        self.prefix = prefix
        self.script = self.client.register_script(_SCRIPT)
        #: Where the time comes from: a test sets the moment within a minute it needs.
        self.clock = clock

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None,
                      tokens: int) -> int | None:
        now = self.clock()
        current, elapsed = _minute(now)
        minute = int(current.timestamp()) // WINDOW_SECONDS
        keys = [f"{self.prefix}{key_id}:{kind}:{m}" for kind in ("r", "t")
                for m in (minute, minute - 1)]
        try:
            found = await self.script(keys=keys, args=[
                rpm or 0, tpm or 0, tokens, repr(1 - elapsed / WINDOW_SECONDS)])
        except RedisError as exc:
            raise StoreError(f"rate limits: Redis unreachable ({exc.__class__.__name__})"
                             ) from exc
        if int(found[0]) == 1:
            return None
        before_r, now_r, before_t, now_t = (int(v) for v in found[1:])
        return decide(rpm, tpm, Window(before_r, now_r, before_t, now_t), tokens,
                      elapsed) or 1

    async def aclose(self) -> None:
        await self.client.aclose()


def call_tokens(body: Mapping[str, Any], wire: str) -> int:
    """What a call counts against tokens per minute: its prompt estimate plus ``max_tokens``."""
    most = 0
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            most = value
            break
    return estimate_prompt_tokens(body, wire) + most


class RateLimits:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def check(self, key: ApiKey, body: Mapping[str, Any], wire: str) -> None:
        rpm, tpm = key.rpm, key.tpm
        if not rpm and not tpm:
            return
        tokens = call_tokens(body, wire) if tpm else 0
        wait = await self.limiter.acquire(key.id, rpm, tpm, tokens)
        if wait is not None:
            limits = ", ".join(f"{n} {name}" for name, n in (("requests/min", rpm),
                                                             ("tokens/min", tpm)) if n)
            raise RateLimited(f"rate limit of this key reached ({limits}); retry in {wait} s",
                              retry_after=wait)
