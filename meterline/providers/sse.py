"""Server-Sent Events: an incremental parser for upstream streams and an encoder for clients.

The parser follows the WHATWG event-stream rules (html.spec.whatwg.org, "Parsing an event
stream"): lines end in CRLF, LF or CR; a blank line dispatches the event; ``data:`` lines join
with ``\\n``; lines starting with ``:`` are comments; one space after the colon is dropped; an
event with no data is not dispatched. Upstream bytes arrive in arbitrary pieces — a network read
can end inside a line, inside a multi-byte UTF-8 character, or between the CR and LF of one line
ending — so the parser buffers bytes and decodes only complete lines.

Deliberate differences from a browser's EventSource:

* ``id`` and ``retry`` are ignored: no LLM upstream uses them and the gateway never reconnects.
* An event without an ``event:`` field has ``event=None`` (a browser would say ``"message"``),
  so a caller can tell "unnamed" from a named event.
* :meth:`SSEParser.finish` dispatches an event that was cut off before its blank line. A browser
  drops it, but for billing the last event of an interrupted stream is often the one carrying
  usage, and keeping it is worth the (harmless) leniency.
* ``[DONE]`` is not special here: it is an ordinary event whose data is ``"[DONE]"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

#: OpenAI-format streams end with this data.
DONE: Final = "[DONE]"

_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Feed it byte chunks as they arrive; it returns the events completed by each chunk."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data", "_scan_from", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scan_from = 0  # bytes before this offset are known to hold no line ending
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it
        self._started = False  # the first line has been seen (the BOM may only lead it)
        self._event: str | None = None
        self._data: list[str] = []
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._buffer
        buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        while (match := _LINE_END.search(buffer, max(start, self._scan_from))) is not None:
            self._line(bytes(buffer[start:match.start()]), events)
            start = match.end()
            if match.group() == b"\r" and start == len(buffer):
                # A CR at the very end may be the first half of a CRLF split across chunks.
                self._skip_lf = True
        del buffer[:start]
        self._scan_from = len(buffer)
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream: the unterminated last line, then any event still being collected."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
            self._scan_from = 0
        self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(_BOM)
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return  # a comment (keep-alives, OpenRouter's ": OPENROUTER PROCESSING")
        line = raw.decode("utf-8", errors="replace")
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._has_data:
            events.append(SSEEvent(self._event or None, "\n".join(self._data)))
        self._event = None
        self._data = []
        self._has_data = False


def encode_event(data: bytes | str, event: str | None = None) -> bytes:
    """One event in wire form; each line of ``data`` becomes its own ``data:`` line, so the
    parser above (or any EventSource) gives back ``data`` with its line endings as ``\\n``."""
    if event is not None and ("\n" in event or "\r" in event):
        raise ValueError(f"an SSE event name cannot contain a line break: {event!r}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parts: list[bytes] = []
    if event is not None:
        parts.append(b"event: " + event.encode("utf-8") + b"\n")
    for line in _LINE_END.split(raw):
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def json_data(event: SSEEvent) -> dict[str, Any] | None:
    """The event's data as a JSON object, or None for ``[DONE]``, non-JSON or non-object data
    (upstreams sometimes interleave such events; they carry nothing to meter)."""
    if event.data == DONE:
        return None
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
