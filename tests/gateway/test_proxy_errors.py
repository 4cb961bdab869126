"""Failures, and how they are recorded (SPEC §3, §7.6): upstream errors passed back as they came,
timeouts, streams broken by the upstream or abandoned by the client, streams without usage, and
bad input refused before anything reaches the provider."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest

from meterline.providers.estimate import MESSAGE_OVERHEAD
from meterline.simulator.openai import openai_error
from tests.gateway.conftest import TEXT, UPSTREAM_KEY, marker, money, token_cost, words

MODEL = "openai/gpt-5-nano"


def estimate(text: str) -> int:
    """meterline's estimate for ASCII text: 4 characters a token."""
    return -(-len(text) // 4)


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


# --- upstream errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "error_class", "code"), [
    (429, openai.RateLimitError, "rate_limit_exceeded"),
    (400, openai.BadRequestError, "invalid_request"),
    (500, openai.InternalServerError, "server_error"),
])
def test_upstream_error_passed_back_and_recorded(gateway, status, error_class, code):
    m = marker()
    extra = " retry_after=2" if status == 429 else ""
    directive = f"[[sim status={status}{extra}]]"
    with gateway.openai() as client, pytest.raises(error_class) as caught:
        client.chat.completions.create(model=MODEL, messages=user(f"{m} {directive}"),
                                       extra_headers={"x-meterline-tags": "t"})
    response = caught.value.response
    assert response.status_code == status
    # The body is the provider's, byte for byte.
    assert response.content == openai_error(status, f"Simulated error (HTTP {status}).").body
    assert response.json()["error"]["code"] == code
    assert "x-meterline-cost" not in response.headers
    if status == 429:
        assert response.headers["retry-after"] == "2"
    record = gateway.record(response.headers["x-meterline-request-id"])
    assert record["status"] == "error"
    assert record["http_status"] == status
    assert record["error"] and f"HTTP {status}" in record["error"]
    assert record["usage"] == {}
    assert money(record["cost"]) == 0
    assert record["tags"] == ["t"] and record["user"] == "bob"
    assert record["latency_ms"] is not None
    assert len(gateway.upstream.requests(m)) == 1  # no retry by the gateway


def test_upstream_error_on_a_streamed_request(gateway):
    with gateway.openai() as client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=user("x [[sim status=503]]"),
                                       stream=True)
    response = caught.value.response
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    record = gateway.record(response.headers["x-meterline-request-id"])
    assert record["status"] == "error" and record["http_status"] == 503


def test_upstream_timeout(gateway_factory, upstream):
    # The provider would answer after 20 s; the gateway gives up after 0.5 s. Waiting at most
    # 10 s for the answers tells the two apart without timing the machine.
    gw = gateway_factory(timeout=0.5)

    def plain():
        with gw.openai() as client:
            client.chat.completions.create(model=MODEL, messages=user("[[sim delay_ms=20000]]"))

    def streamed():
        with gw.openai() as client:
            client.chat.completions.create(model=MODEL, stream=True,
                                           messages=user("[[sim delay_ms=20000]]"))

    def messages():
        with gw.anthropic() as client:
            client.messages.create(model="anthropic/claude-sonnet-4-6", max_tokens=5,
                                   messages=user("[[sim delay_ms=20000]]"))

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(call) for call in (plain, streamed, messages)]
        errors = [future.exception(timeout=10) for future in futures]
    assert isinstance(errors[2], anthropic.APIStatusError)
    for error in errors:
        assert isinstance(error, openai.APIStatusError | anthropic.APIStatusError), error
        response = error.response
        assert response.status_code == 504
        body = response.json()
        assert body["error"]["code"] == "upstream_timeout"
        assert "0.5 s" in body["error"]["message"]
        record = gw.record(response.headers["x-meterline-request-id"])
        assert record["status"] == "timeout"
        assert record["error"] and "0.5 s" in record["error"]
        assert record["latency_ms"] >= 450
        assert record["usage"] == {}
    assert errors[2].response.json()["type"] == "error"  # Anthropic's shape there
    # A stream that goes silent for longer than the timeout midway.
    with gw.openai() as client, client.chat.completions.create(
            model=MODEL, messages=user("slow [[sim chunk_delay_ms=800 tokens=3]]"),
            stream=True) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        with pytest.raises(openai.APIError, match=r"0\.5 s"):
            list(stream)
    record = gw.record(request_id)
    assert record["status"] == "timeout"
    assert record["estimated"] is True


# --- broken, abandoned and usage-less streams ----------------------------------------------------

def test_stream_broken_by_the_upstream_openai(gateway):
    prompt = "tell me [[sim break_after=3]]"
    with gateway.openai() as client, client.chat.completions.create(
            model=MODEL, messages=user(prompt), stream=True) as stream:
        request_id = stream.response.headers["x-meterline-request-id"]
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk)
    # What the upstream sent reaches the client, then an error saying the stream broke.
    assert "".join(c.choices[0].delta.content or "" for c in received) == "lorem ipsum dolor"
    assert "connection broke" in caught.value.message
    record = gateway.record(request_id)
    assert record["status"] == "error"
    assert "connection broke" in record["error"]
    assert record["estimated"] is True
    # No usage came: estimated from the request and the text produced.
    usage = {"input_tokens": MESSAGE_OVERHEAD + estimate(prompt),
             "output_tokens": estimate("lorem ipsum dolor")}
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage)


def test_stream_broken_by_the_upstream_anthropic(gateway):
    prompt = "tell me more [[sim break_after=3 cached=10]]"
    with gateway.anthropic() as client:
        stream = client.messages.create(model="anthropic/claude-sonnet-4-6", max_tokens=50,
                                        messages=user(prompt), stream=True)
        with stream:
            request_id = stream.response.headers["x-meterline-request-id"]
            received = []
            with pytest.raises(anthropic.APIStatusError) as caught:
                for event in stream:
                    received.append(event)
    assert "".join(e.delta.text for e in received if e.type == "content_block_delta") \
        == "lorem ipsum dolor"
    assert "connection broke" in str(caught.value)
    record = gateway.record(request_id)
    assert record["status"] == "error"
    assert record["estimated"] is True
    # The input came in message_start; the output is estimated from the text.
    usage = {"input_tokens": words(prompt) + 10, "cached_input_tokens": 10,
             "output_tokens": estimate("lorem ipsum dolor")}
    assert record["usage"] == usage
    assert money(record["cost"]) == token_cost(usage)


def test_anthropic_stream_broken_after_a_midway_usage_update_is_estimated(gateway):
    body = {"model": "anthropic/claude-sonnet-4-6", "max_tokens": 50, "stream": True,
            "messages": user("go on [[sim break_after=12]]")}
    with gateway.http() as http, http.stream("POST", "/v1/messages", headers=gateway.headers(),
                                             json=body) as response:
        request_id = response.headers["x-meterline-request-id"]
        response.read()
    record = gateway.record(request_id)
    assert record["estimated"] is True
    assert record["usage"]["output_tokens"] >= 12  # 12 words arrived; the midway update said 8


def test_client_disconnect_mid_stream_is_recorded_as_cancelled(gateway):
    abandoned = gateway.upstream.sim.abandoned
    prompt = "a long story [[sim chunk_delay_ms=40 tokens=40]]"
    with gateway.http() as http, http.stream(
            "POST", "/v1/chat/completions", headers=gateway.headers(),
            json={"model": MODEL, "stream": True, "messages": user(prompt)}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-meterline-request-id"]
        chunks = response.iter_raw()
        first = next(chunks) + next(chunks)
    assert first.startswith(b"data: ")
    record = gateway.record(request_id)
    assert record["status"] == "cancelled"
    assert record["error"] == "client disconnected"
    assert record["estimated"] is True
    usage = record["usage"]
    assert usage["input_tokens"] == MESSAGE_OVERHEAD + estimate(prompt)
    # Billed for what the upstream produced before the client left: more than nothing, less
    # than the whole answer.
    assert 1 <= usage["output_tokens"] < estimate(TEXT * 3)
    assert money(record["cost"]) == token_cost(usage)
    # The gateway hung up on the upstream too, instead of letting it generate on.
    deadline = time.monotonic() + 5
    while gateway.upstream.sim.abandoned == abandoned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gateway.upstream.sim.abandoned == abandoned + 1


def test_stream_without_usage_is_estimated(gateway):
    prompt = "no usage please [[sim no_usage]]"
    with gateway.openai() as client:
        with client.chat.completions.create(
                model=MODEL, messages=user(prompt), stream=True,
                stream_options={"include_usage": True}) as stream:
            request_id = stream.response.headers["x-meterline-request-id"]
            chunks = list(stream)
        raw = client.chat.completions.with_raw_response.create(model=MODEL,
                                                               messages=user(prompt))
        assert raw.parse().usage is None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert all(c.usage is None for c in chunks)
    usage = {"input_tokens": MESSAGE_OVERHEAD + estimate(prompt), "output_tokens": estimate(TEXT)}
    for rid in (request_id, raw.headers["x-meterline-request-id"]):
        record = gateway.record(rid)
        assert record["status"] == "success"
        assert record["estimated"] is True
        assert record["usage"] == usage
        assert money(record["cost"]) == token_cost(usage)
    assert raw.headers["x-meterline-cost"] == gateway.record(
        raw.headers["x-meterline-request-id"])["cost"]


# --- bad input -----------------------------------------------------------------------------------

def error_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-meterline-request-id"].startswith("req_")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert error["message"] and error["type"]
    return error


def test_bad_input_is_refused_before_the_upstream(gateway):
    count = gateway.upstream.count()
    chat = {"model": MODEL, "messages": user("hi")}
    with gateway.http() as http:
        missing = http.post("/v1/chat/completions", json=chat)
        assert "Authorization" in error_of(missing, 401, "invalid_api_key")["message"]
        error_of(http.post("/v1/chat/completions", json=chat,
                           headers={"Authorization": "Bearer ml-wrong"}), 401, "invalid_api_key")
        error_of(http.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                                   "input": "x"},
                           headers={"x-api-key": "ml-wrong"}), 401, "invalid_api_key")
        error_of(http.get("/v1/models"), 401, "invalid_api_key")
        anthropic_shape = http.post("/v1/messages", json=chat, headers={"x-api-key": "nope"})
        assert anthropic_shape.status_code == 401
        assert anthropic_shape.json()["type"] == "error"
        assert anthropic_shape.json()["error"]["code"] == "invalid_api_key"

        unknown = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                     json={**chat, "model": "openai/gpt-5-nan"}),
                           404, "model_not_found")
        assert "openai/gpt-5-nano" in unknown["candidates"]
        assert "gpt-5-nano" in unknown["message"]
        bare = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                  json={**chat, "model": "gpt5-nano"}), 404, "model_not_found")
        assert "gpt-5-nano" in bare["candidates"]
        error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                           json={**chat, "model": "nosuch/model"}), 404, "model_not_found")

        malformed = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                       content=b'{"model": "openai/gpt-5-nano",'),
                             400, "invalid_request")
        assert malformed["field"] == "body" and "JSON" in malformed["message"]
        not_object = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                        json=["model"]), 400, "invalid_request")
        assert not_object["field"] == "body"
        no_model = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                      json={"messages": user("hi")}), 400, "invalid_request")
        assert no_model["field"] == "model" and "model" in no_model["message"]
        wrong_type = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                        json={**chat, "model": 5}), 400, "invalid_request")
        assert wrong_type["field"] == "model"
        metadata = error_of(http.post("/v1/chat/completions", json=chat, headers=gateway.headers(
            **{"x-meterline-metadata": "[1, 2]"})), 400, "invalid_request")
        assert metadata["field"] == "x-meterline-metadata"
        wrong_endpoint = error_of(http.post("/v1/embeddings", headers=gateway.headers(),
                                            json={"model": "anthropic/claude-sonnet-4-6",
                                                  "input": "x"}), 400, "invalid_request")
        assert wrong_endpoint["field"] == "model"
        # What the ledger could not store is refused before the provider is paid.
        long_key = error_of(http.post("/v1/chat/completions", json=chat, headers=gateway.headers(
            **{"Idempotency-Key": "k" * 201})), 400, "invalid_request")
        assert long_key["field"] == "Idempotency-Key"
        long_model = error_of(http.post("/v1/chat/completions", headers=gateway.headers(),
                                        json={**chat, "model": "openrouter/" + "x" * 190}),
                              400, "invalid_request")
        assert long_model["field"] == "model" and "200" in long_model["message"]
        broken_form = error_of(http.post(
            "/v1/videos", headers=gateway.headers(
                **{"content-type": "multipart/form-data; boundary=xyz"}),
            content=b"--xyz\r\nno headers here"), 400, "invalid_request")
        assert broken_form["field"] == "body"
    assert gateway.upstream.count() == count


def test_key_limited_to_some_models(gateway):
    key, _ = gateway.new_key(models=["openai/gpt-5-nano"])
    with gateway.openai(key) as client:
        assert client.chat.completions.create(
            model="openai/gpt-5-nano", messages=user("hi")).choices[0].message.content == TEXT
        assert client.chat.completions.create(
            model="gpt-5-nano", messages=user("hi")).choices[0].message.content == TEXT
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model="deepseek/deepseek-chat", messages=user("hi"))
        assert [m.id for m in client.models.list()] == ["openai/gpt-5-nano"]
    error = denied.value.response.json()["error"]
    assert error["code"] == "model_not_allowed"
    assert "deepseek/deepseek-chat" in error["message"]
    with gateway.anthropic(key) as client, pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="anthropic/claude-sonnet-4-6", max_tokens=5,
                               messages=user("hi"))


def test_revoked_key_is_refused_after_the_cache_ttl(gateway_factory):
    gw = gateway_factory(key_cache_seconds=0.3)
    key, key_id = gw.new_key()
    with gw.openai(key) as client:
        assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices
        revoked = gw.admin.post(f"/api/keys/{key_id}/revoke")
        assert revoked.status_code == 200, revoked.text
        time.sleep(0.4)
        with pytest.raises(openai.AuthenticationError) as denied:
            client.chat.completions.create(model=MODEL, messages=user("hi"))
    error = denied.value.response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "revoked" in error["message"]
    # The other key of the tenant still works.
    with gw.openai() as client:
        assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices


def test_idempotency_key_calls_the_provider_once(gateway):
    key = f"idem-{marker()}"
    word = marker()
    with gateway.openai() as client:
        first = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user(f"hi {word}"), extra_headers={"Idempotency-Key": key})
        assert first.parse().choices
        with pytest.raises(openai.ConflictError) as again:
            client.chat.completions.create(model=MODEL, messages=user(f"hi {word}"),
                                           extra_headers={"Idempotency-Key": key})
        gateway.record(first.headers["x-meterline-request-id"])
        # Once it is in the ledger, another process would refuse it too (read from there).
        with pytest.raises(openai.ConflictError):
            client.chat.completions.create(model=MODEL, messages=user(f"hi {word}"),
                                           extra_headers={"Idempotency-Key": key})
    error = again.value.response.json()["error"]
    assert error["code"] == "conflict"
    assert first.headers["x-meterline-request-id"] in error["message"]
    assert len(gateway.upstream.requests(word)) == 1
    records = gateway.admin.get("/api/usage", params={"tenant": gateway.tenant,
                                                       "limit": 10_000}).json()["records"]
    assert [r["request_id"] for r in records if r["id"] == key] == [
        first.headers["x-meterline-request-id"]]


def test_a_failed_call_leaves_its_idempotency_key_for_the_retry(gateway):
    key = f"idem-{marker()}"
    with gateway.openai() as client:
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model=MODEL, messages=user("x [[sim status=500]]"),
                                           extra_headers={"Idempotency-Key": key})
        retry = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user("hi"), extra_headers={"Idempotency-Key": key})
    failed_id = failed.value.response.headers["x-meterline-request-id"]
    retry_id = retry.headers["x-meterline-request-id"]
    assert gateway.record(failed_id)["id"] == f"{key}/{failed_id}"
    assert gateway.record(failed_id)["status"] == "error"
    assert gateway.record(retry_id)["id"] == key
    assert gateway.record(retry_id)["status"] == "success"


def test_provider_key_never_reaches_logs_answers_or_records(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    seen, ids = [], []
    with gateway.http() as http:
        for content in ("hi", "x [[sim status=500]]", "y [[sim status=401]]",
                        "z [[sim break_after=1]]"):
            answer = http.post("/v1/chat/completions", headers=gateway.headers(), json={
                "model": MODEL, "messages": user(content), "stream": "break" in content})
            seen += [answer.text, json.dumps(dict(answer.headers))]
            ids.append(answer.headers["x-meterline-request-id"])
    records = [gateway.record(request_id) for request_id in ids]
    assert [r["status"] for r in records] == ["success", "error", "error", "error"]
    seen += [json.dumps(r) for r in records]
    assert all(UPSTREAM_KEY not in text for text in seen)
    assert UPSTREAM_KEY not in caplog.text


def test_provider_refusing_the_gateways_own_key_is_a_502_not_a_401(gateway):
    """The client's meterline key is fine: telling it "invalid key" would send it hunting."""
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", headers=gateway.headers(),
                             json={"model": MODEL, "messages": user("hi [[sim status=401]]")})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "credentials" in error["message"]
    record = gateway.record(response.headers["x-meterline-request-id"])
    assert (record["status"], record["http_status"]) == ("error", 401)
