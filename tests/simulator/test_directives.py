"""Directive parsing, token planning and the generated text (no HTTP)."""

from __future__ import annotations

import pytest

from meterline.simulator.common import parse_multipart
from meterline.simulator.directives import (
    MAX_CONTENT_CHUNKS,
    NO_DIRECTIVES,
    DirectiveError,
    Directives,
    content_pieces,
    count_words,
    generated_text,
    parse_directives,
    plan,
)


def test_text_without_directives_is_returned_as_is() -> None:
    assert parse_directives("just words") == (NO_DIRECTIVES, "just words")


def test_every_directive_parses() -> None:
    text = (
        "a [[sim status=503 retry_after=2 delay_ms=5]] b [[sim chunk_delay_ms=7 break_after=3]]"
        " [[sim no_usage tokens=9 cached=11 cache_write=12 reasoning=13 cost=0.0123]] c"
    )
    directives, clean = parse_directives(text)
    assert directives == Directives(
        status=503,
        retry_after=2,
        delay_ms=5,
        chunk_delay_ms=7,
        break_after=3,
        no_usage=True,
        tokens=9,
        cached=11,
        cache_write=12,
        reasoning=13,
        cost=0.0123,
    )
    assert clean.split() == ["a", "b", "c"]


@pytest.mark.parametrize(
    "text",
    [
        "[[sim bogus=1]]",
        "[[sim tokens=-1]]",
        "[[sim tokens=many]]",
        "[[sim cost=cheap]]",
        "[[sim status=200]]",
        "[[sim status=600]]",
        "[[sim no_usage=1]]",
    ],
)
def test_bad_directives_are_refused(text: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(text)


def test_plan_counts_words_outside_directives() -> None:
    p = plan("one two\nthree [[sim cached=100 cache_write=7 reasoning=4]]")
    assert (p.prompt, p.cached, p.cache_write, p.output, p.reasoning) == (3, 100, 7, 16, 4)
    assert not p.truncated


def test_plan_prompt_is_at_least_one() -> None:
    assert plan("").prompt == 1
    assert plan("[[sim tokens=2]]").prompt == 1
    assert count_words("   ") == 1


def test_max_tokens_cuts_the_output() -> None:
    assert plan("x", 5).output == 5
    assert plan("x", 5).truncated
    assert plan("x [[sim tokens=3]]", 5).output == 3
    assert not plan("x", 16).truncated
    assert plan("x", 0).output == 16  # not a usable limit: ignored
    assert plan("x", True).output == 16


@pytest.mark.parametrize("words", [0, 1, 16, 64, 65, 1000])
def test_pieces_join_to_the_text(words: int) -> None:
    pieces = content_pieces(words)
    assert "".join(text for text, _ in pieces) == generated_text(words)
    assert sum(n for _, n in pieces) == words
    assert len(pieces) == min(words, MAX_CONTENT_CHUNKS)
    assert len(generated_text(words).split()) == words


def test_multipart_fields() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="prompt"\r\n\r\n'
        b"a cat\r\non a mat\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="input_reference"; filename="cat.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
        b"\x89PNG\r\n"
        b"--XyZ--\r\n"
    )
    fields = parse_multipart(body, 'multipart/form-data; boundary="XyZ"')
    assert fields == {"prompt": "a cat\r\non a mat", "input_reference": "cat.png"}
    assert parse_multipart(body, "multipart/form-data") == {}
