"""Stream accumulators: what a streamed upstream response reported, chunk by chunk.

The gateway parses each SSE event's JSON (see :func:`meterline.providers.sse.json_data`) and
feeds the object to the accumulator of the upstream's wire format. At the end — normal,
upstream error, or the client gone — it asks for :meth:`StreamAccumulator.billable_usage`.

How each format reports usage in a stream:

* OpenAI: chunks carry ``"usage": null`` except the final one, which has ``"choices": []`` and
  the full usage (only when ``stream_options.include_usage`` was set, which the gateway always
  does). Some compatible providers attach usage to the finishing chunk instead (Zhipu,
  MiniMax, Qianfan), or inside its choice (Moonshot), or to every chunk as a running total; in
  every case the last usage seen is the answer.
* Anthropic: ``message_start.message.usage`` holds input and cache counts and a provisional
  ``output_tokens``; each ``message_delta.usage`` holds CUMULATIVE counts, so later values
  replace earlier ones field by field — never added.
* Gemini: any chunk may carry ``usageMetadata``, each a running total; the last one wins.

An accumulator never raises on odd chunks: the stream keeps flowing to the client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple

import orjson

from meterline.domain.usage import Meter, Usage
from meterline.providers.estimate import estimate_prompt_tokens, estimate_tokens
from meterline.providers.usage import (
    NO_USAGE,
    UsageReading,
    read_anthropic_usage,
    read_gemini_usage,
    read_openai_usage,
    read_responses_usage,
    upstream_cost,
)
from meterline.providers.wire import Wire, wire_of


class BillableUsage(NamedTuple):
    """What to record for a stream: the usage, whether it is (partly) estimated, and why."""

    usage: Usage
    estimated: bool
    warning: str | None


def _error_message(error: object) -> str | None:
    if isinstance(error, Mapping):
        message = error.get("message")
        return message if isinstance(message, str) else None
    return error if isinstance(error, str) else None


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode("utf-8") if value is not None else ""
    except (TypeError, orjson.JSONEncodeError):
        return ""


class StreamAccumulator(ABC):
    wire: ClassVar[Wire]

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._final = False
        self._error: str | None = None

    @abstractmethod
    def feed(self, event_data: Mapping[str, Any]) -> None:
        """Take one parsed event (chunk) of the stream."""

    @abstractmethod
    def usage_reading(self) -> UsageReading:
        """The usage reported so far, with its problems (see :class:`UsageReading`)."""

    def usage(self) -> Usage | None:
        """The usage reported so far; None if the stream never reported (readable) usage."""
        return self.usage_reading().usage

    def upstream_cost(self) -> Decimal | None:
        """The cost the upstream reported (OpenRouter); None where the format has none."""
        return None

    def text(self) -> str:
        """Every generated text seen so far — content, reasoning, tool arguments — for
        estimating output tokens."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]  # join once, not on every call
        return self._parts[0] if self._parts else ""

    @property
    def final(self) -> bool:
        """True once the usage seen is the stream's final count, not a provisional one."""
        return self._final

    @property
    def error(self) -> str | None:
        """The message of an error the upstream sent inside the stream, if any."""
        return self._error

    def _add(self, value: object) -> None:
        if isinstance(value, str) and value:
            self._parts.append(value)

    def billable_usage(self, request_body: Mapping[str, Any]) -> BillableUsage:
        """The usage to bill. Final reported usage as it is; otherwise reported counts topped up
        by estimates (input estimated only if none was reported, output the larger of reported
        and estimated), or all estimated when nothing readable was reported."""
        reading = self.usage_reading()
        warning = reading.problem or reading.warning
        reported = reading.usage
        if reported is not None and self._final:
            return BillableUsage(reported, False, warning)
        quantities = dict(reported.quantities) if reported is not None else {}
        if not quantities.get(Meter.INPUT_TOKENS):
            quantities[Meter.INPUT_TOKENS] = Decimal(
                estimate_prompt_tokens(request_body, self.wire))
        output = Decimal(estimate_tokens(self.text()))
        quantities[Meter.OUTPUT_TOKENS] = max(quantities.get(Meter.OUTPUT_TOKENS, output), output)
        # Only counts rise above what was reported, so the parts still fit inside their wholes.
        usage = Usage.of(**{meter.value: value for meter, value in quantities.items()})
        return BillableUsage(usage, True, warning)


class OpenAIStream(StreamAccumulator):
    wire = Wire.OPENAI

    def __init__(self) -> None:
        super().__init__()
        self._usage: object = None

    def feed(self, event_data: Mapping[str, Any]) -> None:
        if not isinstance(event_data, Mapping):
            return
        if "error" in event_data:
            self._error = _error_message(event_data["error"]) or self._error
        choices = event_data.get("choices")
        finished = False
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping):
                continue
            finished = finished or bool(choice.get("finish_reason"))
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._delta(delta)
        usage = event_data.get("usage")
        if usage is None:
            # Moonshot puts a stream's usage inside the choice that finishes.
            usage = next((c.get("usage") for c in choices if isinstance(c, Mapping)
                          and c.get("usage") is not None), None) \
                if isinstance(choices, list) else None
        if usage is not None:
            self._usage = usage
            self._final = finished or not choices

    def _delta(self, delta: Mapping[str, Any]) -> None:
        # DeepSeek and Qwen say reasoning_content, OpenRouter says reasoning; some send both
        # with the same text, so only one of them counts.
        reasoning = delta.get("reasoning_content")
        self._add(reasoning if isinstance(reasoning, str) else delta.get("reasoning"))
        self._add(delta.get("content"))
        self._add(delta.get("refusal"))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                self._add(function.get("name"))
                self._add(function.get("arguments"))

    def usage_reading(self) -> UsageReading:
        return read_openai_usage(self._usage)

    def upstream_cost(self) -> Decimal | None:
        return upstream_cost(self._usage)


class ResponsesStream(StreamAccumulator):
    """OpenAI's Responses API stream: typed events; the usage comes once, in the terminal
    ``response.completed`` (or ``.incomplete`` / ``.failed``) event's response."""

    wire = Wire.OPENAI
    TERMINAL: ClassVar[frozenset[str]] = frozenset(
        {"response.completed", "response.incomplete", "response.failed"})
    #: Events whose ``delta`` is generated text (answer, reasoning, tool arguments).
    TEXT: ClassVar[frozenset[str]] = frozenset({
        "response.output_text.delta", "response.refusal.delta",
        "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta", "response.custom_tool_call_input.delta"})

    def __init__(self) -> None:
        super().__init__()
        self._usage: object = None
        #: The output items finished so far (the terminal event's list replaces them): the
        #: built-in tool calls among them are billed (providers/tools.py), even when the
        #: client leaves before the end.
        self.items: list[object] = []

    def feed(self, event_data: Mapping[str, Any]) -> None:
        if not isinstance(event_data, Mapping):
            return
        kind = event_data.get("type")
        if kind in self.TEXT:
            self._add(event_data.get("delta"))
        elif kind == "response.output_item.done":
            self.items.append(event_data.get("item"))
        elif kind == "error":
            self._error = _error_message(event_data) or self._error
        elif kind in self.TERMINAL:
            response = event_data.get("response")
            if isinstance(response, Mapping):
                self._usage = response.get("usage")
                output = response.get("output")
                if isinstance(output, list):
                    self.items = output
                if kind == "response.failed":
                    self._error = _error_message(response.get("error")) or self._error
            self._final = self._usage is not None

    @property
    def ended(self) -> bool:
        return self._final or self._error is not None

    def usage_reading(self) -> UsageReading:
        return read_responses_usage(self._usage)


def is_usage_only_chunk(chunk: Mapping[str, Any]) -> bool:
    """OpenAI's extra usage chunk (``choices: []`` with usage), which the gateway drops when the
    client did not ask for ``stream_options.include_usage`` itself."""
    return (isinstance(chunk, Mapping) and isinstance(chunk.get("usage"), Mapping)
            and not chunk.get("choices"))


class AnthropicStream(StreamAccumulator):
    wire = Wire.ANTHROPIC

    def __init__(self) -> None:
        super().__init__()
        self._usage: dict[str, Any] = {}
        self._malformed: str | None = None

    def feed(self, event_data: Mapping[str, Any]) -> None:
        if not isinstance(event_data, Mapping):
            return
        kind = event_data.get("type")
        if kind == "message_start":
            message = event_data.get("message")
            if isinstance(message, Mapping):
                self._merge(message.get("usage"))
        elif kind == "message_delta":
            # Counts are cumulative and may come more than once; only the delta that ends the
            # message (it has a stop reason) carries the final count.
            merged = self._merge(event_data.get("usage"))
            delta = event_data.get("delta")
            if merged and isinstance(delta, Mapping) and delta.get("stop_reason"):
                self._final = True
        elif kind == "message_stop":
            self._final = bool(self._usage)
        elif kind == "content_block_start":
            block = event_data.get("content_block")
            if isinstance(block, Mapping):
                self._add(block.get("text"))
                self._add(block.get("name"))
        elif kind == "content_block_delta":
            delta = event_data.get("delta")
            if isinstance(delta, Mapping):
                self._add(delta.get("text"))
                self._add(delta.get("thinking"))
                self._add(delta.get("partial_json"))
        elif kind == "error":
            self._error = _error_message(event_data.get("error")) or self._error

    def _merge(self, usage: object) -> bool:
        if usage is None:
            return False
        if not isinstance(usage, Mapping):
            self._malformed = f"usage: expected an object, got {type(usage).__name__}"
            return False
        # Cumulative counts: a later value replaces the earlier one; null means "not reported".
        self._usage.update((k, v) for k, v in usage.items() if v is not None)
        return True

    def usage_reading(self) -> UsageReading:
        if self._usage:
            return read_anthropic_usage(self._usage)
        return UsageReading(problem=self._malformed) if self._malformed else NO_USAGE


class GeminiStream(StreamAccumulator):
    wire = Wire.GEMINI

    def __init__(self) -> None:
        super().__init__()
        self._usage: object = None

    def feed(self, event_data: Mapping[str, Any]) -> None:
        if not isinstance(event_data, Mapping):
            return
        if "error" in event_data:
            self._error = _error_message(event_data["error"]) or self._error
        candidates = event_data.get("candidates")
        finished = False
        for candidate in candidates if isinstance(candidates, list) else ():
            if not isinstance(candidate, Mapping):
                continue
            finished = finished or bool(candidate.get("finishReason"))
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, Mapping):
                    self._add(part.get("text"))  # thought summaries are text parts too
                    call = part.get("functionCall")
                    if isinstance(call, Mapping):
                        self._add(call.get("name"))
                        self._add(_json_text(call.get("args")))
        usage = event_data.get("usageMetadata")
        if usage is not None:
            self._usage = usage
            self._final = finished or not candidates

    def usage_reading(self) -> UsageReading:
        return read_gemini_usage(self._usage)


_BY_WIRE: dict[Wire, type[StreamAccumulator]] = {
    Wire.OPENAI: OpenAIStream, Wire.ANTHROPIC: AnthropicStream, Wire.GEMINI: GeminiStream,
}


def stream_accumulator(wire: str) -> StreamAccumulator:
    """A fresh accumulator for a stream in wire format ``wire``."""
    return _BY_WIRE[wire_of(wire)]()
