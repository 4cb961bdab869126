"""How the gateway's endpoints are mounted: the proxied POST endpoints as plain Starlette routes
ahead of every other route, and all of them documented in the OpenAPI schema."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from meterline.gateway import routes

PROXIED = ["/v1/chat/completions", "/v1/embeddings", "/v1/images/generations",
           "/v1/audio/speech", "/v1/videos", "/v1/messages"]


def test_proxied_endpoints_are_plain_routes_ahead_of_the_rest():
    app = FastAPI()

    @app.post("/v1/{rest:path}")
    async def elsewhere() -> None:  # pragma: no cover - never reached for the proxied paths
        raise AssertionError

    routes.install(app)
    first = app.router.routes[:len(PROXIED)]
    assert [(type(route), route.path) for route in first] == [(Route, p) for p in PROXIED]
    assert all(isinstance(route, Route) and route.methods == {"POST"} for route in first)
    paths = app.openapi()["paths"]
    for path in PROXIED:
        assert paths[path]["post"]["summary"], path
    assert paths["/v1/models"]["get"]["summary"]


def test_proxied_endpoints_over_http(gateway):
    with gateway.http() as http:
        paths = http.get("/openapi.json").json()["paths"]
        assert all(paths[path]["post"]["summary"] for path in PROXIED)
        for path in PROXIED:
            wrong_method = http.get(path, headers=gateway.headers())
            assert wrong_method.status_code == 405, path
            refused = http.post(path, json={"model": "openai/gpt-5-nano"},
                                headers={"Authorization": "Bearer not-a-key"})
            assert refused.status_code == 401, path
            assert refused.headers["x-meterline-request-id"]
