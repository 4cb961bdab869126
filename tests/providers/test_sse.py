"""meterline.providers.sse: incremental SSE parsing and encoding."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.providers.sse import DONE, SSEEvent, SSEParser, encode_event, json_data

prop = settings(deadline=None, max_examples=300)


def parse_whole(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(data) + parser.finish()


def parse_bytewise(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i:i + 1])
    return events + parser.finish()


# A real OpenAI stream (with the usage chunk) and a real Anthropic stream, as sent on the wire.
OPENAI_STREAM = (
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741569952,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741569952,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741569952,'
    b'"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,'
    b'"total_tokens":10}}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_STREAM = (
    b"event: message_start\r\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":25,'
    b'"output_tokens":1}}}\r\n\r\n'
    b"event: ping\r\n"
    b'data: {"type": "ping"}\r\n\r\n'
    b"event: message_stop\r\n"
    b'data: {"type":"message_stop"}\r\n\r\n'
)


def test_openai_stream_gives_each_data_line_and_done() -> None:
    events = parse_whole(OPENAI_STREAM)
    assert [e.event for e in events] == [None, None, None, None]
    assert events[1].data == (
        '{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741569952,'
        '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},'
        '"finish_reason":null}],"usage":null}'
    )
    assert events[3] == SSEEvent(None, "[DONE]")
    assert events[3].data == DONE


def test_anthropic_stream_with_crlf_gives_named_events() -> None:
    events = parse_whole(ANTHROPIC_STREAM)
    assert [e.event for e in events] == ["message_start", "ping", "message_stop"]
    assert events[1].data == '{"type": "ping"}'
    assert events[2].data == '{"type":"message_stop"}'


@pytest.mark.parametrize("stream", [OPENAI_STREAM, ANTHROPIC_STREAM])
def test_one_byte_at_a_time_equals_whole(stream: bytes) -> None:
    assert parse_bytewise(stream) == parse_whole(stream)
    assert len(parse_whole(stream)) in (3, 4)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\n\n", [SSEEvent(None, "a")]),
        (b"data: a\r\n\r\n", [SSEEvent(None, "a")]),
        (b"data: a\r\r", [SSEEvent(None, "a")]),
        (b"data: a\ndata: b\n\n", [SSEEvent(None, "a\nb")]),  # multi-line data
        (b"data: a\r\ndata: b\rdata: c\n\n", [SSEEvent(None, "a\nb\nc")]),  # mixed endings
        (b"data:a\n\n", [SSEEvent(None, "a")]),  # the space after the colon is optional
        (b"data:  a\n\n", [SSEEvent(None, " a")]),  # only one space is dropped
        (b"data\n\n", [SSEEvent(None, "")]),  # a field with no colon has an empty value
        (b"data:\n\n", [SSEEvent(None, "")]),
        (b": keep-alive\n\n", []),  # a comment alone is no event
        (b": OPENROUTER PROCESSING\ndata: x\n\n", [SSEEvent(None, "x")]),
        (b"event: ping\n\n", []),  # no data: not dispatched
        (b"event: ping\n\ndata: x\n\n", [SSEEvent(None, "x")]),  # the name does not linger
        (b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n",
         [SSEEvent("a", "1"), SSEEvent("b", "2")]),
        (b"event:\ndata: x\n\n", [SSEEvent(None, "x")]),
        (b"id: 7\nretry: 10\ndata: x\n\n", [SSEEvent(None, "x")]),  # ignored fields
        (b"\xef\xbb\xbfdata: x\n\n", [SSEEvent(None, "x")]),  # a leading BOM
        (b"data: a:b: c\n\n", [SSEEvent(None, "a:b: c")]),  # only the first colon splits
        ("data: 你好\n\n".encode(), [SSEEvent(None, "你好")]),
        (b"data: \xff\n\n", [SSEEvent(None, "\ufffd")]),  # invalid UTF-8 is replaced
        (b"\n\n\ndata: x\n\n\n\n", [SSEEvent(None, "x")]),
    ],
    ids=repr,
)
def test_parsing_rules(stream: bytes, expected: list[SSEEvent]) -> None:
    assert parse_whole(stream) == expected
    assert parse_bytewise(stream) == expected


def test_event_is_returned_only_when_its_blank_line_arrives() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: {\"a\"") == []
    assert parser.feed(b":1}\n") == []
    assert parser.feed(b"\n") == [SSEEvent(None, '{"a":1}')]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # Were the LF taken as a second line ending, "a" would be dispatched alone here.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent(None, "a\nb")]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"data: c\n\n") == [SSEEvent(None, "c")]


def test_empty_chunks_change_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n\n") == [SSEEvent(None, "a")]


def test_bom_is_stripped_only_at_the_start() -> None:
    # A BOM later in the stream is part of the field name, which is then unknown.
    assert parse_whole(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [SSEEvent(None, "x")]


def test_finish_keeps_an_event_cut_before_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.finish() == [SSEEvent(None, "[DONE]")]
    assert parser.finish() == []
    parser = SSEParser()
    assert parser.feed(b"event: message_delta\ndata: {}\n") == []
    assert parser.finish() == [SSEEvent("message_delta", "{}")]
    assert SSEParser().finish() == []


# --- the property: any split of the bytes gives the same events --------------------------------

_names = st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                                      min_size=1, max_size=12))
_data = st.text(st.characters(codec="utf-8"), max_size=40)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """Random events written with random line endings and comments, and the expected events."""
    out: list[bytes] = []
    expected: list[SSEEvent] = []
    for name, data in draw(st.lists(st.tuples(_names, _data), max_size=6)):
        def end() -> bytes:
            return draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
        if draw(st.booleans()):
            out.append(b": comment" + end())
        if name is not None:
            out.append(b"event: " + name.encode() + end())
        lines = re.split(r"\r\n|\r|\n", data)
        for line in lines:
            out.append(b"data: " + line.encode() + end())
        # A blank line after a CR-ended line cannot be LF alone: CR LF is one line ending.
        out.append(draw(st.sampled_from([b"\r\n", b"\r"])) if out[-1].endswith(b"\r")
                   else end())
        expected.append(SSEEvent(name or None, "\n".join(lines)))
    return b"".join(out), expected


@prop
@given(st.data())
def test_any_split_gives_the_same_events(data: st.DataObject) -> None:
    stream, expected = data.draw(streams())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    parser = SSEParser()
    events: list[SSEEvent] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += parser.feed(stream[start:stop])
    events += parser.finish()
    assert events == expected
    assert parse_bytewise(stream) == expected


# --- encoding ----------------------------------------------------------------------------------

def test_encode_event_exact_bytes() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event(b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_event('{"type":"message_stop"}', "message_stop") == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert encode_event("a\nb\r\nc") == b"data: a\ndata: b\ndata: c\n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event("你") == "data: 你\n\n".encode()


def test_encode_event_refuses_a_line_break_in_the_name() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("x", "a\nb")


@prop
@given(_data, _names)
def test_encode_then_parse_round_trips(data: str, name: str | None) -> None:
    normalized = re.sub(r"\r\n|\r", "\n", data)
    assert parse_whole(encode_event(data, name)) == [SSEEvent(name or None, normalized)]
    assert parse_whole(encode_event(data.encode(), name)) == [SSEEvent(name or None, normalized)]


def test_json_data() -> None:
    assert json_data(SSEEvent(None, '{"type":"ping"}')) == {"type": "ping"}
    assert json_data(SSEEvent(None, "[DONE]")) is None
    assert json_data(SSEEvent(None, "not json")) is None
    assert json_data(SSEEvent(None, "[1, 2]")) is None
    assert json_data(SSEEvent(None, "")) is None
