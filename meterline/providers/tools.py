"""Built-in tools a provider runs for the model and bills per use (docs/providers.md,
"Built-in tools").

* OpenAI's Responses API lists each tool call among the response's ``output`` items:
  ``web_search_call`` (a web search, ``web_search`` and ``web_search_preview``),
  ``file_search_call``, and ``code_interpreter_call`` whose ``container_id`` names the container
  it ran in. A container the tool creates itself (``"container": {"type": "auto"}``) is billed
  as a session once, however many calls run in it; a container the request names by id was
  created (and billed) beforehand, outside the call.
* Anthropic counts its server tools in ``usage.server_tool_use`` (read with the rest of the
  usage, :mod:`meterline.providers.usage`): ``web_search_requests``.

Before the call, :func:`declared_tool_uses` bounds what the tools may cost: each declared tool
at most ``max_tool_calls`` times (OpenAI) or its ``max_uses`` (Anthropic's web search), else
:data:`HELD_TOOL_CALLS` times; code interpreter one session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from meterline.domain.usage import Meter

#: Output item type (Responses API) → the meter counting it.
OUTPUT_ITEMS: Final[Mapping[str, Meter]] = {
    "web_search_call": Meter.WEB_SEARCH_CALLS,
    "file_search_call": Meter.FILE_SEARCH_CALLS,
}
#: Declared tool type → its meter (Responses API, and Anthropic's ``web_search_2025…``).
DECLARED: Final[Mapping[str, Meter]] = {
    "web_search": Meter.WEB_SEARCH_CALLS,
    "web_search_preview": Meter.WEB_SEARCH_CALLS,
    "file_search": Meter.FILE_SEARCH_CALLS,
    "code_interpreter": Meter.CODE_INTERPRETER_SESSIONS,
}
#: Tool calls held for a declared tool when the request names no bound: a call searching
#: more often than this can pass a budget by the difference (docs/limits.md).
HELD_TOOL_CALLS: Final = 20


def _auto_containers(request: object) -> bool:
    """Whether the request lets the code interpreter create its container."""
    for tool in _tools(request):
        if tool.get("type") == "code_interpreter":
            container = tool.get("container")
            return not isinstance(container, str)
    return False


def _tools(request: object) -> Iterable[Mapping[str, Any]]:
    tools = request.get("tools") if isinstance(request, Mapping) else None
    return [t for t in tools if isinstance(t, Mapping)] if isinstance(tools, list) else []


def responses_tool_uses(request: object, items: Iterable[object]) -> dict[str, int]:
    """The tool uses among a response's output items (or a stream's finished items), as usage
    quantities by meter name."""
    counts: dict[str, int] = {}
    containers: set[str] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        meter = OUTPUT_ITEMS.get(kind) if isinstance(kind, str) else None
        if meter is not None:
            counts[meter.value] = counts.get(meter.value, 0) + 1
        elif kind == "code_interpreter_call":
            container = item.get("container_id")
            if isinstance(container, str) and container:
                containers.add(container)
    if containers and _auto_containers(request):
        counts[Meter.CODE_INTERPRETER_SESSIONS.value] = len(containers)
    return counts


def response_tool_uses(request: object, response: object) -> dict[str, int]:
    """:func:`responses_tool_uses` of a whole Responses API object."""
    output = response.get("output") if isinstance(response, Mapping) else None
    return responses_tool_uses(request, output if isinstance(output, list) else ())


def declared_tool_uses(request: object) -> dict[str, int]:
    """The most each declared built-in tool may be used by one call (the module docstring)."""
    bound = request.get("max_tool_calls") if isinstance(request, Mapping) else None
    limit = bound if type(bound) is int and bound > 0 else HELD_TOOL_CALLS
    held: dict[str, int] = {}
    for tool in _tools(request):
        kind = tool.get("type")
        if not isinstance(kind, str):
            continue
        meter = DECLARED.get(kind)
        if meter is None and kind.startswith("web_search_20"):  # Anthropic's versioned tool
            meter = Meter.WEB_SEARCH_CALLS
        if meter is None:
            continue
        if meter is Meter.CODE_INTERPRETER_SESSIONS:
            count = 1 if not isinstance(tool.get("container"), str) else 0
        else:
            uses = tool.get("max_uses")
            count = uses if type(uses) is int and uses > 0 else limit
        if count:
            held[meter.value] = max(held.get(meter.value, 0), count)
    return held
