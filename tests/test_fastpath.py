"""The proxied calls' fast path (meterline/asgi/fastpath.py): a POST to a proxied path reaches
its endpoint without the router, errors are answered from the app's exception handlers, and
everything else - other methods, other paths, paths with parameters - goes on to the app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient

from meterline.asgi.fastpath import ProxiedCalls
from meterline.errors import InvalidInput


class Refused(Exception):
    """An error with a handler of its own."""


def make_app() -> tuple[FastAPI, list[str]]:
    seen: list[str] = []

    async def direct(request: Request) -> Response:
        seen.append(f"direct {request.url.path} {await request.body()!r}")
        if request.headers.get("x-fail") == "handled":
            raise Refused("no")
        if request.headers.get("x-fail") == "meterline":
            raise InvalidInput("bad", field="x")
        if request.headers.get("x-fail") == "unexpected":
            raise RuntimeError("boom")
        return PlainTextResponse("direct")

    async def templated(request: Request) -> Response:  # pragma: no cover - never called
        raise AssertionError("a path with parameters went past the router")

    app = FastAPI()

    async def on_refused(_: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"refused: {exc}", status_code=409)

    async def on_meterline(_: Request, exc: Exception) -> Response:
        return PlainTextResponse("meterline error", status_code=400)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        return PlainTextResponse("internal", status_code=500)

    app.add_exception_handler(Refused, on_refused)
    app.add_exception_handler(InvalidInput, on_meterline)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_middleware(ProxiedCalls, endpoints={"/v1/direct": direct,
                                                "/v1/t/{name}": templated}, owner=app)

    @app.post("/v1/direct")
    async def routed_post() -> Any:  # pragma: no cover - the fast path answers first
        raise AssertionError("the router answered a proxied POST")

    @app.get("/v1/direct")
    async def routed_get() -> Any:
        seen.append("router GET")
        return {"via": "router"}

    @app.post("/v1/t/{name}")
    async def routed_template(name: str) -> Any:
        seen.append(f"router template {name}")
        return {"name": name}

    return app, seen


def test_a_proxied_post_reaches_its_endpoint_directly() -> None:
    app, seen = make_app()
    with TestClient(app) as http:
        answer = http.post("/v1/direct", content=b"body")
    assert (answer.status_code, answer.text) == (200, "direct")
    assert seen == ["direct /v1/direct b'body'"]


def test_other_methods_and_paths_with_parameters_go_through_the_router() -> None:
    app, seen = make_app()
    with TestClient(app) as http:
        assert http.get("/v1/direct").json() == {"via": "router"}
        assert http.post("/v1/t/x").json() == {"name": "x"}
        assert http.post("/v1/elsewhere").status_code == 404
    assert seen == ["router GET", "router template x"]


def test_errors_are_answered_by_the_apps_handlers() -> None:
    app, _ = make_app()
    with TestClient(app, raise_server_exceptions=False) as http:
        handled = http.post("/v1/direct", headers={"x-fail": "handled"})
        assert (handled.status_code, handled.text) == (409, "refused: no")
        # Looked up by class, the nearest base first (InvalidInput's own handler).
        meterline = http.post("/v1/direct", headers={"x-fail": "meterline"})
        assert (meterline.status_code, meterline.text) == (400, "meterline error")
        # No handler of its own: the server-error layer outside answers, as for any route.
        unexpected = http.post("/v1/direct", headers={"x-fail": "unexpected"})
        assert (unexpected.status_code, unexpected.text) == (500, "internal")
