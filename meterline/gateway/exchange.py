"""Bodies in and out: what is sent upstream, what the client gets back, and the usage read from
it — per endpoint and provider wire format (the readers live in ``meterline.providers``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

from meterline.domain.usage import Meter, Usage
from meterline.errors import MeterlineError
from meterline.gateway.calls import ENDPOINTS, Incoming
from meterline.providers import vertex
from meterline.providers.estimate import estimate_prompt_tokens, estimate_tokens
from meterline.providers.gemini import (
    gemini_chunk_to_openai,
    gemini_to_openai_chat,
    openai_chat_to_gemini,
)
from meterline.providers.sse import SSEEvent, SSEParser, encode_event, json_data
from meterline.providers.streams import (
    ResponsesStream,
    is_usage_only_chunk,
    stream_accumulator,
)
from meterline.providers.tools import response_tool_uses, responses_tool_uses
from meterline.providers.upstream_errors import provider_error_message
from meterline.providers.usage import read_response_usage, service_tier, upstream_cost_at

INPUT: Final = Meter.INPUT_TOKENS
OUTPUT: Final = Meter.OUTPUT_TOKENS
DONE: Final = b"data: [DONE]\n\n"
#: Events after which a passed-on stream's answer and usage are complete.
_TERMINAL: Final = frozenset({"message_stop", *ResponsesStream.TERMINAL})

log = logging.getLogger("meterline.gateway")


def _unreadable(incoming: Incoming, why: str) -> None:
    """Say why a call is billed on estimates although its upstream reported usage (the
    record itself says only ``estimated``)."""
    log.warning("%s (%s): the upstream's usage cannot be used (%s); billed on estimates",
                incoming.call.request_id, incoming.provider.name, why)


@dataclass(frozen=True, slots=True)
class Outgoing:
    path: str
    content: bytes
    content_type: str | None
    params: dict[str, str] | None = None


@dataclass
class Outcome:
    content: bytes
    usage: Usage | None
    estimated: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    upstream_cost: Decimal | None = None
    media_type: str | None = None


def upstream_request(incoming: Incoming, endpoint: str, openai_path: str) -> Outgoing:
    """The request to send upstream; ``model`` is the upstream's id."""
    kind = incoming.provider.wire
    model = incoming.target.upstream_model
    if endpoint == "gemini":
        # Gemini's own API: the body as it came (the model is in the path); streams as SSE.
        action = "streamGenerateContent" if incoming.stream else "generateContent"
        return Outgoing(_gemini_path(incoming, action), orjson.dumps(incoming.body),
                        "application/json", {"alt": "sse"} if incoming.stream else None)
    if kind == "gemini":
        _, body = openai_chat_to_gemini(incoming.body)
        action = "streamGenerateContent" if incoming.stream else "generateContent"
        return Outgoing(_gemini_path(incoming, action), orjson.dumps(body),
                        "application/json", {"alt": "sse"} if incoming.stream else None)
    account = incoming.provider.vertex
    if account is not None:
        # Claude on Vertex AI: the model and the action in the path, the version in the body.
        verb = vertex.action(vertex.ANTHROPIC, incoming.stream)
        return Outgoing(vertex.model_path(account.project, account.location, vertex.ANTHROPIC,
                                          model, verb),
                        orjson.dumps(vertex.anthropic_body(incoming.body)), "application/json")
    path, params = openai_path, None
    if incoming.provider.kind == "azure":
        # Azure OpenAI: a deployment's path and api-version, or the v1 API (model in the body).
        version = incoming.provider.api_version
        path = f"/openai/deployments/{model}{openai_path}" if version else f"/openai/v1{path}"
        params = {"api-version": version} if version else None
    if incoming.form is not None:
        content, content_type = incoming.form.replacing("model", model)
        return Outgoing(path, content, content_type, params)
    body = {**incoming.body, "model": model}
    if kind == "openai" and incoming.stream and endpoint == "chat":
        # (The Responses API always reports usage, in its terminal event.)
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
    return Outgoing(path, orjson.dumps(body), "application/json", params)


def _gemini_path(incoming: Incoming, action: str) -> str:
    """Where a Gemini model's action is: the Gemini API's path, or Vertex AI's."""
    model, account = incoming.target.upstream_model, incoming.provider.vertex
    if account is None:
        return f"/v1beta/models/{model}:{action}"
    return vertex.model_path(account.project, account.location, vertex.GOOGLE, model, action)


def error_message(status: int, raw: bytes) -> str:
    return provider_error_message(status, raw)


def error_body_for_client(incoming: Incoming, status: int, raw: bytes) -> bytes:
    """Upstream errors pass through; a Gemini error is put in OpenAI's shape for a client of
    the OpenAI endpoint."""
    if incoming.provider.wire != "gemini" or incoming.call.endpoint == "gemini":
        return raw
    return orjson.dumps({"error": {"message": provider_error_message(status, raw),
                                   "type": "upstream_error", "code": status}})


def _estimate(incoming: Incoming, output_text: str) -> Usage:
    # The body is in the client's wire format (OpenAI's for a Gemini upstream).
    wire = ENDPOINTS[incoming.call.endpoint][0]
    return Usage.of(input_tokens=estimate_prompt_tokens(incoming.body, wire),
                    output_tokens=estimate_tokens(output_text))


def _texts(value: object, keys: tuple[str, ...], out: list[str]) -> None:
    if isinstance(value, Mapping):
        for key in keys:
            found = value.get(key)
            if isinstance(found, str):
                out.append(found)
            elif found is not None and key in ("input", "args"):
                out.append(orjson.dumps(found).decode())


def answer_text(kind: str, body: Any) -> str:
    """The generated text of a whole response (answer, reasoning, tool calls), from which the
    output is estimated when the upstream reported no usage."""
    out: list[str] = []
    if not isinstance(body, Mapping):
        return ""
    if kind == "openai" and body.get("object") == "response":
        for item in body.get("output") or ():
            _texts(item, ("arguments",), out)
            for part in (item.get("content") or ()) if isinstance(item, Mapping) else ():
                _texts(part, ("text", "refusal"), out)
            for part in (item.get("summary") or ()) if isinstance(item, Mapping) else ():
                _texts(part, ("text",), out)
    elif kind == "openai":
        for choice in body.get("choices") or ():
            message = choice.get("message") if isinstance(choice, Mapping) else None
            _texts(message, ("reasoning_content", "content", "refusal"), out)
            calls = message.get("tool_calls") if isinstance(message, Mapping) else None
            for call in calls if isinstance(calls, list) else ():
                _texts(call.get("function") if isinstance(call, Mapping) else None,
                       ("name", "arguments"), out)
    elif kind == "anthropic":
        for block in body.get("content") or ():
            _texts(block, ("text", "thinking", "name", "input"), out)
    else:
        for candidate in body.get("candidates") or ():
            content = candidate.get("content") if isinstance(candidate, Mapping) else None
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                _texts(part, ("text",), out)
                _texts(part.get("functionCall") if isinstance(part, Mapping) else None,
                       ("name", "args"), out)
    return "".join(out)


def _media(endpoint: str, request: Mapping[str, Any], response: Any
           ) -> tuple[Usage, dict[str, str]]:
    """Usage of the per-unit endpoints, from the request (and the response where it says)."""
    if endpoint == "images":
        data = response.get("data") if isinstance(response, Mapping) else None
        count = len(data) if isinstance(data, list) else int(request.get("n") or 1)
        attributes = {k: str(request[k]) for k in ("size", "quality") if request.get(k)}
        return Usage.of(images=count), attributes
    if endpoint == "speech":
        text = request.get("input")
        return Usage.of(characters=len(text) if isinstance(text, str) else 0), {}
    seconds = response.get("seconds") if isinstance(response, Mapping) else None
    seconds = seconds if seconds is not None else request.get("seconds", 0)
    attributes = {k: str(request[k]) for k in ("size", "resolution") if request.get(k)}
    return Usage.of(seconds=str(seconds)), attributes


def complete(incoming: Incoming, endpoint: str, body: Any, raw: bytes) -> Outcome:
    """A successful non-streamed answer: what the client gets and what it used."""
    kind = incoming.provider.wire
    if endpoint in ("images", "speech", "videos"):
        usage, attributes = _media(endpoint, incoming.body, body)
        return Outcome(raw, usage, attributes=attributes)
    if endpoint == "responses" and isinstance(body, Mapping) \
            and _background_running(incoming, body):
        # Billed when it completes (gateway/responses.py): nothing is used yet.
        return Outcome(raw, Usage(), attributes=service_tier(body))
    reading = read_response_usage(kind, body)
    content = raw
    native = endpoint == "gemini"
    if kind == "gemini" and not native and isinstance(body, Mapping):
        call = incoming.call
        translated = gemini_to_openai_chat(body, call.requested_model,
                                           f"chatcmpl-{call.request_id}", int(time.time()))
        content = orjson.dumps(translated)
    cost = upstream_cost_at(body, incoming.provider.cost_path)
    incoming.call.upstream_currency = incoming.provider.cost_currency
    if reading.problem is not None:
        _unreadable(incoming, reading.problem)
    attributes = (service_tier(body) or service_tier(incoming.body)) if kind == "openai" else {}
    media_type = "application/json" if kind == "gemini" and not native else None
    # The Responses API lists its built-in tool calls among the output, beside the usage.
    tools = response_tool_uses(incoming.body, body) if endpoint == "responses" else {}
    if reading.usage is not None:
        return Outcome(content, reading.usage.plus(tools), upstream_cost=cost,
                       attributes=attributes, media_type=media_type)
    return Outcome(content, _estimate(incoming, answer_text(kind, body)).plus(tools),
                   estimated=True, upstream_cost=cost, attributes=attributes,
                   media_type=media_type)


def _background_running(incoming: Incoming, body: Mapping[str, Any]) -> bool:
    """Note the Responses API object a call created; True when it is a background response
    still running (queued or in progress), to be billed when it completes."""
    response_id = body.get("id")
    if isinstance(response_id, str) and response_id:
        incoming.response_id = response_id
        incoming.response_pending = body.get("background") is True and body.get(
            "status") in ("queued", "in_progress")
    return incoming.response_pending


class Relay:
    """Passes a stream on as it arrives while metering it.

    Events are relayed byte for byte, except that an OpenAI usage chunk the client did not ask
    for is dropped, and a Gemini stream is translated into OpenAI chunks.
    """

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        self.kind = incoming.provider.wire
        self.parser = SSEParser()
        # A Responses API stream is passed on as it comes: its usage is its own last event.
        self.responses = incoming.call.endpoint == "responses"
        self.accumulator = ResponsesStream() if self.responses \
            else stream_accumulator(self.kind)
        #: Gemini's own API: its events pass as they come, in Gemini's shape.
        self.native = incoming.call.endpoint == "gemini"
        self.passthrough = self.kind == "anthropic" or self.responses or self.native or (
            self.kind == "openai" and incoming.client_wants_usage)
        self.created = int(time.time())
        self.tier = service_tier(incoming.body) if self.kind == "openai" else {}
        self.unfinished = False
        #: The upstream's terminal event has arrived (OpenAI ``[DONE]``, Anthropic
        #: ``message_stop``): the answer and its usage are complete.
        self.ended = False
        # What the upstream was sent, for estimating the prompt when no usage comes: a Gemini
        # upstream got the OpenAI body translated.
        self.sent_body = openai_chat_to_gemini(incoming.body)[1] \
            if self.kind == "gemini" and not self.native else incoming.body
        # The call's own cost, wherever its provider puts it (the last one seen counts).
        self.cost_path = incoming.provider.cost_path
        self.cost: Decimal | None = None
        incoming.call.upstream_currency = incoming.provider.cost_currency

    def feed(self, chunk: bytes) -> bytes:
        events = self.parser.feed(chunk)
        if self.passthrough:
            for event in events:
                data = json_data(event)
                if data is not None:
                    self.accumulator.feed(data)
                    self._note_tier(data)
                    self._note_cost(data)
                    if self.responses:
                        self._note_response(data)
                    self.ended = self.ended or data.get("type") in _TERMINAL
                else:
                    self.ended = self.ended or event.data == "[DONE]"
            self.unfinished = not chunk.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
            return chunk
        return b"".join(self._relay(event) for event in events)

    def error_event(self, error: MeterlineError) -> bytes:
        """An error event in the client's wire format, ending the stream after a failure."""
        # An event the upstream left unfinished is ended first, so that the error is parsed.
        lead = b"\n\n" if self.unfinished else b""
        if self.kind == "anthropic":
            return lead + encode_event(orjson.dumps({"type": "error", "error": {
                "type": "api_error", "message": error.message}}), "error")
        if self.responses:
            return lead + encode_event(orjson.dumps({
                "type": "error", "code": error.code, "message": error.message,
                "param": None}), "error")
        if self.native:
            return lead + encode_event(orjson.dumps({"error": {
                "code": 502, "message": error.message, "status": "UNAVAILABLE"}}))
        return lead + encode_event(orjson.dumps({"error": {
            "message": error.message, "type": "api_error", "code": error.code}}))

    def close(self) -> bytes:
        tail = b"".join(self._relay(event) for event in self.parser.finish()) \
            if not self.passthrough else b""
        if self.kind == "gemini" and not self.native:
            tail += DONE
        return tail

    def _relay(self, event: SSEEvent) -> bytes:
        data = json_data(event)
        if data is None:
            if self.kind == "gemini":
                return b""
            self.ended = self.ended or event.data == "[DONE]"
            return encode_event(event.data, event.event)
        self.accumulator.feed(data)
        self._note_tier(data)
        self._note_cost(data)
        if self.kind == "openai":
            return b"" if is_usage_only_chunk(data) else encode_event(event.data, event.event)
        call = self.incoming.call
        chunks = gemini_chunk_to_openai(data, call.requested_model, f"chatcmpl-{call.request_id}",
                                        self.created, self.incoming.client_wants_usage)
        return b"".join(encode_event(orjson.dumps(c)) for c in chunks)

    def _note_tier(self, data: Mapping[str, Any]) -> None:
        if self.kind == "openai":
            # Chunks say it at the top; the Responses API's events in their response.
            self.tier = service_tier(data) or service_tier(data.get("response")) or self.tier

    def _note_response(self, data: Mapping[str, Any]) -> None:
        # A stream bills itself: its response is only remembered, never left pending.
        if self.incoming.response_id is None and data.get("type") == "response.created":
            response = data.get("response")
            found = response.get("id") if isinstance(response, Mapping) else None
            if isinstance(found, str) and found:
                self.incoming.response_id = found

    def _note_cost(self, data: Mapping[str, Any]) -> None:
        # A Responses API stream carries its answer in the terminal event's ``response``.
        found = upstream_cost_at(data.get("response") if self.responses else data,
                                 self.cost_path)
        if found is not None:
            self.cost = found

    def attributes(self) -> dict[str, str]:
        """The price attributes of the call (the service tier the answer says was applied)."""
        return dict(self.tier)

    def usage(self) -> tuple[Usage, bool]:
        billable = self.accumulator.billable_usage(self.sent_body)
        problem = self.accumulator.usage_reading().problem
        if problem is not None:
            _unreadable(self.incoming, problem)
        if isinstance(self.accumulator, ResponsesStream):
            tools = responses_tool_uses(self.incoming.body, self.accumulator.items)
            return billable.usage.plus(tools), billable.estimated
        return billable.usage, billable.estimated

    def upstream_cost(self) -> Decimal | None:
        return self.cost


def stream_relay(incoming: Incoming) -> Relay:
    return Relay(incoming)
