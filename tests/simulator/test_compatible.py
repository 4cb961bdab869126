"""The OpenAI-compatible Chinese providers' dialects (simulator/compatible.py): each at its own
path with its documented usage fields, streamed (with the stream's usage where that provider
sends it) and not, through the official ``openai`` SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

BASES = {"deepseek": "", "qwen": "/compatible-mode/v1", "volcano": "/api/v3",
         "zhipu": "/api/paas/v4", "baidu": "/v2", "minimax": "/v1", "moonshot": "/v1"}
MODELS = {"deepseek": "deepseek-v4-flash", "qwen": "qwen-max", "volcano": "doubao-seed-1.6",
          "zhipu": "glm-4.5", "baidu": "ernie-4.5-turbo-128k", "minimax": "MiniMax-M2",
          "moonshot": "kimi-k2.5"}
PROMPT = "one two three [[sim tokens=3 cached=4 reasoning=2]]"  # 3 words


def client(url: str, provider: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + BASES[provider], api_key="sk-test", max_retries=0)


def chunks(http: httpx.Client, provider: str, include_usage: bool) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"model": MODELS[provider], "stream": True,
                            "messages": [{"role": "user", "content": PROMPT}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    text = http.post(f"{BASES[provider]}/chat/completions", json=body).text
    assert text.endswith("data: [DONE]\n\n")
    return [orjson.loads(line[6:]) for line in text.split("\n")
            if line.startswith("data: {")]


@pytest.mark.parametrize("provider", sorted(BASES))
def test_each_answer_says_its_reasoning_and_usage(sim_url: str, provider: str) -> None:
    with client(sim_url, provider) as oai:
        reply = oai.chat.completions.create(
            model=MODELS[provider], messages=[{"role": "user", "content": PROMPT}])
    message = reply.choices[0].message
    assert message.content == "lorem ipsum dolor"
    assert message.model_extra and message.model_extra["reasoning_content"] == "lorem ipsum"
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 5, 12)
    extra = usage.model_extra or {}
    details = usage.prompt_tokens_details
    cached = {"deepseek": extra.get("prompt_cache_hit_tokens"),
              "moonshot": extra.get("cached_tokens"),
              # MiniMax's OpenAI-compatible answers say nothing of its cache.
              "minimax": details}.get(provider, details and details.cached_tokens)
    assert cached == (None if provider == "minimax" else 4)
    if provider == "deepseek":
        assert extra["prompt_cache_miss_tokens"] == 3
    if provider in ("deepseek", "volcano", "baidu", "minimax", "qwen"):
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 2
    else:  # Zhipu and Moonshot report no split of the completion
        assert usage.completion_tokens_details is None
    # Zhipu's answers have no "object" field.
    assert (getattr(reply, "object", None) is None) is (provider == "zhipu")


@pytest.mark.parametrize("provider", ["deepseek", "qwen", "volcano"])
def test_own_usage_chunk_only_when_asked(http: httpx.Client, provider: str) -> None:
    assert all(c.get("usage") is None for c in chunks(http, provider, False))
    got = chunks(http, provider, True)
    assert got[-1]["choices"] == [] and got[-1]["usage"]["prompt_tokens"] == 7
    assert all(c.get("usage") is None for c in got[:-1])
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "")
                        for c in got if c["choices"])
    assert reasoning == "lorem ipsum"


@pytest.mark.parametrize("provider", ["zhipu", "minimax"])
def test_usage_on_the_finishing_chunk_even_unasked(http: httpx.Client, provider: str) -> None:
    last = chunks(http, provider, False)[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["completion_tokens"] == 5
    assert ("object" in last) is (provider != "zhipu")


def test_baidu_finishing_chunk_usage_only_when_asked(http: httpx.Client) -> None:
    assert "usage" not in chunks(http, "baidu", False)[-1]
    last = chunks(http, "baidu", True)[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["total_tokens"] == 12


def test_moonshot_stream_usage_is_inside_the_choice(http: httpx.Client) -> None:
    last = chunks(http, "moonshot", False)[-1]
    assert "usage" not in last
    assert last["choices"][0]["usage"] == {"prompt_tokens": 7, "completion_tokens": 5,
                                           "total_tokens": 12, "cached_tokens": 4}


def test_qwen_explicit_cache_writes(http: httpx.Client) -> None:
    body = {"model": "qwen-plus", "messages": [{"role": "user",
                                                "content": "a b [[sim cache_write=9]]"}]}
    usage = http.post("/compatible-mode/v1/chat/completions", json=body).json()["usage"]
    assert usage["prompt_tokens"] == 11
    assert usage["prompt_tokens_details"]["cache_creation_input_tokens"] == 9


def test_a_cost_at_a_path_of_the_providers_choosing(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "a [[sim cost=0.25 cost_in=billing.total_cost]]"}]}
    answer = http.post("/v1/chat/completions", json=body).json()
    assert answer["billing"] == {"total_cost": 0.25} and "cost" not in answer["usage"]
    streamed = http.post("/v1/chat/completions", json={
        **body, "stream": True, "stream_options": {"include_usage": True}}).text
    assert '"billing":{"total_cost":0.25}' in streamed
    refused = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
        {"role": "user", "content": "[[sim cost=1 cost_in=a..b]]"}]})
    assert refused.status_code == 400 and "cost_in" in refused.text
