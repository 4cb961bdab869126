"""Rate limits per key (requests and tokens per minute), shared through the database or Redis:
over the limit, 429 ``rate_limited`` with ``Retry-After``, before the provider is called."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from meterline.config import LimitsConfig
from meterline.errors import StoreError
from meterline.gateway.ratelimit import RedisLimiter
from tests.gateway.conftest import Gateway

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["database", "redis"])
def limited(request: pytest.FixtureRequest, gateway_factory: Any) -> Gateway:
    limits = LimitsConfig(redis_url=REDIS if request.param == "redis" else None)
    gw: Gateway = gateway_factory(limits=limits)
    return gw


def chat(http: httpx.Client, key: str, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                     json={"model": "openai/gpt-5-nano",
                           "messages": [{"role": "user", "content": "hi"}], **body})


def test_requests_per_minute(limited: Gateway) -> None:
    key, _ = limited.new_key(rpm=3)
    before = limited.upstream.count()
    with limited.http() as http:
        answers = [chat(http, key) for _ in range(5)]
    statuses = [a.status_code for a in answers]
    # Five calls in a moment: three fit (four if a minute began in between, as the previous
    # minute then weighs a little less than its three).
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 120
    assert limited.upstream.count() - before == statuses.count(200)
    # Another key of the tenant has its own limits.
    with limited.http() as http:
        assert chat(http, limited.key).status_code == 200


def test_retry_after_is_at_most_the_rest_of_the_window(limited: Gateway) -> None:
    # Issue 13.9: a key of rpm=2, refused 9 s into a minute, was told Retry-After: 81. Both of
    # its calls leave the window as this minute becomes the previous one and starts to decay,
    # so the third fits once the minute is over: in 51 s.
    key, _ = limited.new_key(rpm=2)
    limiter = limited.app.state.gateway.rate_limits.limiter
    limiter.clock = lambda: datetime(2026, 11, 20, 12, 0, 9, 250_000, tzinfo=UTC)
    with limited.http() as http:
        answers = [chat(http, key) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].headers["retry-after"] == "51"
        # ... and it does fit then (the first moment of the next minute), not before.
        limiter.clock = lambda: datetime(2026, 11, 20, 12, 0, 59, 900_000, tzinfo=UTC)
        assert chat(http, key).status_code == 429
        limiter.clock = lambda: datetime(2026, 11, 20, 12, 1, 0, 1_000, tzinfo=UTC)
        assert chat(http, key).status_code == 200


def test_tokens_per_minute_count_max_tokens(limited: Gateway) -> None:
    key, _ = limited.new_key(tpm=500)
    with limited.http() as http:
        assert chat(http, key, max_tokens=300).status_code == 200
        refused = chat(http, key, max_tokens=300)
        assert refused.status_code == 429
        assert chat(http, key, max_tokens=100).status_code == 200


def test_the_sdk_sees_a_rate_limit_error(limited: Gateway) -> None:
    key, _ = limited.new_key(rpm=1)
    with limited.openai(key=key) as client:
        client.chat.completions.create(model="openai/gpt-5-nano", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="openai/gpt-5-nano", max_tokens=5,
                                           messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"]


def test_bad_limits_are_refused(gateway_factory: Any) -> None:
    gw: Gateway = gateway_factory()
    answer = gw.admin.post("/api/keys", json={"tenant": "acme", "rpm": 0})
    assert answer.status_code == 400 and "rpm" in answer.text


def test_redis_unreachable_is_a_clear_error() -> None:
    async def attempt() -> None:
        limiter = RedisLimiter("redis://127.0.0.1:1/0")
        try:
            await limiter.acquire("key_x", 5, None, 0)
        finally:
            await limiter.aclose()

    with pytest.raises(StoreError, match="Redis unreachable"):
        asyncio.run(attempt())
