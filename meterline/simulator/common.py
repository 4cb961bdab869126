"""Plumbing shared by the simulated providers: state, auth, request reading, responses, SSE."""

from __future__ import annotations

import itertools
import re
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from meterline.simulator.directives import DirectiveError, Directives, Plan, plan

ErrorFn = Callable[[int, str], Response]
"""Builds an error response in one provider's shape from an HTTP status and a message."""

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the simulator saw it (for tests: headers are lower-case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class SimState:
    """Per-app state: the optional required key, request counts and recent requests.

    ``abandoned`` counts paced streams (``chunk_delay_ms``) whose client went away early.
    """

    require_key: str | None = None
    record: int = 64
    requests: dict[str, int] = field(default_factory=dict)
    abandoned: int = 0
    received: deque[Received] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _prefix: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        self.received = deque(maxlen=self.record)

    def next_id(self, kind: str) -> str:
        """A fresh id such as ``chatcmpl-sim1a2b3c4d000001`` (unique per app)."""
        return f"{kind}sim{self._prefix}{next(self._ids):06d}"

    def remember(self, request: Request, body: Any) -> None:
        if self.record:
            scope = request.scope
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = dict(request.query_params) if scope["query_string"] else {}
            self.received.append(Received(scope["method"], scope["path"], query, headers, body))


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def authorized(request: Request, key: str) -> bool:
    """True when any of the providers' ways of sending a key carries ``key``."""
    headers = request.headers
    return (
        headers.get("authorization") == f"Bearer {key}"
        or headers.get("x-api-key") == key
        or headers.get("x-goog-api-key") == key
        or headers.get("api-key") == key  # Azure OpenAI
        or request.query_params.get("key") == key
    )


async def begin(request: Request, sim: SimState, error: ErrorFn,
                refusal: Callable[[Request], str | None] | None = None
                ) -> dict[str, Any] | Response:
    """Count the request, check its credentials (the key, or ``refusal``: why they are not
    good enough, None when they are) and read the JSON body; a Response means "answer that"."""
    path = request.scope["path"]
    sim.requests[path] = sim.requests.get(path, 0) + 1
    why = refusal(request) if refusal is not None else (
        "Incorrect or missing API key." if sim.require_key is not None
        and not authorized(request, sim.require_key) else None)
    if why is not None:
        sim.remember(request, None)
        return error(401, why)
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        body: Any = parse_multipart(raw, content_type)
    else:
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            sim.remember(request, raw)
            return error(400, "The request body is not valid JSON.")
    sim.remember(request, body)
    if not isinstance(body, dict):
        return error(400, "The request body must be a JSON object.")
    return body


def make_plan(text: str, max_tokens: object, error: ErrorFn) -> Plan | Response:
    try:
        return plan(text, max_tokens)
    except DirectiveError as exc:
        return error(400, str(exc))


async def gate(directives: Directives, error: ErrorFn) -> Response | None:
    """Apply ``delay_ms``; answer ``status=N`` with an error (and ``retry_after`` header)."""
    if directives.delay_ms:
        await anyio.sleep(directives.delay_ms / 1000)
    if directives.status is None:
        return None
    response = error(directives.status, f"Simulated error (HTTP {directives.status}).")
    if directives.retry_after is not None:
        response.headers["retry-after"] = str(directives.retry_after)
    return response


def block_texts(content: Any, out: list[str]) -> None:
    """Collect the text of an OpenAI/Anthropic message content: a string or typed blocks."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                text = block.get("text")
                if isinstance(text, str):
                    out.append(text)
            elif isinstance(block, str):
                out.append(block)


class EventStream(Response):
    """A streamed body: ``head`` events, ``content`` events, ``tail`` events.

    Without a chunk delay everything is written at once. With ``break_after=N`` only the
    head and the first N content events are sent, then the connection is dropped without
    ending the chunked body, so the client sees an incomplete response.
    """

    def __init__(
        self,
        head: Sequence[bytes],
        content: Sequence[bytes],
        tail: Sequence[bytes],
        directives: Directives,
        sim: SimState,
        media_type: str = "text/event-stream",
    ) -> None:
        self.sim = sim
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", media_type.encode()),
            (b"cache-control", b"no-cache"),
        ]
        broken = directives.break_after is not None
        sent = content[: directives.break_after] if broken else content
        self.events = [*head, *sent] if broken else [*head, *sent, *tail]
        self.broken = broken
        self.delay = directives.chunk_delay_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.delay:
            # Paced: stop as soon as the client goes away instead of sleeping on.
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    self.sim.abandoned += 1
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await self._paced(send)
                group.cancel_scope.cancel()
        elif self.events:
            body = b"".join(self.events)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not self.broken:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # else: return with the body unfinished; the server closes the connection.

    async def _paced(self, send: Send) -> None:
        for i, event in enumerate(self.events):
            if i:
                await anyio.sleep(self.delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_NAME = re.compile(rb'(?<!file)name="([^"]*)"')
_FILENAME = re.compile(rb'filename="([^"]*)"')


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body (file parts give their file name)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        return {}
    fields: dict[str, str] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, value = part.partition(b"\r\n\r\n")
        name = _NAME.search(head)
        if not sep or name is None:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        filename = _FILENAME.search(head)
        raw = filename.group(1) if filename else value
        fields[name.group(1).decode("utf-8", "replace")] = raw.decode("utf-8", "replace")
    return fields
