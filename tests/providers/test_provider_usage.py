"""meterline.providers.usage: provider usage objects -> canonical Usage (SPEC §1)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.usage import Usage
from meterline.providers.usage import (
    UsageReading,
    anthropic_usage,
    gemini_usage,
    openai_usage,
    openai_usage_object,
    read_anthropic_usage,
    read_gemini_usage,
    read_openai_usage,
    read_response_usage,
    upstream_cost,
)

D = Decimal

# Responses as the providers send them (ids shortened), parsed the way the gateway does: orjson.
OPENAI_O3_MINI = orjson.loads(b"""{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
  "created": 1741569952, "model": "o3-mini-2025-01-31",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "42", "refusal": null,
               "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}},
  "service_tier": "default", "system_fingerprint": "fp_42bfad963b"
}""")

DEEPSEEK_REASONER = orjson.loads(b"""{
  "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e", "object": "chat.completion",
  "created": 1737529200, "model": "deepseek-reasoner",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "9.11 < 9.9",
               "reasoning_content": "Compare the tenths..."}, "logprobs": null,
               "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 1543, "completion_tokens": 812, "total_tokens": 2355,
            "prompt_tokens_details": {"cached_tokens": 1280},
            "completion_tokens_details": {"reasoning_tokens": 640},
            "prompt_cache_hit_tokens": 1280, "prompt_cache_miss_tokens": 263},
  "system_fingerprint": "fp_7e73fd9a08_prod0225"
}""")

OPENAI_EMBEDDINGS = orjson.loads(b"""{
  "object": "list",
  "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}""")

OPENROUTER = orjson.loads(b"""{
  "id": "gen-1749812345-abc", "provider": "OpenAI", "model": "openai/gpt-4o-mini",
  "object": "chat.completion", "created": 1749812345,
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
               "finish_reason": "stop", "native_finish_reason": "stop", "logprobs": null}],
  "usage": {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196,
            "cost": 0.0001215, "is_byok": false,
            "prompt_tokens_details": {"cached_tokens": 0},
            "cost_details": {"upstream_inference_cost": null},
            "completion_tokens_details": {"reasoning_tokens": 0}}
}""")

ANTHROPIC_CACHED = orjson.loads(b"""{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
  "model": "claude-sonnet-4-20250514",
  "content": [{"type": "text", "text": "The contract says..."}],
  "stop_reason": "end_turn", "stop_sequence": null,
  "usage": {"input_tokens": 21, "cache_creation_input_tokens": 1024,
            "cache_read_input_tokens": 3072, "output_tokens": 393,
            "cache_creation": {"ephemeral_5m_input_tokens": 1024,
                               "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"}
}""")

GEMINI_CACHED_THINKING = orjson.loads(b"""{
  "candidates": [{"content": {"parts": [{"text": "Summary: ..."}], "role": "model"},
                  "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 12040, "candidatesTokenCount": 310,
                    "totalTokenCount": 13592, "cachedContentTokenCount": 11880,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12040}],
                    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 11880}],
                    "thoughtsTokenCount": 1242},
  "modelVersion": "gemini-2.5-flash", "responseId": "nK1xaLz3Koa1nvgPl4TRkAk"
}""")


# --- well-formed usage -------------------------------------------------------------------------

def test_openai_cached_and_reasoning() -> None:
    reading = read_openai_usage(OPENAI_O3_MINI["usage"])
    assert reading == UsageReading(Usage.of(input_tokens=2006, cached_input_tokens=1920,
                                            output_tokens=300, reasoning_tokens=192))
    assert not reading.malformed
    assert openai_usage(OPENAI_O3_MINI["usage"]) == reading.usage


def test_deepseek_cache_hit_is_cached_and_hit_plus_miss_is_input() -> None:
    assert openai_usage(DEEPSEEK_REASONER["usage"]) == Usage.of(
        input_tokens=1543, cached_input_tokens=1280, output_tokens=812, reasoning_tokens=640)


def test_deepseek_hit_without_openai_details() -> None:
    usage = {"prompt_tokens": 64, "completion_tokens": 12, "total_tokens": 76,
             "prompt_cache_hit_tokens": 48, "prompt_cache_miss_tokens": 16}
    assert openai_usage(usage) == Usage.of(input_tokens=64, cached_input_tokens=48,
                                           output_tokens=12)
    # Hit and miss alone still give the prompt size.
    assert openai_usage({"prompt_cache_hit_tokens": 48, "prompt_cache_miss_tokens": 16,
                         "completion_tokens": 12}) == Usage.of(
        input_tokens=64, cached_input_tokens=48, output_tokens=12)


def test_openai_embeddings_report_prompt_tokens_only() -> None:
    assert openai_usage(OPENAI_EMBEDDINGS["usage"]) == Usage.of(input_tokens=8)


def test_openai_null_details_are_no_details() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
             "prompt_tokens_details": None, "completion_tokens_details": None}
    assert openai_usage(usage) == Usage.of(input_tokens=10, output_tokens=5)


def test_reasoning_beyond_completion_is_added_with_a_warning() -> None:
    reading = read_openai_usage({"prompt_tokens": 10, "completion_tokens": 5,
                                 "completion_tokens_details": {"reasoning_tokens": 20}})
    assert reading.usage == Usage.of(input_tokens=10, output_tokens=25, reasoning_tokens=20)
    assert reading.warning == ("usage: reasoning_tokens (20) exceed completion_tokens (5); "
                               "counted as additional output")
    assert not reading.malformed


def test_anthropic_adds_cache_reads_and_writes_to_input() -> None:
    reading = read_anthropic_usage(ANTHROPIC_CACHED["usage"])
    assert reading.usage == Usage.of(input_tokens=21 + 1024 + 3072, cached_input_tokens=3072,
                                     cache_write_tokens=1024, output_tokens=393)
    assert anthropic_usage(ANTHROPIC_CACHED["usage"]) == reading.usage
    assert anthropic_usage({"input_tokens": 12, "output_tokens": 6}) == Usage.of(
        input_tokens=12, output_tokens=6)


def test_anthropic_one_hour_cache_writes_are_their_own_part_of_the_writes() -> None:
    usage = {"input_tokens": 21, "cache_creation_input_tokens": 1024,
             "cache_read_input_tokens": 0, "output_tokens": 393,
             "cache_creation": {"ephemeral_5m_input_tokens": 24,
                                "ephemeral_1h_input_tokens": 1000}}
    assert anthropic_usage(usage) == Usage.of(
        input_tokens=21 + 1024, cache_write_tokens=1024, cache_write_1h_tokens=1000,
        output_tokens=393)
    # more written for an hour than written at all: the upstream's usage is not believed
    broken = read_anthropic_usage(usage | {"cache_creation_input_tokens": 10})
    assert broken.usage is None and broken.malformed
    assert "cache_write_1h_tokens" in (broken.problem or "")


def test_gemini_cached_and_thoughts() -> None:
    assert read_gemini_usage(GEMINI_CACHED_THINKING["usageMetadata"]).usage == Usage.of(
        input_tokens=12040, cached_input_tokens=11880, output_tokens=310 + 1242,
        reasoning_tokens=1242)


def test_gemini_tool_use_prompt_is_input_and_thoughts_alone_are_output() -> None:
    assert gemini_usage({"promptTokenCount": 100, "toolUsePromptTokenCount": 250,
                         "candidatesTokenCount": 40, "totalTokenCount": 390}) == Usage.of(
        input_tokens=350, output_tokens=40)
    # MAX_TOKENS hit while thinking: no candidatesTokenCount at all.
    assert gemini_usage({"promptTokenCount": 9, "totalTokenCount": 1033,
                         "thoughtsTokenCount": 1024}) == Usage.of(
        input_tokens=9, output_tokens=1024, reasoning_tokens=1024)


@pytest.mark.parametrize(
    ("wire", "response", "expected"),
    [
        ("openai", OPENAI_O3_MINI, Usage.of(input_tokens=2006, cached_input_tokens=1920,
                                            output_tokens=300, reasoning_tokens=192)),
        ("anthropic", ANTHROPIC_CACHED, Usage.of(input_tokens=4117, cached_input_tokens=3072,
                                                 cache_write_tokens=1024, output_tokens=393)),
        ("gemini", GEMINI_CACHED_THINKING, Usage.of(input_tokens=12040,
                                                    cached_input_tokens=11880,
                                                    output_tokens=1552, reasoning_tokens=1242)),
    ],
)
def test_read_response_usage_finds_the_usage_of_each_wire(
    wire: str, response: dict[str, Any], expected: Usage
) -> None:
    assert read_response_usage(wire, response).usage == expected


def test_read_response_usage_without_usage_and_unknown_wire() -> None:
    assert read_response_usage("openai", {"choices": []}) == UsageReading()
    assert read_response_usage("gemini", "not an object") == UsageReading()
    with pytest.raises(ValueError, match="unknown wire format 'soap'"):
        read_response_usage("soap", {})


# --- missing and malformed ---------------------------------------------------------------------

@pytest.mark.parametrize("read", [read_openai_usage, read_anthropic_usage, read_gemini_usage])
def test_missing_usage_is_none_without_a_problem(read: Any) -> None:
    reading = read(None)
    assert reading == UsageReading(None, None, None)
    assert not reading.malformed


@pytest.mark.parametrize(
    ("read", "usage", "problem"),
    [
        (read_openai_usage, {"prompt_tokens": -1, "completion_tokens": 5},
         "usage.prompt_tokens: negative (-1)"),
        (read_openai_usage, {"prompt_tokens": 10.0, "completion_tokens": 5},
         "usage.prompt_tokens: expected a whole number, got 10.0"),
        (read_openai_usage, {"prompt_tokens": "10", "completion_tokens": 5},
         "usage.prompt_tokens: expected a whole number, got '10'"),
        (read_openai_usage, {"prompt_tokens": True, "completion_tokens": 5},
         "usage.prompt_tokens: expected a whole number, got True"),
        (read_openai_usage, {"completion_tokens": 5}, "usage.prompt_tokens: missing"),
        (read_openai_usage, {"prompt_tokens": 10, "completion_tokens": -5},
         "usage.completion_tokens: negative (-5)"),
        (read_openai_usage, {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}},
         "usage: 11 cached tokens but only 10 prompt tokens"),
        (read_openai_usage, {"prompt_tokens": 10, "prompt_tokens_details": "none"},
         "usage.prompt_tokens_details: expected an object, got 'none'"),
        (read_openai_usage, {"prompt_tokens": 10,
                             "completion_tokens_details": {"reasoning_tokens": 1.5}},
         "usage.completion_tokens_details.reasoning_tokens: expected a whole number, got 1.5"),
        (read_openai_usage, {"prompt_tokens": 10, "prompt_cache_hit_tokens": 12},
         "usage: 12 cached tokens but only 10 prompt tokens"),
        (read_openai_usage, [1, 2], "usage: expected an object, got [1, 2]"),
        (read_anthropic_usage, {"input_tokens": 5, "output_tokens": 3,
                                "cache_read_input_tokens": -2},
         "usage.cache_read_input_tokens: negative (-2)"),
        (read_anthropic_usage, {"input_tokens": 5}, "usage.output_tokens: missing"),
        (read_anthropic_usage, {"output_tokens": 5, "input_tokens": None},
         "usage.input_tokens: missing"),
        (read_gemini_usage, {"candidatesTokenCount": 5}, "usageMetadata.promptTokenCount: missing"),
        (read_gemini_usage, {"promptTokenCount": 5, "cachedContentTokenCount": 6},
         "usageMetadata: 6 cached tokens but only 5 prompt tokens"),
        (read_gemini_usage, {"promptTokenCount": 5, "thoughtsTokenCount": -3},
         "usageMetadata.thoughtsTokenCount: negative (-3)"),
        (read_gemini_usage, "12", "usageMetadata: expected an object, got '12'"),
    ],
    ids=lambda value: getattr(value, "__name__", repr(value)),  # no addresses, for xdist
)
def test_malformed_usage_is_none_with_the_reason(read: Any, usage: object, problem: str) -> None:
    reading = read(usage)
    assert reading.usage is None
    assert reading.problem == problem
    assert reading.malformed


def test_counts_beyond_the_ledger_bound_are_malformed() -> None:
    reading = read_openai_usage({"prompt_tokens": 10**15, "completion_tokens": 1})
    assert reading.usage is None
    assert reading.problem is not None
    assert "must be below 1,000,000,000,000,000" in reading.problem


# --- upstream cost (OpenRouter) ----------------------------------------------------------------

def test_openrouter_cost_is_exact() -> None:
    cost = upstream_cost(OPENROUTER["usage"])
    assert cost == D("0.0001215")
    assert str(cost) == "0.0001215"
    assert cost != D(0.0001215)  # what Decimal(float) would have given: the binary expansion
    assert openai_usage(OPENROUTER["usage"]) == Usage.of(input_tokens=194, output_tokens=2)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"cost": 0.95}, D("0.95")),
        ({"cost": 1e-05}, D("0.00001")),
        ({"cost": 0.1}, D("0.1")),
        ({"cost": 0}, D(0)),
        ({"cost": 3}, D(3)),
        ({"cost": "0.000123456789"}, D("0.000123456789")),
        ({"cost": D("0.5")}, D("0.5")),
        ({"cost": None}, None),
        ({}, None),
        ({"cost": -0.01}, None),
        ({"cost": True}, None),
        ({"cost": "abc"}, None),
        ({"cost": "NaN"}, None),
        ({"cost": float("inf")}, None),
        ({"cost": [0.1]}, None),
        (None, None),
        ("0.1", None),
    ],
    ids=repr,
)
def test_upstream_cost_values(usage: object, expected: Decimal | None) -> None:
    assert upstream_cost(usage) == expected


@settings(deadline=None, max_examples=500)
@given(st.integers(0, 10**15 - 1), st.integers(-20, 2))
def test_cost_text_of_up_to_15_digits_survives_orjson(mantissa: int, exponent: int) -> None:
    written = D(mantissa).scaleb(exponent)
    parsed = orjson.loads(b'{"cost": ' + str(written).encode() + b"}")
    assert upstream_cost(parsed) == written


def test_openai_usage_object_shape() -> None:
    usage = Usage.of(input_tokens=12040, cached_input_tokens=11880, cache_write_tokens=100,
                     output_tokens=1552, reasoning_tokens=1242)
    assert openai_usage_object(usage) == {
        "prompt_tokens": 12040, "completion_tokens": 1552, "total_tokens": 13592,
        "prompt_tokens_details": {"cached_tokens": 11880},
        "completion_tokens_details": {"reasoning_tokens": 1242},
    }
    # And it reads back as the same canonical usage (less the cache writes OpenAI cannot say).
    assert openai_usage(openai_usage_object(usage)) == Usage.of(
        input_tokens=12040, cached_input_tokens=11880, output_tokens=1552, reasoning_tokens=1242)


def test_a_responses_api_body_is_read_with_its_own_usage_shape() -> None:
    body = {"object": "response", "usage": {
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
        "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 15}}}
    assert read_response_usage("openai", body).usage == Usage.of(
        input_tokens=100, cached_input_tokens=60, output_tokens=20, reasoning_tokens=15)
    wrong = {"object": "response", "usage": {"input_tokens": 5, "output_tokens": 2,
                                             "input_tokens_details": {"cached_tokens": 9}}}
    reading = read_response_usage("openai", wrong)
    assert reading.usage is None and "cached" in (reading.problem or "")
    more = {"object": "response", "usage": {"input_tokens": 5, "output_tokens": 2,
                                            "output_tokens_details": {"reasoning_tokens": 3}}}
    assert "reasoning" in (read_response_usage("openai", more).problem or "")
    assert read_response_usage("openai", {"object": "response", "usage": None}).usage is None


def test_moonshots_top_level_cached_tokens_are_cached_input() -> None:
    # moonshot-v1's explicit context cache; Kimi K2 uses prompt_tokens_details like OpenAI.
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
             "cached_tokens": 800}
    assert read_openai_usage(usage).usage == Usage.of(input_tokens=1000, cached_input_tokens=800,
                                                      output_tokens=10)
    nested = {"prompt_tokens": 1000, "completion_tokens": 10,
              "prompt_tokens_details": {"cached_tokens": 300}}
    assert read_openai_usage(nested).usage == Usage.of(input_tokens=1000,
                                                       cached_input_tokens=300, output_tokens=10)
