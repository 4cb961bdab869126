"""meterline.providers.gemini: OpenAI chat format <-> Gemini generateContent."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.domain.usage import Usage
from meterline.errors import InvalidInput
from meterline.providers.gemini import (
    finish_reason,
    gemini_chunk_to_openai,
    gemini_to_openai_chat,
    openai_chat_to_gemini,
)
from meterline.providers.streams import GeminiStream, OpenAIStream
from meterline.providers.usage import gemini_usage, openai_usage

# --- requests ----------------------------------------------------------------------------------

def test_request_translation() -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are a poet."},
            {"role": "developer", "content": [{"type": "text", "text": "Rhyme."}]},
            {"role": "user", "content": "Write about the sea."},
            {"role": "assistant", "content": "Waves roll."},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]},
        ],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "alice",
    }
    model, gemini = openai_chat_to_gemini(body)
    assert model == "gemini-2.5-flash"
    assert gemini == {
        "contents": [
            {"role": "user", "parts": [{"text": "Write about the sea."}]},
            {"role": "model", "parts": [{"text": "Waves roll."}]},
            {"role": "user", "parts": [
                {"text": "And this picture?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "You are a poet."}, {"text": "Rhyme."}]},
        "generationConfig": {"temperature": 0.7, "topP": 0.9, "maxOutputTokens": 256,
                             "stopSequences": ["END"]},
    }


def test_request_options_and_merging() -> None:
    model, gemini = openai_chat_to_gemini({
        "model": "models/gemini-2.0-flash",
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                     {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}],
        "max_tokens": 10, "max_completion_tokens": 20, "stop": ["x", "y"], "n": 2, "seed": 7,
        "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "response_format": {"type": "json_object"},
    })
    assert model == "gemini-2.0-flash"
    # consecutive user turns merge; the empty assistant turn is dropped, so all three merge
    assert gemini["contents"] == [{"role": "user",
                                   "parts": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}]
    assert "systemInstruction" not in gemini
    assert gemini["generationConfig"] == {
        "presencePenalty": 0.5, "frequencyPenalty": -0.5, "candidateCount": 2, "seed": 7,
        "maxOutputTokens": 20, "stopSequences": ["x", "y"],
        "responseMimeType": "application/json",
    }


def test_json_schema_response_format_and_no_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    _, gemini = openai_chat_to_gemini({
        "model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "A", "schema": schema}},
    })
    assert gemini["generationConfig"] == {"responseMimeType": "application/json",
                                          "responseJsonSchema": schema}
    _, plain = openai_chat_to_gemini({"model": "g", "messages": [{"role": "user",
                                                                  "content": "x"}]})
    assert plain == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "g", "messages": []}, "messages"),
        ({"model": "g", "messages": [{"role": "system", "content": "only"}]}, "messages"),
        ({"model": "g", "messages": [{"role": "user", "content": "x"}],
          "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"model": "g", "messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
         "messages[0].role"),
        ({"model": "g", "messages": [{"role": "assistant", "content": None,
                                      "tool_calls": [{"id": "1"}]}]}, "messages[0]"),
        ({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]},
         "messages[0].content[0]"),
        ({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]}]},
         "messages[0].content[0]"),
        ({"model": "g", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "g", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
         "temperature"),
        ({"model": "g", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5},
         "max_tokens"),
        ({"model": "g", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        ({"model": "g", "messages": [{"role": "user", "content": "x"}],
          "response_format": {"type": "xml"}}, "response_format"),
    ],
    ids=repr,
)
def test_untranslatable_requests_are_refused(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        openai_chat_to_gemini(body)
    assert info.value.field == field


# --- responses ---------------------------------------------------------------------------------

GEMINI_RESPONSE = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "The user wants a haiku.", "thought": True},
            {"text": "Old pond, "}, {"text": "a frog jumps."},
        ]},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 4100, "candidatesTokenCount": 12,
                      "totalTokenCount": 4312, "cachedContentTokenCount": 4000,
                      "thoughtsTokenCount": 200},
    "modelVersion": "gemini-2.5-flash", "responseId": "abc",
}


def test_response_translation() -> None:
    assert gemini_to_openai_chat(GEMINI_RESPONSE, "gemini/gemini-2.5-flash", "req_1",
                                 1750000000) == {
        "id": "req_1", "object": "chat.completion", "created": 1750000000,
        "model": "gemini/gemini-2.5-flash",
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": "Old pond, a frog jumps.",
                                             "reasoning_content": "The user wants a haiku."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4100, "completion_tokens": 212, "total_tokens": 4312,
                  "prompt_tokens_details": {"cached_tokens": 4000},
                  "completion_tokens_details": {"reasoning_tokens": 200}},
    }


def test_translated_usage_reads_back_as_the_same_canonical_usage() -> None:
    translated = gemini_to_openai_chat(GEMINI_RESPONSE, "m", "r", 0)
    expected = Usage.of(input_tokens=4100, cached_input_tokens=4000, output_tokens=212,
                        reasoning_tokens=200)
    assert gemini_usage(GEMINI_RESPONSE["usageMetadata"]) == expected
    assert openai_usage(translated["usage"]) == expected


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
     ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
     ("OTHER", "stop"), ("FINISH_REASON_UNSPECIFIED", None), (None, None), ("", None)],
)
def test_finish_reasons(gemini: str | None, openai: str | None) -> None:
    assert finish_reason(gemini) == openai


def test_max_tokens_response_and_blocked_prompt() -> None:
    cut = gemini_to_openai_chat({"candidates": [{"content": {"parts": [{"text": "Once"}]},
                                                 "finishReason": "MAX_TOKENS"}]}, "m", "r", 1)
    assert cut["choices"][0]["finish_reason"] == "length"
    assert "usage" not in cut
    blocked = gemini_to_openai_chat({
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }, "m", "r", 1)
    assert blocked["choices"] == [{"index": 0, "message": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": "content_filter"}]
    assert blocked["usage"]["prompt_tokens"] == 7
    assert blocked["usage"]["completion_tokens"] == 0


# --- stream chunks -----------------------------------------------------------------------------

GEMINI_CHUNKS = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Weighing", "thought": True}]},
                     "index": 0}],
     "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 56, "thoughtsTokenCount": 50}},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0}],
     "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 1, "totalTokenCount": 57,
                       "thoughtsTokenCount": 50}},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": " world"}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 59,
                       "thoughtsTokenCount": 50}},
]
HEAD = {"id": "req_9", "object": "chat.completion.chunk", "created": 17, "model": "gm"}


def translate(include_usage: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in GEMINI_CHUNKS:
        out += gemini_chunk_to_openai(chunk, "gm", "req_9", 17, include_usage)
    return out


def test_stream_chunks_with_usage_chunk_last() -> None:
    assert translate(include_usage=True) == [
        {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                    "reasoning_content": "Weighing"},
                              "logprobs": None, "finish_reason": None}], "usage": None},
        {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"},
                              "logprobs": None, "finish_reason": None}], "usage": None},
        {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": " world"},
                              "logprobs": None, "finish_reason": "stop"}], "usage": None},
        {**HEAD, "choices": [], "usage": {
            "prompt_tokens": 6, "completion_tokens": 53, "total_tokens": 59,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 50}}},
    ]


def test_stream_chunks_without_usage() -> None:
    out = translate(include_usage=False)
    assert len(out) == 3
    assert all("usage" not in chunk and chunk["choices"] for chunk in out)
    assert [c["choices"][0]["delta"].get("content") for c in out] == [None, "Hello", " world"]


def test_translated_stream_meters_like_the_original() -> None:
    original = GeminiStream()
    for chunk in GEMINI_CHUNKS:
        original.feed(chunk)
    translated = OpenAIStream()
    for chunk in translate(include_usage=True):
        translated.feed(chunk)
    assert translated.usage() == original.usage() == Usage.of(
        input_tokens=6, output_tokens=53, reasoning_tokens=50)
    assert translated.text() == original.text() == "WeighingHello world"
    assert translated.final and original.final


def test_stream_edge_chunks() -> None:
    # nothing to say: no chunk at all
    assert gemini_chunk_to_openai({"candidates": [{"content": {"parts": []}}]},
                                  "gm", "req_9", 17, True) == []
    # a blocked prompt ends the stream with content_filter, then the usage
    blocked = gemini_chunk_to_openai(
        {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
         "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}},
        "gm", "req_9", 17, True)
    assert [c["choices"] for c in blocked] == [
        [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
          "finish_reason": "content_filter"}],
        [],
    ]
    assert blocked[1]["usage"]["prompt_tokens"] == 5
    # usage alone after the finish: the usage chunk
    assert gemini_chunk_to_openai({"usageMetadata": {"promptTokenCount": 5,
                                                     "candidatesTokenCount": 2}},
                                  "gm", "req_9", 17, True) == [
        {**HEAD, "choices": [], "usage": {
            "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}}}]
