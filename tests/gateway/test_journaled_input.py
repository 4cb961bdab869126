"""What a call's record will carry is checked before the provider is called (issue 12.3b): an
``x-meterline-metadata`` header nested 255 levels deep passed the request checks, the upstream
answered, and the journal's encoder refused the record, so a paid call went unrecorded."""

from __future__ import annotations

import json

import openai
import pytest

from meterline.domain.events import MAX_METADATA_DEPTH
from tests.gateway.conftest import Gateway, marker

MODEL = "openai/gpt-5-nano"


def nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("stream", [False, True])
def test_metadata_too_deep_to_journal_is_refused_before_the_upstream(gateway: Gateway,
                                                                     stream: bool) -> None:
    word = marker()
    with gateway.openai() as client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": word}], stream=stream,
            extra_headers={"x-meterline-metadata": json.dumps(nested(255))})
    error = refused.value.response.json()["error"]
    assert error["field"] == "x-meterline-metadata", error
    assert str(MAX_METADATA_DEPTH) in error["message"]
    assert gateway.upstream.requests(word) == []  # never sent, so nothing to record


def test_metadata_within_the_depth_is_recorded(gateway: Gateway) -> None:
    metadata = nested(MAX_METADATA_DEPTH)
    with gateway.openai() as client:
        answer = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-meterline-metadata": json.dumps(metadata)})
    assert gateway.record(answer.headers["x-meterline-request-id"])["metadata"] == metadata
