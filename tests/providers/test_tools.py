"""Built-in tool uses read from Responses output items, and bounded from declared tools."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.providers.tools import (
    HELD_TOOL_CALLS,
    declared_tool_uses,
    response_tool_uses,
    responses_tool_uses,
)

AUTO = {"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}


def code(container: str) -> dict[str, Any]:
    return {"type": "code_interpreter_call", "container_id": container, "code": "1"}


def test_output_items_count_searches_and_distinct_auto_containers() -> None:
    items = [{"type": "web_search_call"}, {"type": "web_search_call"},
             {"type": "file_search_call"}, code("c1"), code("c1"), code("c2"),
             {"type": "message"}, {"type": "function_call"}, None, "junk"]
    assert responses_tool_uses(AUTO, items) == {
        "web_search_calls": 2, "file_search_calls": 1, "code_interpreter_sessions": 2}


@pytest.mark.parametrize("request_body", [
    {"tools": [{"type": "code_interpreter", "container": "cntr_named"}]},
    {"tools": "not a list"}, {}, None])
def test_containers_are_sessions_only_when_the_tool_made_them(request_body: object) -> None:
    assert responses_tool_uses(request_body, [code("c1")]) == {}


def test_a_whole_response_and_its_odd_shapes() -> None:
    assert response_tool_uses(AUTO, {"output": [code("c9"), {"type": "web_search_call"}]}) == {
        "code_interpreter_sessions": 1, "web_search_calls": 1}
    assert response_tool_uses(AUTO, {"output": None}) == {}
    assert response_tool_uses(AUTO, ["not", "a", "response"]) == {}
    assert responses_tool_uses(AUTO, [code(""), {"type": "code_interpreter_call"}]) == {}


@pytest.mark.parametrize(("request_body", "held"), [
    ({"tools": [{"type": "web_search"}]}, {"web_search_calls": HELD_TOOL_CALLS}),
    ({"tools": [{"type": "web_search_preview"}], "max_tool_calls": 3},
     {"web_search_calls": 3}),
    ({"tools": [{"type": "file_search"}, {"type": "code_interpreter",
                                          "container": {"type": "auto"}}],
      "max_tool_calls": 0}, {"file_search_calls": HELD_TOOL_CALLS,
                             "code_interpreter_sessions": 1}),
    ({"tools": [{"type": "code_interpreter", "container": "cntr_named"}]}, {}),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 4}]},
     {"web_search_calls": 4}),
    ({"tools": [{"type": "web_search_20250305", "max_uses": True}]},
     {"web_search_calls": HELD_TOOL_CALLS}),
    ({"tools": [{"type": "function", "name": "f"}, {"type": 7}, "x"]}, {}),
    ({"max_tool_calls": 2}, {}),
])
def test_declared_tools_bound_the_uses_held(request_body: object, held: dict[str, int]) -> None:
    assert declared_tool_uses(request_body) == held
