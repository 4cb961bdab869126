"""An upstream that misbehaves on purpose (issue 12, proofs), driven through the gateway with the
official ``openai`` and ``anthropic`` SDKs: slow, hanging, resetting the connection (before its
answer, and midway through a stream or a body), answering 200 with broken JSON, reporting usage
that cannot be true, and storms of 429s and 5xxs.

For each: what the client gets (a clean answer or a clean error, never a 500), the ledger
record (status, ``estimated``, error text; every call that reached the provider is recorded),
and that nothing stays held — the call's budget hold is released and its Idempotency-Key is
free again, so a retry with the same key is served.

The faults come from the shared fake upstream (tests/gateway/conftest.py ``Faults``:
``[[fault ...]]`` in a request's text); plain upstream errors, timeouts of a slow upstream,
streams closed midway (``break_after``) and abandoned streams are in test_proxy_errors.py and
test_stream_abandoned.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from meterline.config import LimitsConfig
from meterline.providers.estimate import estimate_prompt_tokens, estimate_tokens
from tests.conftest import fresh_database
from tests.gateway.conftest import (
    SPOILT_USAGE,
    TEXT,
    Gateway,
    Upstream,
    marker,
    money,
    providers,
    start_gateway,
    token_cost,
)

#: Every provider's timeout here: a hanging upstream is given up on after this long (long
#: enough that the slow upstream, 0.3 s, is never cut off on a loaded machine).
TIMEOUT = 5.0
OPENAI_MODEL = "openai/gpt-5-nano"
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-6"
#: A hang guard for waits on the ledger and the budget (never a speed check).
WAIT = 60.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)
    return found


def user(content: str) -> list[Any]:
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest, upstream: Upstream,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with short provider timeouts, and a block budget on tenant acme that every
    call holds on its own (no leases), so a hold left behind shows in ``reserved``. Tests run
    one at a time per process, so between two tests nothing is in flight."""
    directory = tmp_path_factory.mktemp(f"faults-{request.param}")
    with fresh_database(request.param, directory) as url, \
            start_gateway(url, directory / "journal", upstream,
                          providers=providers(upstream.url, TIMEOUT),
                          limits=LimitsConfig(lease_calls=1)) as gateway:
        fx = gateway.admin.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                                 "effective_from": "2026-01-01T00:00:00Z"})
        assert fx.status_code == 201, fx.text
        budget = gateway.admin.post("/api/budgets", json={
            "tenant": "acme", "amount": "1000", "currency": "USD", "period": "month",
            "mode": "block"})
        assert budget.status_code == 201, budget.text
        yield gateway


def nothing_held(gw: Gateway) -> None:
    """The tenant budget has no hold left (every call's record released its own)."""
    def released() -> bool:
        answer = gw.admin.get("/api/budgets", params={"tenant": "acme"})
        assert answer.status_code == 200, answer.text
        [budget] = answer.json()["budgets"]
        return money(budget["reserved"]) == 0

    wait_for(released, "every budget hold released")


def retry_is_served(gw: Gateway, idempotency: str, anthropic_sdk: bool = False) -> None:
    """A retry with the failed call's Idempotency-Key is served, and recorded under that key."""
    headers = {"Idempotency-Key": idempotency}
    if anthropic_sdk:
        with gw.anthropic() as client:
            raw: Any = client.messages.with_raw_response.create(
                model=ANTHROPIC_MODEL, max_tokens=64, messages=user("again"),
                extra_headers=headers)
            assert raw.parse().content
    else:
        with gw.openai() as client:
            raw = client.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=user("again"), extra_headers=headers)
            assert raw.parse().choices
    record = gw.record(raw.headers["x-meterline-request-id"])
    assert (record["status"], record["id"]) == ("success", idempotency)


def no_500(error: BaseException) -> None:
    response = getattr(error, "response", None)
    assert response is None or response.status_code != 500, response.text


# --- slow and hanging ----------------------------------------------------------------------------

def test_a_slow_upstream_within_the_timeout_is_served(gw: Gateway) -> None:
    slow = f"{marker()} [[sim delay_ms=300 chunk_delay_ms=20 tokens=8]]"
    with gw.openai() as client:
        plain = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL,
                                                                 messages=user(slow))
        assert plain.parse().choices[0].message.content
        with client.chat.completions.create(model=OPENAI_MODEL, messages=user(slow),
                                            stream=True) as stream:
            streamed_id = stream.response.headers["x-meterline-request-id"]
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "lorem ipsum dolor sit amet consectetur adipiscing elit"
    with gw.anthropic() as client:
        message = client.messages.with_raw_response.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=user(slow))
        assert message.parse().content
    for request_id in (plain.headers["x-meterline-request-id"], streamed_id,
                       message.headers["x-meterline-request-id"]):
        record = gw.record(request_id)
        assert record["status"] == "success" and record["error"] is None
        assert record["estimated"] is False
        assert record["latency_ms"] >= 300
    nothing_held(gw)


def test_a_hanging_upstream_is_a_clean_timeout(gw: Gateway, upstream: Upstream) -> None:
    """The upstream never answers (or sends its headers, and then nothing): each client gets a
    504 from the gateway (not its own timeout, 30 s), the call is recorded ``timeout``, and the
    gateway hung up on the upstream."""
    assert upstream.faults is not None
    hung_up = upstream.faults.hung_up
    keys = {kind: f"idem-{marker()}" for kind in ("plain", "stream", "messages", "body")}
    hang = "[[fault hang]]"

    def plain() -> None:
        with gw.openai() as client:
            client.chat.completions.create(model=OPENAI_MODEL, messages=user(hang),
                                           extra_headers={"Idempotency-Key": keys["plain"]})

    def stream() -> None:
        with gw.openai() as client:
            client.chat.completions.create(model=OPENAI_MODEL, messages=user(hang), stream=True,
                                           extra_headers={"Idempotency-Key": keys["stream"]})

    def messages() -> None:
        with gw.anthropic() as client:
            client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user(hang),
                                   stream=True,
                                   extra_headers={"Idempotency-Key": keys["messages"]})

    def body() -> None:  # the headers come, the body never does
        with gw.openai() as client:
            client.chat.completions.create(model=OPENAI_MODEL,
                                           messages=user("[[fault stall_after=0]]"),
                                           extra_headers={"Idempotency-Key": keys["body"]})

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call) for call in (plain, stream, messages, body)]
        errors = [future.exception(timeout=WAIT) for future in futures]
    for error in errors:
        assert isinstance(error, openai.APIStatusError | anthropic.APIStatusError), error
        response = error.response
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert f"{TIMEOUT:g} s" in response.json()["error"]["message"]
        record = gw.record(response.headers["x-meterline-request-id"])
        assert record["status"] == "timeout"
        assert f"no answer within {TIMEOUT:g} s" in record["error"]
        assert record["latency_ms"] >= TIMEOUT * 1000 * 0.9
        assert record["usage"] == {} and money(record["cost"]) == 0
    assert errors[2].response.json()["type"] == "error"  # Anthropic's shape on /v1/messages
    assert gw.record(errors[3].response.headers["x-meterline-request-id"])["http_status"] == 200
    wait_for(lambda: upstream.faults is not None and upstream.faults.hung_up >= hung_up + 4,
             "the gateway hung up on the hanging upstream")
    nothing_held(gw)
    retry_is_served(gw, keys["plain"])
    retry_is_served(gw, keys["stream"])
    retry_is_served(gw, keys["messages"], anthropic_sdk=True)
    retry_is_served(gw, keys["body"])


# --- connection resets ---------------------------------------------------------------------------

def test_a_connection_reset_before_the_answer(gw: Gateway) -> None:
    key = f"idem-{marker()}"
    with gw.openai() as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=OPENAI_MODEL, messages=user("[[fault reset]]"),
                                       extra_headers={"Idempotency-Key": key})
    response = caught.value.response
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "upstream_error"
    record = gw.record(response.headers["x-meterline-request-id"])
    assert record["status"] == "error" and record["error"]
    assert "openai" in record["error"]
    assert record["usage"] == {} and money(record["cost"]) == 0
    with gw.anthropic() as client, pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                               messages=user("[[fault reset]]"))
    assert refused.value.response.status_code == 502
    assert refused.value.response.json()["type"] == "error"
    record = gw.record(refused.value.response.headers["x-meterline-request-id"])
    assert record["status"] == "error" and record["usage"] == {}
    nothing_held(gw)
    retry_is_served(gw, key)


def test_a_connection_reset_midway_through_an_openai_stream(gw: Gateway) -> None:
    key = f"idem-{marker()}"
    prompt = f"{marker()} [[fault reset_after=5]]"
    received: list[Any] = []
    with gw.openai() as client, client.chat.completions.create(
            model=OPENAI_MODEL, messages=user(prompt), stream=True,
            extra_headers={"Idempotency-Key": key}) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk)
    no_500(caught.value)
    assert "connection broke" in caught.value.message
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert TEXT.startswith(text)
    record = gw.record(request_id)
    assert record["status"] == "error" and "connection broke" in record["error"]
    # Billed for what was received (no usage came): the prompt and the text that arrived.
    assert record["estimated"] is True
    usage = {"input_tokens": estimate_prompt_tokens({"messages": user(prompt)}, "openai")}
    if text:
        usage["output_tokens"] = estimate_tokens(text)
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage)
    nothing_held(gw)
    retry_is_served(gw, key)


def test_a_connection_reset_midway_through_an_anthropic_stream(gw: Gateway) -> None:
    key = f"idem-{marker()}"
    prompt = f"{marker()} [[fault reset_after=6]]"
    with gw.anthropic() as client:
        stream = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                                        messages=user(prompt), stream=True,
                                        extra_headers={"Idempotency-Key": key})
        with stream:
            request_id = stream.response.headers["x-meterline-request-id"]
            events: list[Any] = []
            with pytest.raises(anthropic.APIStatusError) as caught:
                for event in stream:
                    events.append(event)
    assert "connection broke" in str(caught.value)
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert TEXT.startswith(text)
    record = gw.record(request_id)
    assert record["status"] == "error" and "connection broke" in record["error"]
    assert record["estimated"] is True
    # The input came in message_start (if that arrived); the output is estimated from the text.
    started = [e for e in events if e.type == "message_start"]
    assert record["usage"]["input_tokens"] == (
        started[0].message.usage.input_tokens if started
        else estimate_prompt_tokens({"messages": user(prompt)}, "anthropic"))
    assert record["usage"].get("output_tokens", 0) >= estimate_tokens(text)
    assert money(record["cost"]) == token_cost(record["usage"])
    nothing_held(gw)
    retry_is_served(gw, key, anthropic_sdk=True)


def test_a_connection_reset_midway_through_a_body(gw: Gateway) -> None:
    """A non-streamed answer cut off after its first bytes: nothing usable arrived."""
    key = f"idem-{marker()}"
    with gw.openai() as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=OPENAI_MODEL,
                                       messages=user("[[fault reset_after=40]]"),
                                       extra_headers={"Idempotency-Key": key})
    response = caught.value.response
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "upstream_error"
    record = gw.record(response.headers["x-meterline-request-id"])
    assert record["status"] == "error" and "connection broke" in record["error"]
    assert record["http_status"] == 200
    nothing_held(gw)
    retry_is_served(gw, key)


# --- broken answers ------------------------------------------------------------------------------

def malformed_call(gw: Gateway, idempotency: str) -> tuple[Any, dict[str, Any]]:
    """A call whose provider answers 200 with half a JSON document: the answer and its record."""
    with gw.http() as http:
        answer = http.post("/v1/chat/completions",
                           headers=gw.headers(**{"Idempotency-Key": idempotency}),
                           json={"model": OPENAI_MODEL, "messages": user("[[fault malformed]]")})
    assert answer.status_code != 500, answer.text
    return answer, gw.record(answer.headers["x-meterline-request-id"])


def test_a_200_with_a_body_that_is_not_json_is_recorded(gw: Gateway) -> None:
    """The provider said 200 and sent half a JSON document: the call is recorded (the provider
    may bill it, so on estimates) and holds nothing."""
    _, record = malformed_call(gw, f"idem-{marker()}")
    assert record["estimated"] is True
    assert record["usage"]["input_tokens"] == estimate_prompt_tokens(
        {"messages": user("[[fault malformed]]")}, "openai")
    assert money(record["cost"]) == token_cost(record["usage"])
    assert record["http_status"] == 200
    nothing_held(gw)


def test_a_200_with_a_body_that_is_not_json_is_an_upstream_error(gw: Gateway) -> None:
    key = f"idem-{marker()}"
    answer, record = malformed_call(gw, key)
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "upstream_error"
    assert record["status"] == "error"
    assert "JSON" in (record["error"] or "")
    retry_is_served(gw, key)


@pytest.mark.parametrize("variant", sorted(SPOILT_USAGE))
def test_usage_that_cannot_be_true_is_estimated(gw: Gateway, variant: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Negative, fractional, textual or impossibly large counts, or no usage at all: the answer
    goes out, and the call is billed on estimates (never on the bad numbers, never a 500); the
    log says why."""
    prompt = f"{marker()} [[fault usage={variant}]]"
    ids: dict[str, str] = {}
    with gw.openai() as client:
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL,
                                                               messages=user(prompt))
        assert raw.parse().choices[0].message.content == TEXT
        ids["openai"] = raw.headers["x-meterline-request-id"]
        with client.chat.completions.create(model=OPENAI_MODEL, messages=user(prompt),
                                            stream=True) as stream:
            ids["openai stream"] = stream.response.headers["x-meterline-request-id"]
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == TEXT
    with gw.anthropic() as client:
        message = client.messages.with_raw_response.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=user(prompt))
        assert message.parse().content[0].text == TEXT  # type: ignore[union-attr]
        ids["anthropic"] = message.headers["x-meterline-request-id"]
        # The events as they come (the SDK's stream helper itself trips on spoilt usage).
        with client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, stream=True,
                                    messages=user(prompt)) as events:
            ids["anthropic stream"] = events.response.headers["x-meterline-request-id"]
            assert "".join(e.delta.text for e in events
                           if e.type == "content_block_delta") == TEXT  # type: ignore[union-attr]
    for call, request_id in ids.items():
        wire = call.split()[0]
        record = gw.record(request_id)
        assert record["status"] == "success", (call, record)
        assert record["estimated"] is True, (call, record)
        usage = {"input_tokens": estimate_prompt_tokens({"messages": user(prompt)}, wire),
                 "output_tokens": estimate_tokens(TEXT)}
        assert record["usage"] == usage, (call, record)
        assert money(record["cost"]) == token_cost(usage)
        if call == "openai":
            assert raw.headers["x-meterline-cost"] == record["cost"]
        if variant not in ("missing", "null"):  # usage there, and unusable
            assert f"{request_id} ({wire}): the upstream's usage cannot be used" in caplog.text
    nothing_held(gw)


# --- storms --------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
def test_a_storm_of_upstream_errors_passes_through_and_leaves_the_gateway_working(
        gw: Gateway, status: int) -> None:
    """Every call of a burst is refused by the provider: each client gets the provider's status
    and its Retry-After, each call is recorded as an error, and the next call is served."""
    word = marker()
    directive = f"{word} [[sim status={status} retry_after=7]]"
    key = f"idem-{marker()}"
    lock = threading.Lock()
    outcomes: list[tuple[int, str | None, str]] = []

    def call(index: int) -> None:
        headers = {"Idempotency-Key": key} if index == 0 else {}
        try:
            if index % 3 == 2:
                with gw.anthropic() as client:
                    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                                           messages=user(directive), extra_headers=headers)
            else:
                with gw.openai() as client:
                    client.chat.completions.create(model=OPENAI_MODEL, messages=user(directive),
                                                   stream=index % 3 == 1, extra_headers=headers)
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            with lock:
                outcomes.append((exc.response.status_code, exc.response.headers.get(
                    "retry-after"), exc.response.headers["x-meterline-request-id"]))
            return
        raise AssertionError(f"call {index} was served during the storm")

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(call, index) for index in range(30)]:
            future.result(timeout=WAIT)
    assert len(outcomes) == 30
    assert {(code, retry) for code, retry, _ in outcomes} == {(status, "7")}
    for _, _, request_id in outcomes:
        record = gw.record(request_id)
        assert record["status"] == "error" and record["http_status"] == status
        assert f"HTTP {status}" in record["error"]
        assert record["usage"] == {} and money(record["cost"]) == Decimal(0)
    assert len(gw.upstream.requests(word)) == 30  # each passed on once, never retried
    # The gateway is not stuck: the next calls are served, the first one's key included.
    retry_is_served(gw, key)
    with gw.anthropic() as client:
        assert client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64,
                                      messages=user("after the storm")).content
    nothing_held(gw)


def test_the_fault_fixture_leaves_other_calls_alone(gw: Gateway, upstream: Upstream) -> None:
    """A guard on the fixture itself: without a fault marker the simulator answers as ever."""
    assert upstream.faults is not None
    seen = sum(upstream.faults.seen.values())
    with gw.openai() as client:
        answer = client.chat.completions.create(model=OPENAI_MODEL, messages=user("plain"))
    assert answer.choices[0].message.content == TEXT
    assert sum(upstream.faults.seen.values()) == seen
