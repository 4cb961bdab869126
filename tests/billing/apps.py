"""Serving for the tests that drive syncs as a user does: the meterline app over HTTP with a
fixed clock, several fake providers at once, a fake whose answers wait for the test, and a
webhook receiver that keeps what the alert loop sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from meterline.api.app import create_app
from meterline.config import Config
from meterline.simulator import serve_in_thread
from tests.billing.data import NOW, Case
from tests.billing.fakes import Account
from tests.conftest import ADMIN, LiveServer


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until ``condition()`` is truthy; the deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return found


@contextmanager
def meterline(config: Config, **options: Any) -> Iterator[httpx.Client]:
    """The app of ``config`` served over HTTP, its clock at ``NOW``; a client with the admin
    token. ``options`` go to ``create_app`` (``intervals`` of its loops)."""
    app = create_app(config, clock=lambda: NOW, **options)
    with LiveServer(app) as url, httpx.Client(base_url=url, headers=ADMIN, timeout=60) as http:
        yield http


def finished(http: httpx.Client, run_id: int) -> dict[str, Any]:
    """The run once it is no longer running."""
    def done() -> dict[str, Any] | None:
        found: dict[str, Any] = http.get(f"/api/sync/{run_id}").json()
        return found if found["status"] != "running" else None
    result: dict[str, Any] = wait_for(done)
    return result


@contextmanager
def fakes(*cases: tuple[Case, Account]) -> Iterator[list[str]]:
    """Each case's fake serving its account; their URLs in order."""
    with ExitStack() as stack:
        yield [stack.enter_context(serve_in_thread(case.app(account)))
               for case, account in cases]


class Gate:
    """A fake whose requests wait until the test opens the gate (``arrived`` tells when the
    first one came): a sync the test can watch while it runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.open = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.arrived.set()
            await anyio.to_thread.run_sync(self.open.wait)
        await self.app(scope, receive, send)


class Receiver:
    """A webhook receiving the alert loop's JSON payloads."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

        async def hook(request: Request) -> Response:
            self.bodies.append(orjson.loads(await request.body()))
            return Response("ok")

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def kinds(self) -> set[str]:
        return {str(body["kind"]) for body in self.bodies}
