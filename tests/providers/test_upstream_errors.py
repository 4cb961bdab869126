"""meterline.providers.upstream_errors: the message inside an upstream's error body."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.providers.upstream_errors import EXCERPT, MAX_MESSAGE, provider_error_message


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        # OpenAI
        (404, b'{"error": {"message": "The model `gpt-5-turbo` does not exist or you do not '
              b'have access to it.", "type": "invalid_request_error", "param": null, '
              b'"code": "model_not_found"}}',
         "The model `gpt-5-turbo` does not exist or you do not have access to it."),
        # Anthropic
        (529, b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},'
              b' "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}',
         "Overloaded"),
        # Gemini
        (400, b'{\n  "error": {\n    "code": 400,\n    "message": "API key not valid. Please pass '
              b'a valid API key.",\n    "status": "INVALID_ARGUMENT"\n  }\n}\n',
         "API key not valid. Please pass a valid API key."),
        # Gemini's array answer (streamGenerateContent without alt=sse)
        (429, b'[{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check '
              b'quota).", "status": "RESOURCE_EXHAUSTED"}}]',
         "Resource has been exhausted (e.g. check quota)."),
        # looser compatibles
        (400, b'{"error": "Invalid token"}', "Invalid token"),
        (400, b'{"object": "error", "message": "max_tokens is too large", "code": 400}',
         "max_tokens is too large"),
        (422, b'{"detail": "Not Found"}', "Not Found"),
        (500, b'{"error_code": 336003, "error_msg": "the max length of current question is 4800"}',
         "the max length of current question is 4800"),
        # an error object without a message still names its kind
        (503, b'{"error": {"code": 503, "status": "UNAVAILABLE"}}', "UNAVAILABLE"),
        (400, b'{"error": {"type": "invalid_request_error", "message": ""}}',
         "invalid_request_error"),
    ],
    ids=lambda v: v if isinstance(v, int) else repr(v)[:40],
)
def test_messages_of_known_shapes(status: int, body: bytes, message: str) -> None:
    assert provider_error_message(status, body) == message


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (502, b"<html><head><title>502 Bad Gateway</title></head><body><center>"
              b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
         "upstream answered HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx"),
        (500, b"Internal Server Error", "upstream answered HTTP 500: Internal Server Error"),
        (503, b"", "upstream answered HTTP 503 with an empty body"),
        (503, b"   \n", "upstream answered HTTP 503 with an empty body"),
        (500, b"\xff\xfe garbage \x00\x01", "upstream answered HTTP 500: \ufffd\ufffd garbage"),
        (400, b'{"unexpected": true}', 'upstream answered HTTP 400: {"unexpected": true}'),
        (400, b"[]", "upstream answered HTTP 400: []"),
        (400, b'{"error": {"message": 42}}', 'upstream answered HTTP 400: {"error": '
                                             '{"message": 42}}'),
    ],
    ids=repr,
)
def test_garbage_gives_an_excerpt(status: int, body: bytes, message: str) -> None:
    assert provider_error_message(status, body) == message


def test_long_messages_and_bodies_are_cut() -> None:
    long_message = provider_error_message(400, b'{"error": {"message": "' + b"x" * 5000 + b'"}}')
    assert long_message == "x" * (MAX_MESSAGE - 1) + "…"
    long_body = provider_error_message(500, b"y" * 5000)
    assert long_body == "upstream answered HTTP 500: " + "y" * (EXCERPT - 1) + "…"


@settings(deadline=None, max_examples=300)
@given(st.integers(100, 599), st.binary(max_size=300))
def test_never_raises(status: int, body: bytes) -> None:
    message = provider_error_message(status, body)
    assert message
    assert len(message) <= MAX_MESSAGE
