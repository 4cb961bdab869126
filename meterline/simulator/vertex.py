"""Google Vertex AI: Google's and Anthropic's models at their publisher paths, for a current
OAuth token of a service account (simulator/tokens.py) - never an API key.

``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}``
(``generateContent``, ``streamGenerateContent``, ``countTokens``) answers as the Gemini
simulator does; ``…/publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``
as the Anthropic simulator does for the model in the path, and require an
``anthropic_version`` in the body (``vertex-2023-10-16``, or the version the client names).
The answers are those simulators' own (their directives included): the request is checked
here, then handed to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from meterline.simulator.anthropic import anthropic_error, anthropic_routes
from meterline.simulator.common import SimState, begin
from meterline.simulator.gemini import gemini_error, gemini_routes
from meterline.simulator.tokens import TokenIssuer

ANTHROPIC_VERSION = "vertex-2023-10-16"
PATH = "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}"


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(routes: list[Route], path: str) -> Handler:
    found: Handler = next(route.endpoint for route in routes if route.path == path)
    return found


def _handing(request: Request, path_params: dict[str, str], body: bytes) -> Request:
    """The request as the Gemini or Anthropic simulator takes it: its body already read here."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request({**request.scope, "path_params": path_params}, receive)


def vertex_routes(sim: SimState, issuer: TokenIssuer) -> list[Route]:
    # The answering simulators check no key and record nothing: this route does both.
    inner = SimState(record=0)
    gemini = _endpoint(gemini_routes(inner), "/v1beta/models/{target}")
    anthropic = _endpoint(anthropic_routes(inner), "/v1/messages")

    def refusal(request: Request) -> str | None:
        if issuer.identity(request.headers.get("authorization"), "google") is not None:
            return None
        return ("Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.")

    async def model_action(request: Request) -> Response:
        publisher = request.path_params["publisher"]
        error = anthropic_error if publisher == "anthropic" else gemini_error
        body = await begin(request, sim, error, refusal)
        if isinstance(body, Response):
            return body
        raw = await request.body()  # read once by begin, kept by the request
        model, _, action = request.path_params["target"].rpartition(":")
        if publisher == "google":
            return await gemini(_handing(request, {"target": f"{model}:{action}"}, raw))
        if publisher != "anthropic" or action not in ("rawPredict", "streamRawPredict"):
            return error(404, f"Publisher model {publisher}/{model}:{action} is not served.")
        version = body.get("anthropic_version")
        if not isinstance(version, str) or not version:
            return error(400, f"anthropic_version: Field required (such as "
                              f"{ANTHROPIC_VERSION!r})")
        # The model is the path's; the action, not the body, decides whether it streams.
        handed = {**body, "model": model, "stream": action == "streamRawPredict"}
        return await anthropic(_handing(request, {}, orjson.dumps(handed)))

    return [Route(PATH, model_action, methods=["POST"])]
