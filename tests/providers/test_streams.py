"""meterline.providers.streams: usage, text and cost of streamed responses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.usage import Meter, Usage
from meterline.providers.sse import SSEParser, json_data
from meterline.providers.streams import (
    AnthropicStream,
    BillableUsage,
    GeminiStream,
    OpenAIStream,
    ResponsesStream,
    StreamAccumulator,
    is_usage_only_chunk,
    stream_accumulator,
)


def chunks(text: bytes) -> list[dict[str, Any]]:
    """Parse a raw SSE stream the way the gateway does: SSE events -> JSON objects."""
    parser = SSEParser()
    events = parser.feed(text) + parser.finish()
    return [data for event in events if (data := json_data(event)) is not None]


def fed(accumulator: StreamAccumulator, events: list[dict[str, Any]]) -> StreamAccumulator:
    for event in events:
        accumulator.feed(event)
    return accumulator


# --- OpenAI ------------------------------------------------------------------------------------

OPENAI_HEAD = (b'"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
               b'"model":"gpt-4o-mini"')
OPENAI_CONTENT = (
    b'data: {' + OPENAI_HEAD + b',"choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {' + OPENAI_HEAD + b',"choices":[{"index":0,"delta":{"content":"Hello"},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {' + OPENAI_HEAD + b',"choices":[{"index":0,"delta":{"content":" there!"},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {' + OPENAI_HEAD + b',"choices":[{"index":0,"delta":{},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":null}\n\n'
)
OPENAI_USAGE_CHUNK = (
    b'data: {' + OPENAI_HEAD + b',"choices":[],"usage":{"prompt_tokens":19,'
    b'"completion_tokens":3,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":0,'
    b'"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}\n\n'
)
OPENAI_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def test_openai_stream_with_the_usage_chunk() -> None:
    events = chunks(OPENAI_CONTENT + OPENAI_USAGE_CHUNK + b"data: [DONE]\n\n")
    assert len(events) == 5
    stream = fed(OpenAIStream(), events)
    assert stream.usage() == Usage.of(input_tokens=19, output_tokens=3)
    assert stream.text() == "Hello there!"
    assert stream.final
    assert stream.upstream_cost() is None
    assert stream.error is None
    assert stream.billable_usage(OPENAI_REQUEST) == BillableUsage(
        Usage.of(input_tokens=19, output_tokens=3), False, None)
    assert [is_usage_only_chunk(e) for e in events] == [False, False, False, False, True]


def test_openai_stream_without_the_usage_chunk_is_estimated() -> None:
    stream = fed(OpenAIStream(), chunks(OPENAI_CONTENT + b"data: [DONE]\n\n"))
    assert stream.usage() is None
    assert stream.usage_reading().problem is None
    assert not stream.final
    assert stream.text() == "Hello there!"
    # prompt: 4 (message overhead) + ceil(len("Say hello") / 4) = 7; output: ceil(12 / 4) = 3
    assert stream.billable_usage(OPENAI_REQUEST) == BillableUsage(
        Usage.of(input_tokens=7, output_tokens=3), True, None)


def test_openrouter_stream_cost_and_reasoning_text() -> None:
    stream = fed(OpenAIStream(), chunks(
        b": OPENROUTER PROCESSING\n\n"
        b'data: {"id":"gen-1","choices":[{"index":0,"delta":{"role":"assistant","content":"",'
        b'"reasoning":"Think."},"finish_reason":null}]}\n\n'
        b'data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":"Done."},'
        b'"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"gen-1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,'
        b'"total_tokens":21,"cost":0.0000123,"completion_tokens_details":'
        b'{"reasoning_tokens":4}}}\n\n'
        b"data: [DONE]\n\n"))
    assert stream.upstream_cost() == Decimal("0.0000123")
    assert stream.usage() == Usage.of(input_tokens=12, output_tokens=9, reasoning_tokens=4)
    assert stream.text() == "Think.Done."


def test_deepseek_reasoning_content_counts_once_and_tool_arguments_count() -> None:
    stream = fed(OpenAIStream(), [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "ab", "reasoning": "ab"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '"Paris"}'}}]}}]},
    ])
    assert stream.text() == 'abget_weather{"city":"Paris"}'


def test_usage_on_the_finishing_chunk_is_final_and_the_last_usage_wins() -> None:
    stream = OpenAIStream()
    stream.feed({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 1}})
    assert stream.usage() == Usage.of(input_tokens=5, output_tokens=1)
    assert not stream.final  # a running total, not the final one
    stream.feed({"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    assert stream.usage() == Usage.of(input_tokens=5, output_tokens=2)  # replaced, not 3
    assert stream.final


def test_openai_error_inside_the_stream() -> None:
    stream = fed(OpenAIStream(), [{"error": {"message": "The server had an error",
                                             "type": "server_error"}}])
    assert stream.error == "The server had an error"


def test_is_usage_only_chunk() -> None:
    assert is_usage_only_chunk({"choices": [], "usage": {"prompt_tokens": 1}})
    assert not is_usage_only_chunk({"choices": [], "usage": None})
    assert not is_usage_only_chunk({"choices": [{"index": 0, "delta": {}}],
                                    "usage": {"prompt_tokens": 1}})


def test_malformed_final_usage_is_estimated_with_the_problem() -> None:
    stream = fed(OpenAIStream(), [
        {"choices": [{"index": 0, "delta": {"content": "12345678"}}]},
        {"choices": [], "usage": {"prompt_tokens": -4, "completion_tokens": 2}},
    ])
    assert stream.usage() is None
    assert stream.billable_usage(OPENAI_REQUEST) == BillableUsage(
        Usage.of(input_tokens=7, output_tokens=2), True, "usage.prompt_tokens: negative (-4)")


# --- Anthropic ---------------------------------------------------------------------------------

ANTHROPIC_START = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U",'
    b'"type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,'
    b'"cache_creation_input_tokens":40,"cache_read_input_tokens":100,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking",'
    b'"thinking":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
    b'"thinking":"Greet."}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
    b'"text":"Hello, this is a longer answer"}}\n\n'
)
ANTHROPIC_END = (
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":10}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
    b'"text":"!"}}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":25}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)
ANTHROPIC_REQUEST = {"model": "claude-sonnet-4-20250514", "max_tokens": 100,
                     "messages": [{"role": "user", "content": "Hi"}]}


def test_anthropic_cumulative_output_takes_the_last_value() -> None:
    stream = fed(AnthropicStream(), chunks(ANTHROPIC_START + ANTHROPIC_END))
    # message_delta said 10 and then 25: cumulative, so 25 — never 35 (or 36 with the 1).
    assert stream.usage() == Usage.of(input_tokens=25 + 40 + 100, cached_input_tokens=100,
                                      cache_write_tokens=40, output_tokens=25)
    assert stream.final
    assert stream.text() == "Greet.Hello, this is a longer answer!"
    assert stream.billable_usage(ANTHROPIC_REQUEST).estimated is False
    assert stream.upstream_cost() is None


def test_anthropic_interrupted_keeps_reported_input_and_estimates_output() -> None:
    stream = fed(AnthropicStream(), chunks(ANTHROPIC_START))
    assert stream.usage() == Usage.of(input_tokens=165, cached_input_tokens=100,
                                      cache_write_tokens=40, output_tokens=1)
    assert not stream.final
    # text "Greet.Hello, this is a longer answer" is 36 bytes -> 9 tokens, more than the 1.
    assert stream.billable_usage(ANTHROPIC_REQUEST) == BillableUsage(
        Usage.of(input_tokens=165, cached_input_tokens=100, cache_write_tokens=40,
                 output_tokens=9), True, None)


def test_anthropic_message_delta_may_restate_input_counts() -> None:
    stream = fed(AnthropicStream(), [
        {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1,
                                                        "cache_read_input_tokens": None}}},
        {"type": "message_delta", "usage": {"input_tokens": 472, "cache_read_input_tokens": 8,
                                            "output_tokens": 30,
                                            "server_tool_use": {"web_search_requests": 1}}},
    ])
    # The web search Anthropic ran for the model is a use of its server tool, billed apart.
    assert stream.usage() == Usage.of(input_tokens=480, cached_input_tokens=8, output_tokens=30,
                                      web_search_calls=1)


def test_anthropic_error_event_and_no_usage() -> None:
    stream = fed(AnthropicStream(), chunks(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'))
    assert stream.error == "Overloaded"
    assert stream.usage() is None
    assert stream.usage_reading().problem is None


def test_anthropic_usage_that_is_not_an_object_is_a_problem() -> None:
    stream = fed(AnthropicStream(), [{"type": "message_delta", "usage": 7}])
    assert stream.usage() is None
    assert stream.usage_reading().problem == "usage: expected an object, got int"


# --- Gemini ------------------------------------------------------------------------------------

GEMINI_STREAM = [
    {"candidates": [{"content": {"parts": [{"text": "Thinking about it", "thought": True}],
                                 "role": "model"}, "index": 0}],
     "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 108, "thoughtsTokenCount": 100},
     "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"parts": [{"text": "Why did the "}], "role": "model"},
                     "index": 0}],
     "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4,
                       "totalTokenCount": 112, "thoughtsTokenCount": 100},
     "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"parts": [{"text": "chicken cross?"}], "role": "model"},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 9,
                       "totalTokenCount": 117, "cachedContentTokenCount": 0,
                       "thoughtsTokenCount": 100},
     "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
]


def test_gemini_stream_takes_the_last_usage_metadata() -> None:
    stream = fed(GeminiStream(), GEMINI_STREAM)
    assert stream.usage() == Usage.of(input_tokens=8, output_tokens=109, reasoning_tokens=100)
    assert stream.final
    assert stream.text() == "Thinking about itWhy did the chicken cross?"


def test_gemini_stream_cut_before_the_finish_is_not_final() -> None:
    stream = fed(GeminiStream(), GEMINI_STREAM[:2])
    assert stream.usage() == Usage.of(input_tokens=8, output_tokens=104, reasoning_tokens=100)
    assert not stream.final
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell a joke"}]}]}
    # output: the reported 104 beats the estimate of the 29 bytes of text (8 tokens)
    assert stream.billable_usage(body) == BillableUsage(
        Usage.of(input_tokens=8, output_tokens=104, reasoning_tokens=100), True, None)


def test_gemini_function_call_arguments_are_text() -> None:
    stream = fed(GeminiStream(), [{"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "find", "args": {"q": "x"}}}]}}]}])
    assert stream.text() == 'find{"q":"x"}'


# --- all formats -------------------------------------------------------------------------------

def test_stream_accumulator_by_wire() -> None:
    assert type(stream_accumulator("openai")) is OpenAIStream
    assert type(stream_accumulator("anthropic")) is AnthropicStream
    assert type(stream_accumulator("gemini")) is GeminiStream
    with pytest.raises(ValueError, match="unknown wire format"):
        stream_accumulator("grpc")


def test_text_joins_once_and_keeps_growing() -> None:
    stream = OpenAIStream()
    stream.feed({"choices": [{"delta": {"content": "a"}}]})
    stream.feed({"choices": [{"delta": {"content": "b"}}]})
    assert stream.text() == "ab"
    stream.feed({"choices": [{"delta": {"content": "c"}}]})
    assert stream.text() == "abc"
    assert stream.text() == "abc"


_KEYS = st.sampled_from([
    "choices", "delta", "content", "usage", "prompt_tokens", "completion_tokens", "type",
    "message", "message_start", "message_delta", "text", "candidates", "parts", "usageMetadata",
    "promptTokenCount", "finishReason", "finish_reason", "tool_calls", "function", "arguments",
    "error", "input_tokens", "output_tokens", "functionCall", "args", "reasoning_content",
])
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**16) | st.floats() | st.text(max_size=5)
    | st.sampled_from(["message_start", "message_delta", "content_block_delta", "error"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(["openai", "anthropic", "gemini"]),
       st.lists(st.dictionaries(_KEYS, _json, max_size=5), max_size=5))
def test_accumulators_never_raise_on_odd_chunks(wire: str, events: list[dict[str, Any]]) -> None:
    stream = fed(stream_accumulator(wire), events)
    reading = stream.usage_reading()
    assert reading.usage is None or reading.problem is None
    assert isinstance(stream.text(), str)
    stream.upstream_cost()
    billed = stream.billable_usage({"messages": events})
    assert billed.usage == reading.usage or billed.estimated
    orjson.dumps(billed.usage.to_json())


def test_a_responses_stream_bills_its_terminal_usage_else_the_text_seen() -> None:
    stream = ResponsesStream()
    stream.feed({"type": "response.created", "response": {"usage": None}})
    stream.feed({"type": "response.output_text.delta", "delta": "hello there"})
    stream.feed({"type": "response.function_call_arguments.delta", "delta": '{"a":1}'})
    assert stream.usage() is None and not stream.final and not stream.ended
    assert stream.text() == 'hello there{"a":1}'
    cut = stream.billable_usage({"input": "four words of prompt"})
    assert cut.estimated and cut.usage.get(Meter.OUTPUT_TOKENS) > 0
    stream.feed({"type": "response.completed", "response": {"usage": {
        "input_tokens": 30, "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 4}}}})
    assert stream.final and stream.ended
    assert stream.billable_usage({}) == BillableUsage(
        Usage.of(input_tokens=30, cached_input_tokens=10, output_tokens=12,
                 reasoning_tokens=4), False, None)
    failed = ResponsesStream()
    failed.feed({"type": "response.failed", "response": {
        "usage": None, "error": {"code": "server_error", "message": "it broke"}}})
    assert failed.error == "it broke" and failed.ended
