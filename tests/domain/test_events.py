"""meterline.domain.events: usage events and the metadata a call carries (the
``x-meterline-metadata`` header, an event's ``metadata``) — any input is taken or refused as bad
input naming the field, never another exception (what is journaled must be encodable)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.events import metadata_object, parse_event
from meterline.errors import InvalidInput

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=20)
NOW = datetime(2026, 11, 15, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_metadata_is_kept_as_json_or_refused(value: Any) -> None:
    try:
        kept = metadata_object(value, "x-meterline-metadata")
    except InvalidInput as exc:
        assert exc.context.get("field") == "x-meterline-metadata" or exc.message
        return
    assert isinstance(kept, dict)
    orjson.dumps(kept)  # what is kept can be journaled


def test_deep_metadata_is_refused() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = {"a": deep}
    try:
        metadata_object(deep)
    except InvalidInput as exc:
        assert "metadata" in exc.message
    else:
        raise AssertionError("300 levels of metadata were accepted")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "timestamp", "model", "usage", "status", "user",
                                        "metadata", "tags", "attributes", "extra"]),
                       _JSON, max_size=8))
def test_any_event_is_parsed_or_refused_as_bad_input(data: dict[str, Any]) -> None:
    try:
        event = parse_event(data, now=NOW)
    except InvalidInput as exc:
        assert exc.message
        return
    assert event.id and event.model
