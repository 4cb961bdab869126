"""meterline.providers.estimate: token estimates when no usage was reported."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.providers.estimate import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    estimate_prompt_tokens,
    estimate_tokens,
)

prop = settings(deadline=None, max_examples=500)
_text = st.text(st.characters(codec="utf-8"))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("Say hello", 3),
        ("héllo", 2),  # 6 UTF-8 bytes
        ("привет", 3),  # 12 UTF-8 bytes
        ("你好世界", 4),  # one token per ideograph, not 12 bytes / 4 = 3
        ("こんにちは", 5),
        ("안녕하세요", 5),
        ("Hello 世界", 2 + 2),  # "Hello " is 6 bytes -> 2, plus two ideographs
        ("你好，世界！", 6),  # full-width punctuation counts like the ideographs
        ("😀", 1),  # 4 bytes
        ("𠀀", 1),  # an ideograph outside the BMP
        ("\ud800", 1),  # a lone surrogate does not raise
    ],
)
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


@prop
@given(_text.filter(bool))
def test_non_empty_text_is_at_least_one_token(text: str) -> None:
    assert estimate_tokens(text) >= 1


@prop
@given(_text, _text)
def test_appending_never_lowers_the_estimate(prefix: str, suffix: str) -> None:
    whole = estimate_tokens(prefix + suffix)
    assert whole >= estimate_tokens(prefix)
    assert whole >= estimate_tokens(suffix)
    # and the rounding costs at most one token per part
    assert whole <= estimate_tokens(prefix) + estimate_tokens(suffix)


@prop
@given(st.sampled_from(["a", "é", "中", "😀", " "]), st.integers(0, 200))
def test_estimate_grows_with_length(char: str, n: int) -> None:
    assert estimate_tokens(char * n) <= estimate_tokens(char * (n + 1))
    assert estimate_tokens(char * (n + 8)) > estimate_tokens(char * n)


# --- prompts -----------------------------------------------------------------------------------

def test_openai_messages_with_strings_and_parts() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},  # 9 bytes -> 3
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},  # 22 -> 6
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "look", "arguments": '{"x":1}'}}]},  # 1 + 2
            {"role": "tool", "tool_call_id": "call_1", "content": "一只猫"},  # 3
        ],
    }
    assert estimate_prompt_tokens(body, "openai") == 4 * MESSAGE_OVERHEAD + 3 + 6 + IMAGE_TOKENS \
        + 1 + 2 + 3


def test_openai_tools_count_as_their_json() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with_tools = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    without = {"messages": [{"role": "user", "content": "hi"}]}
    # '[{"type":"function","function":{"name":"f","parameters":{}}}]' is 61 bytes -> 16
    assert estimate_prompt_tokens(with_tools, "openai") - \
        estimate_prompt_tokens(without, "openai") == 16


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ({"model": "text-embedding-3-small", "input": "The food was delicious"}, 6),
        ({"input": ["abcd", "abcdefgh"]}, 1 + 2),
        ({"input": [1, 2, 3, 4, 5]}, 5),  # token ids count exactly
        ({"input": [[1, 2], [3, 4, 5]]}, 5),
        ({"input": 42}, 0),
    ],
)
def test_openai_embeddings_input(body: dict[str, Any], tokens: int) -> None:
    assert estimate_prompt_tokens(body, "openai") == tokens


def test_anthropic_system_and_messages() -> None:
    body = {
        "model": "claude-sonnet-4-20250514", "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse.",  # 14 -> 4
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},  # 17 -> 5
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},  # 9 -> 3
                {"type": "tool_use", "id": "toolu_1", "name": "weather",  # 7 -> 2
                 "input": {"city": "Paris"}},  # '{"city":"Paris"}' 16 -> 4
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "18C"}]},  # 1
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}},
            ]},
        ],
    }
    assert estimate_prompt_tokens(body, "anthropic") == 4 + 3 * MESSAGE_OVERHEAD + 5 + 3 + 2 \
        + 4 + 1 + IMAGE_TOKENS
    assert estimate_prompt_tokens({"system": "You are terse.", "messages": []}, "anthropic") == 4


def test_gemini_contents_and_system_instruction() -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},  # 17 -> 5
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"},  # 2
                                       {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},  # 2
        ],
    }
    assert estimate_prompt_tokens(body, "gemini") == 5 + 2 * MESSAGE_OVERHEAD + 2 + IMAGE_TOKENS \
        + 2
    snake = {"system_instruction": {"parts": [{"text": "Answer in French."}]}, "contents": []}
    assert estimate_prompt_tokens(snake, "gemini") == 5


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize(
    "body",
    [{}, {"messages": "hello"}, {"messages": [1, None, "x"]}, {"contents": {"parts": 3}},
     {"system": 5, "messages": [{"content": [None, {"type": "text", "text": 5}]}]}],
    ids=repr,
)
def test_odd_bodies_estimate_without_raising(wire: str, body: dict[str, Any]) -> None:
    assert estimate_prompt_tokens(body, wire) >= 0


def test_longer_prompts_estimate_more() -> None:
    short = {"messages": [{"role": "user", "content": "hi"}]}
    long = {"messages": [{"role": "user", "content": "hi " * 100}]}
    assert estimate_prompt_tokens(long, "openai") > estimate_prompt_tokens(short, "openai") > 0


def test_unknown_wire_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown wire format 'bedrock'"):
        estimate_prompt_tokens({}, "bedrock")


def test_a_responses_api_request_counts_instructions_and_input_items() -> None:
    text = estimate_prompt_tokens({"input": "one two three four"}, "openai")
    assert text == estimate_tokens("one two three four")
    items = {"instructions": "be brief", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "one two three four"},
                                     {"type": "input_image", "image_url": "data:..."}]},
        {"type": "function_call_output", "call_id": "c1", "output": "42"}]}
    assert estimate_prompt_tokens(items, "openai") == (
        estimate_tokens("be brief") + 2 * MESSAGE_OVERHEAD + text + IMAGE_TOKENS
        + estimate_tokens("42"))
