"""The OpenAI-compatible Chinese providers' usage fields (issue 16): each read as its
documentation says, whole and streamed, and a per-call cost read wherever a provider puts it."""

from __future__ import annotations

from decimal import Decimal

import orjson

from meterline.domain.usage import Usage
from meterline.providers.streams import OpenAIStream
from meterline.providers.usage import read_openai_usage, upstream_cost_at, value_at


def test_dashscope_explicit_cache_writes_are_cache_write_tokens() -> None:
    usage = {"prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
             "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_input_tokens": 1500,
                                       "cache_type": "ephemeral",
                                       "cache_creation": {"ephemeral_5m_input_tokens": 1500}}}
    assert read_openai_usage(usage).usage == Usage.of(
        input_tokens=3019, cache_write_tokens=1500, output_tokens=104)


def test_cache_reads_and_writes_beyond_the_prompt_are_refused() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 1,
             "prompt_tokens_details": {"cached_tokens": 6, "cache_creation_input_tokens": 5}}
    reading = read_openai_usage(usage)
    assert reading.usage is None
    assert reading.problem == ("usage: 6 cached and 5 cache-write tokens but only 10 prompt "
                               "tokens")


def test_deepseek_hit_miss_and_reasoning() -> None:
    usage = orjson.loads(b'{"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80,'
                         b' "prompt_tokens_details": {"cached_tokens": 40},'
                         b' "prompt_cache_hit_tokens": 40, "prompt_cache_miss_tokens": 10,'
                         b' "completion_tokens_details": {"reasoning_tokens": 12}}')
    assert read_openai_usage(usage).usage == Usage.of(
        input_tokens=50, cached_input_tokens=40, output_tokens=30, reasoning_tokens=12)


def test_minimax_characters_field_is_not_usage() -> None:
    usage = {"total_tokens": 249, "total_characters": 0, "prompt_tokens": 26,
             "completion_tokens": 223, "completion_tokens_details": {"reasoning_tokens": 214}}
    assert read_openai_usage(usage).usage == Usage.of(
        input_tokens=26, output_tokens=223, reasoning_tokens=214)


def test_moonshot_stream_usage_inside_the_finishing_choice_is_final() -> None:
    stream = OpenAIStream()
    stream.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi there"},
                                         "finish_reason": None}]})
    stream.feed({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                         "usage": {"prompt_tokens": 19, "completion_tokens": 2,
                                                   "total_tokens": 21, "cached_tokens": 7}}]})
    billable = stream.billable_usage({"messages": []})
    assert billable.usage == Usage.of(input_tokens=19, cached_input_tokens=7, output_tokens=2)
    assert billable.estimated is False


def test_zhipu_usage_on_the_finishing_chunk_is_final() -> None:
    stream = OpenAIStream()
    stream.feed({"id": "z", "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]})
    stream.feed({"id": "z", "choices": [{"index": 0, "finish_reason": "stop", "delta": {}}],
                 "usage": {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13,
                           "prompt_tokens_details": {"cached_tokens": 4}}})
    assert stream.final
    assert stream.usage() == Usage.of(input_tokens=8, cached_input_tokens=4, output_tokens=5)


def test_a_cost_is_read_at_any_declared_path() -> None:
    perplexity = orjson.loads(b'{"usage": {"prompt_tokens": 5, "cost": {"input_tokens_cost":'
                              b' 0.00001, "request_cost": 0.005, "total_cost": 0.00512}}}')
    assert upstream_cost_at(perplexity, ("usage", "cost", "total_cost")) == Decimal("0.00512")
    # The default path finds an object there, not a number: no cost.
    assert upstream_cost_at(perplexity) is None
    assert upstream_cost_at({"usage": {"cost": 0.0001215}}) == Decimal("0.0001215")
    assert upstream_cost_at({"billing": {"cost": "12.5"}}, ("billing", "cost")) == Decimal("12.5")
    assert upstream_cost_at({"usage": {"cost": 1}}, ()) is None
    assert upstream_cost_at({"usage": {"cost": -1}}) is None
    assert value_at({"a": [1]}, ("a", "b")) is None
