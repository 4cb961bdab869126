"""meterline.billing.http: the throttle, the backoff, reading money from JSON, and scrubbing
credentials out of what a provider says."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from meterline.billing.errors import ProviderUnavailable
from meterline.billing.http import Backoff, BillingClient, Problem, Throttle, read_json
from tests.billing.conftest import Clock


def test_the_throttle_spaces_requests_by_the_rate() -> None:
    clock = Clock()
    throttle = Throttle(4, clock, clock.sleep)
    for _ in range(5):
        throttle.wait()
    assert clock.slept == [0.25] * 4
    clock.now += 10  # an idle while lets the next one go at once
    throttle.wait()
    assert clock.slept == [0.25] * 4


def test_the_backoff_doubles_up_to_its_cap_and_takes_retry_after() -> None:
    backoff = Backoff(attempts=6, base=0.5, cap=3)
    assert [backoff.delay(n, None) for n in range(5)] == [0.5, 1, 2, 3, 3]
    assert backoff.delay(0, 2) == 2 and backoff.delay(0, 60) == 3


def test_json_numbers_are_read_as_decimals() -> None:
    assert read_json('{"a": 12345678.123456789012, "b": 3}') == {
        "a": Decimal("12345678.123456789012"), "b": 3}
    assert read_json("<html>") is None


def _client(handler: httpx.MockTransport, clock: Clock) -> BillingClient:
    return BillingClient("test account 'main'", secrets=["AKIDsecretid", "the-secret"],
                         hint="the credentials in X", rate=100, timeout=5, transport=handler,
                         clock=clock, sleep=clock.sleep, backoff=Backoff(attempts=2))


def test_a_providers_message_is_scrubbed_of_credentials() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"message": "bad AKIDsecretid / the-secret"})

    def classify(status: int, body: object) -> Problem | None:
        assert isinstance(body, dict)
        return Problem("server", "Internal", str(body["message"]))

    with _client(httpx.MockTransport(answer), Clock()) as client, \
            pytest.raises(ProviderUnavailable) as raised:
        client.send("Action", lambda: httpx.Request("GET", "http://fake/"), classify)
    assert raised.value.message == ("test account 'main': Action failed after 2 attempts "
                                    "(Internal: bad *** / ***)")
    assert client.requests == 2


def test_an_answer_that_is_not_json_is_a_failure() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    with _client(transport, Clock()) as client, pytest.raises(ProviderUnavailable,
                                                              match="not JSON"):
        client.send("Action", lambda: httpx.Request("GET", "http://fake/"), lambda s, b: None)


def test_a_broken_connection_is_retried_then_reported() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    clock = Clock()
    with _client(httpx.MockTransport(broken), clock) as client, \
            pytest.raises(ProviderUnavailable, match="after 2 attempts"):
        client.send("Action", lambda: httpx.Request("GET", "http://fake/"), lambda s, b: None)
    assert 0.5 in clock.slept
