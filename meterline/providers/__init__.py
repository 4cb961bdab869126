"""Adapters for upstream wire formats (OpenAI, Anthropic, Gemini): bytes and parsed JSON in,
canonical usage and translated JSON out. No HTTP client or web framework here — the gateway
makes the calls and feeds this package what arrives.

::

    wire.py             Wire: the formats (a provider's ``kind``)
    sse.py              SSEParser, encode_event, json_data
    usage.py            provider usage -> Usage (UsageReading), upstream costs, OpenAI usage shape
    streams.py          stream accumulators: usage, text and cost of a streamed response
    estimate.py         token estimates for calls whose usage never came
    gemini.py           OpenAI chat <-> Gemini generateContent translation
    vertex.py           Vertex AI: a publisher's model paths, Claude's body, where prices are
    upstream_errors.py  the message inside an upstream's error body
"""

from meterline.providers.estimate import estimate_prompt_tokens, estimate_tokens
from meterline.providers.gemini import (
    gemini_chunk_to_openai,
    gemini_to_openai_chat,
    openai_chat_to_gemini,
)
from meterline.providers.sse import DONE, SSEEvent, SSEParser, encode_event, json_data
from meterline.providers.streams import (
    AnthropicStream,
    BillableUsage,
    GeminiStream,
    OpenAIStream,
    StreamAccumulator,
    is_usage_only_chunk,
    stream_accumulator,
)
from meterline.providers.upstream_errors import provider_error_message
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
    upstream_cost_at,
)
from meterline.providers.wire import Wire, wire_of

__all__ = [
    "DONE",
    "AnthropicStream",
    "BillableUsage",
    "GeminiStream",
    "OpenAIStream",
    "SSEEvent",
    "SSEParser",
    "StreamAccumulator",
    "UsageReading",
    "Wire",
    "anthropic_usage",
    "encode_event",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "gemini_chunk_to_openai",
    "gemini_to_openai_chat",
    "gemini_usage",
    "is_usage_only_chunk",
    "json_data",
    "openai_chat_to_gemini",
    "openai_usage",
    "openai_usage_object",
    "provider_error_message",
    "read_anthropic_usage",
    "read_gemini_usage",
    "read_openai_usage",
    "read_response_usage",
    "stream_accumulator",
    "upstream_cost",
    "upstream_cost_at",
    "wire_of",
]
