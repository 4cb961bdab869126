"""Token estimates for calls whose upstream never reported usage (SPEC §3: a streamed call the
client abandons is billed for what was produced; where no usage came, quantities are estimated and
the record says ``estimated``).

The heuristic, in one place so it can be explained to a customer:

* Text in alphabetic scripts and code runs at about 4 UTF-8 bytes per token in the BPE
  tokenizers of OpenAI, Anthropic, Gemini and the Chinese providers, so those characters count
  ``ceil(bytes / 4)``. Counting bytes rather than characters charges accented and Cyrillic text
  (2 bytes each) a little more, as the tokenizers do.
* A CJK ideograph, kana or hangul syllable is about one token (0.6–1.5 depending on the
  tokenizer), so each counts 1 — where UTF-8's 3 bytes would have given only 0.75.
* A chat message adds :data:`MESSAGE_OVERHEAD` tokens for its role and separators, an image
  :data:`IMAGE_TOKENS` (OpenAI's cost of one 1024×1024 high-detail image), tool definitions and
  tool-call arguments their JSON text. Audio and document parts are not estimated.

The estimate never decreases as text is appended (each part only adds), and any non-empty text
estimates at least one token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from meterline.providers.wire import Wire, wire_of

BYTES_PER_TOKEN: Final = 4
MESSAGE_OVERHEAD: Final = 4
IMAGE_TOKENS: Final = 765

#: CJK symbols and punctuation, kana, bopomofo, CJK ideographs (extension A, the main block,
#: compatibility), hangul syllables, full-width forms, and the supplementary ideograph planes.
_CJK: Final = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (see the module docstring); 0 for the empty string."""
    if text.isascii():  # the common case, without a regex pass
        return -(-len(text) // BYTES_PER_TOKEN)
    rest = _CJK.sub("", text)
    cjk = len(text) - len(rest)
    # surrogatepass: a lone surrogate from a broken client still has a size, not an exception.
    size = len(rest.encode("utf-8", errors="surrogatepass"))
    return cjk + -(-size // BYTES_PER_TOKEN)


def _json_tokens(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return estimate_tokens(value)
    try:
        return estimate_tokens(orjson.dumps(value).decode("utf-8"))
    except (TypeError, orjson.JSONEncodeError):
        return 0


def _dicts(value: object) -> Iterator[Mapping[str, Any]]:
    """The objects in a JSON list; request bodies are client input, so anything else is skipped."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield item


# --- OpenAI ------------------------------------------------------------------------------------

def _openai_content(content: object) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    tokens = 0
    for part in _dicts(content):
        if isinstance(part.get("text"), str):
            tokens += estimate_tokens(part["text"])
        elif part.get("type") in ("image_url", "input_image"):
            tokens += IMAGE_TOKENS
    return tokens


def _openai_input(value: object) -> int:
    """Embeddings ``input`` (and legacy completions ``prompt``): a string, strings, or token ids
    — which are counted exactly."""
    if isinstance(value, str):
        return estimate_tokens(value)
    if not isinstance(value, list):
        return 0
    if all(isinstance(item, int) for item in value):
        return len(value)
    tokens = 0
    for item in value:  # one level only: a batch of strings or of token-id lists
        if isinstance(item, str):
            tokens += estimate_tokens(item)
        elif isinstance(item, list) and all(isinstance(i, int) for i in item):
            tokens += len(item)
    return tokens


def _openai(body: Mapping[str, Any]) -> int:
    tokens = _json_tokens(body.get("tools")) + _json_tokens(body.get("functions"))
    for message in _dicts(body.get("messages")):
        tokens += MESSAGE_OVERHEAD + _openai_content(message.get("content"))
        for call in _dicts(message.get("tool_calls")):
            function = call.get("function")
            if isinstance(function, Mapping):
                tokens += _json_tokens(function.get("name"))
                tokens += _json_tokens(function.get("arguments"))
    for key in ("input", "prompt"):
        tokens += _openai_input(body.get(key))
    # The Responses API: instructions, and input items (messages, tool calls and outputs).
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        tokens += estimate_tokens(instructions)
    for item in _dicts(body.get("input")):
        tokens += MESSAGE_OVERHEAD + _openai_content(item.get("content"))
        for key in ("arguments", "output"):
            tokens += _json_tokens(item.get(key))
    return tokens


# --- Anthropic ---------------------------------------------------------------------------------

def _anthropic_content(content: object, *, nested: bool = False) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    tokens = 0
    for block in _dicts(content):
        kind = block.get("type")
        if kind == "text":
            tokens += _json_tokens(block.get("text"))
        elif kind == "thinking":
            tokens += _json_tokens(block.get("thinking"))
        elif kind == "image":
            tokens += IMAGE_TOKENS
        elif kind == "tool_use":
            tokens += _json_tokens(block.get("name")) + _json_tokens(block.get("input"))
        elif kind == "tool_result" and not nested:  # results hold blocks, never results
            tokens += _anthropic_content(block.get("content"), nested=True)
    return tokens


def _anthropic(body: Mapping[str, Any]) -> int:
    tokens = _anthropic_content(body.get("system")) + _json_tokens(body.get("tools"))
    for message in _dicts(body.get("messages")):
        tokens += MESSAGE_OVERHEAD + _anthropic_content(message.get("content"))
    return tokens


# --- Gemini ------------------------------------------------------------------------------------

def _gemini_parts(content: object) -> int:
    if not isinstance(content, Mapping):
        return 0
    tokens = 0
    for part in _dicts(content.get("parts")):
        if isinstance(part.get("text"), str):
            tokens += estimate_tokens(part["text"])
        elif "inlineData" in part or "fileData" in part:
            tokens += IMAGE_TOKENS
        elif "functionCall" in part:
            tokens += _json_tokens(part["functionCall"])
        elif "functionResponse" in part:
            tokens += _json_tokens(part["functionResponse"])
    return tokens


def _gemini(body: Mapping[str, Any]) -> int:
    # The REST API accepts both spellings of the system instruction.
    system = body.get("systemInstruction", body.get("system_instruction"))
    tokens = _gemini_parts(system) + _json_tokens(body.get("tools"))
    for content in _dicts(body.get("contents")):
        tokens += MESSAGE_OVERHEAD + _gemini_parts(content)
    return tokens


def estimate_prompt_tokens(body: Mapping[str, Any], wire: str) -> int:
    """Estimated prompt tokens of a request body in wire format ``wire``; never raises on odd
    bodies (unknown shapes count nothing), only on an unknown ``wire``."""
    match wire_of(wire):
        case Wire.OPENAI:
            return _openai(body)
        case Wire.ANTHROPIC:
            return _anthropic(body)
        case Wire.GEMINI:
            return _gemini(body)
