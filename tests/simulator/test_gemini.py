"""Gemini generateContent / streamGenerateContent over real HTTP (httpx)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from meterline.simulator import SimState

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def request(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "earlier question"}]},
            {"role": "model", "parts": [{"text": "earlier answer"}]},
            {"role": "user", "parts": [{"text": text}]},
        ],
        **extra,
    }


def sse_chunks(body: str) -> list[dict[str, Any]]:
    assert "\r\n\r\n" in body
    return [orjson.loads(e[len("data: ") :]) for e in body.strip().split("\r\n\r\n")]


def test_generate_content_usage(http: httpx.Client) -> None:
    answer = http.post(GENERATE, json=request("hi [[sim tokens=3]]")).json()
    candidate = answer["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "lorem ipsum dolor"}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    assert answer["modelVersion"] == "gemini-2.5-flash"
    usage = answer["usageMetadata"]
    assert usage["promptTokenCount"] == 7
    assert usage["candidatesTokenCount"] == 3
    assert usage["totalTokenCount"] == 10
    assert "cachedContentTokenCount" not in usage  # absent when zero, like the real API
    assert "thoughtsTokenCount" not in usage


def test_cached_and_thoughts(http: httpx.Client) -> None:
    body = request("hi [[sim cached=50 reasoning=8 tokens=2]]")
    usage = http.post(GENERATE, json=body).json()["usageMetadata"]
    assert usage["promptTokenCount"] == 57  # includes the cached part
    assert usage["cachedContentTokenCount"] == 50
    assert usage["thoughtsTokenCount"] == 8
    assert usage["candidatesTokenCount"] == 2
    assert usage["totalTokenCount"] == 67


def test_max_output_tokens(http: httpx.Client) -> None:
    body = request("hi", generationConfig={"maxOutputTokens": 4})
    answer = http.post(GENERATE, json=body).json()
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert answer["usageMetadata"]["candidatesTokenCount"] == 4


def test_sse_stream(http: httpx.Client) -> None:
    response = http.post(STREAM, params={"alt": "sse"}, json=request("hi [[sim tokens=5]]"))
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(response.text)
    assert len(chunks) == 6
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "lorem ipsum dolor sit amet"
    assert all("usageMetadata" not in c for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 7


def test_json_array_stream_without_alt(http: httpx.Client) -> None:
    chunks = http.post(STREAM, json=request("hi [[sim tokens=2]]")).json()
    assert len(chunks) == 3
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 9
    empty = http.post(STREAM, json=request("hi [[sim tokens=0]]")).json()
    assert len(empty) == 1


def test_no_usage(http: httpx.Client) -> None:
    assert "usageMetadata" not in http.post(GENERATE, json=request("[[sim no_usage]]")).json()
    body = request("[[sim no_usage]]")
    chunks = sse_chunks(http.post(STREAM, params={"alt": "sse"}, json=body).text)
    assert all("usageMetadata" not in c for c in chunks)


def test_break_after(http: httpx.Client) -> None:
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with http.stream(
            "POST", STREAM, params={"alt": "sse"}, json=request("[[sim break_after=2]]")
        ) as response:
            for part in response.iter_bytes():
                received += part
    assert received.count(b"data: ") == 2
    assert b"usageMetadata" not in received


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ],
)
def test_errors_in_google_shape(http: httpx.Client, status: int, text: str) -> None:
    response = http.post(GENERATE, json=request(f"[[sim status={status}]]"))
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, text)
    assert error["message"]


def test_bad_requests(http: httpx.Client) -> None:
    assert http.post(GENERATE, json={"contents": []}).status_code == 400
    unknown = http.post("/v1beta/models/gemini-2.5-flash:fly", json=request("x"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == "NOT_FOUND"
    bad = http.post(GENERATE, json=request("[[sim delay_ms=soon]]"))
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_count_tokens_models_and_v1_path(http: httpx.Client, sim: SimState) -> None:
    counted = http.post("/v1beta/models/gemini-2.5-pro:countTokens", json=request("a b"))
    assert counted.json() == {"totalTokens": 8}
    names = [m["name"] for m in http.get("/v1beta/models").json()["models"]]
    assert "models/gemini-2.5-flash" in names
    v1 = http.post("/v1/models/gemini-2.5-pro:generateContent", json=request("x"))
    assert v1.json()["modelVersion"] == "gemini-2.5-pro"
    assert sim.requests["/v1beta/models/gemini-2.5-pro:countTokens"] == 1
