"""OpenAI chat format <-> Gemini ``generateContent``, so OpenAI SDKs can call a Gemini upstream.

Requests: ``messages`` become ``contents`` (``assistant`` -> ``model``; consecutive messages of
one role merge into one content, as Gemini wants turns to alternate), ``system``/``developer``
messages become ``systemInstruction``, and sampling options become ``generationConfig``. Images
must be ``data:`` URLs (Gemini's ``inlineData``). Tool calling is not translated: a request
with tools, tool calls or tool messages is refused (``InvalidInput``, a 400 for the client)
rather than sent upstream stripped of them, which would answer a different question.

Responses: text parts become ``content``; thought-summary parts (``"thought": true``) become
``reasoning_content``, the field DeepSeek-style clients read. Usage comes from
:func:`~meterline.providers.usage.read_gemini_usage`, so the OpenAI ``usage`` the client sees
and the usage meterline bills are the same numbers.

Streams are translated chunk by chunk without state, so every delta says ``role: assistant``
(OpenAI sends it only in the first; clients accept it on each). Gemini repeats
``usageMetadata`` as a running total on many chunks, so the usage chunk (``choices: []``) is
emitted only for the final one — the chunk with a ``finishReason``, a blocked prompt, or usage
alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from meterline.errors import InvalidInput
from meterline.providers.usage import openai_usage_object, read_gemini_usage

_ROLES: Final = {"user": "user", "assistant": "model"}
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_FINISH: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
#: OpenAI option -> generationConfig field, for the plain numeric ones.
_NUMBERS: Final = {
    "temperature": "temperature",
    "top_p": "topP",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_INTEGERS: Final = {"n": "candidateCount", "seed": "seed"}


def _refuse(message: str, field: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


# --- requests ----------------------------------------------------------------------------------

def _image(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url.startswith("data:"):
        raise _refuse("a Gemini upstream takes images as data: URLs only", where)
    header, comma, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not mime:
        raise _refuse("expected data:<mime type>;base64,<data>", where)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _parts(content: object, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []  # Gemini refuses empty text parts
    if not isinstance(content, list):
        raise _refuse("must be a string or a list of content parts", where)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part, Mapping) and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url" and isinstance(part, Mapping):
            parts.append(_image(part, at))
        else:
            raise _refuse(f"content part of type {kind!r} is not supported for Gemini", at)
    return parts


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for option, name in _NUMBERS.items():
        value = body.get(option)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refuse("must be a number", option)
        config[name] = value
    for option, name in {**_INTEGERS, "max_tokens": "maxOutputTokens",
                         "max_completion_tokens": "maxOutputTokens"}.items():
        value = body.get(option)
        if value is None:
            continue
        if type(value) is not int:
            raise _refuse("must be an integer", option)
        config[name] = value  # max_completion_tokens, the newer name, comes last and wins
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            config["stopSequences"] = list(stop)
    elif stop is not None:
        raise _refuse("must be a string or a list of strings", "stop")
    config.update(_response_format(body.get("response_format")))
    return config


def _response_format(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema" and isinstance(value, Mapping):
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if isinstance(schema, Mapping):
            return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise _refuse("expected type text, json_object, or json_schema with a schema",
                  "response_format")


def openai_chat_to_gemini(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An OpenAI chat/completions body -> (Gemini model id, generateContent body). ``stream``
    and ``stream_options`` choose the endpoint, which is the caller's business."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _refuse("must be a model name", "model")
    for field in ("tools", "functions", "tool_choice", "function_call"):
        if body.get(field) is not None:
            raise _refuse("tool calling is not translated for Gemini upstreams", field)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _refuse("must be a non-empty list", "messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _refuse("must be an object", where)
        role = message.get("role")
        if message.get("tool_calls") or message.get("function_call"):
            raise _refuse("tool calling is not translated for Gemini upstreams", where)
        parts = _parts(message.get("content"), f"{where}.content")
        if role in _SYSTEM_ROLES:
            system.extend(parts)
            continue
        if role not in _ROLES:
            raise _refuse(f"role {role!r} is not supported for Gemini", f"{where}.role")
        if not parts:
            continue
        if contents and contents[-1]["role"] == _ROLES[role]:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": _ROLES[role], "parts": parts})
    if not contents:
        raise _refuse("need at least one user or assistant message with content", "messages")
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return model.removeprefix("models/"), out


# --- responses ---------------------------------------------------------------------------------

def finish_reason(value: object) -> str | None:
    """Gemini finishReason -> OpenAI finish_reason; None while the candidate is unfinished.
    Reasons OpenAI has no name for (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL…) become "stop"."""
    if not isinstance(value, str) or not value or value == "FINISH_REASON_UNSPECIFIED":
        return None
    return _FINISH.get(value, "stop")


def _texts(candidate: Mapping[str, Any]) -> tuple[str, str]:
    """(answer text, thought-summary text) of a candidate."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    answer: list[str] = []
    thought: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            (thought if part.get("thought") is True else answer).append(part["text"])
    return "".join(answer), "".join(thought)


def _candidates(response: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    raw = response.get("candidates")
    found: list[tuple[int, Mapping[str, Any]]] = []
    for i, candidate in enumerate(raw if isinstance(raw, list) else ()):
        if isinstance(candidate, Mapping):
            index = candidate.get("index")
            found.append((index if type(index) is int else i, candidate))
    return found


def _blocked(response: Mapping[str, Any]) -> bool:
    feedback = response.get("promptFeedback")
    return isinstance(feedback, Mapping) and bool(feedback.get("blockReason"))


def _usage(response: Mapping[str, Any]) -> dict[str, Any] | None:
    usage = read_gemini_usage(response.get("usageMetadata")).usage
    return openai_usage_object(usage) if usage is not None else None


def gemini_to_openai_chat(response: Mapping[str, Any], model: str, request_id: str,
                          created: int) -> dict[str, Any]:
    """A generateContent response -> an OpenAI ``chat.completion`` object."""
    choices: list[dict[str, Any]] = []
    for index, candidate in _candidates(response):
        answer, thought = _texts(candidate)
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if thought:
            message["reasoning_content"] = thought
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason")) or "stop"})
    if not choices:  # a blocked prompt has no candidates; OpenAI always has a choice
        choices.append({"index": 0, "message": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": "content_filter" if _blocked(response) else "stop"})
    out: dict[str, Any] = {"id": request_id, "object": "chat.completion", "created": created,
                           "model": model, "choices": choices}
    usage = _usage(response)
    if usage is not None:
        out["usage"] = usage
    return out


def gemini_chunk_to_openai(chunk: Mapping[str, Any], model: str, request_id: str, created: int,
                           include_usage: bool) -> list[dict[str, Any]]:
    """One streamGenerateContent chunk -> the ``chat.completion.chunk`` objects to send (none,
    a content chunk, and/or — with ``include_usage``, on the final chunk — the usage chunk)."""
    head = {"id": request_id, "object": "chat.completion.chunk", "created": created,
            "model": model}
    choices: list[dict[str, Any]] = []
    candidates = _candidates(chunk)
    for index, candidate in candidates:
        answer, thought = _texts(candidate)
        finish = finish_reason(candidate.get("finishReason"))
        if not answer and not thought and finish is None:
            continue
        delta: dict[str, Any] = {"role": "assistant"}
        if thought:
            delta["reasoning_content"] = thought
        if answer:
            delta["content"] = answer
        choices.append({"index": index, "delta": delta, "logprobs": None,
                        "finish_reason": finish})
    blocked = not candidates and _blocked(chunk)
    if blocked:
        choices.append({"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                        "finish_reason": "content_filter"})
    out: list[dict[str, Any]] = []
    if choices:
        # With include_usage, OpenAI marks content chunks "usage": null; clients check for it.
        out.append({**head, "choices": choices, **({"usage": None} if include_usage else {})})
    final = blocked or not candidates or any(c.get("finishReason") for _, c in candidates)
    usage = _usage(chunk) if include_usage and final else None
    if usage is not None:
        out.append({**head, "choices": [], "usage": usage})
    return out
