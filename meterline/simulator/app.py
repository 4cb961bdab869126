"""The simulator app: all providers' routes on one Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.simulator.anthropic import anthropic_error, anthropic_routes
from meterline.simulator.batches import batches_routes
from meterline.simulator.common import SimState, begin, json_response
from meterline.simulator.gemini import gemini_routes
from meterline.simulator.openai import chat_routes, openai_error
from meterline.simulator.openai_media import media_routes
from meterline.simulator.responses import responses_routes
from meterline.simulator.tokens import TokenIssuer, token_routes
from meterline.simulator.vertex import vertex_routes

OPENAI_MODELS = (
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
    "gpt-4.1-nano",
    "text-embedding-3-small",
    "gpt-image-1",
    "tts-1",
    "sora-2",
    "deepseek-chat",
    "deepseek-reasoner",
)
"""What ``GET /v1/models`` lists (any model name is accepted by the other endpoints)."""
ANTHROPIC_MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6")
_EPOCH = 1_700_000_000


def _model_routes(sim: SimState) -> list[Route]:
    async def models(request: Request) -> Response:
        # Anthropic's SDK lists models on the same path; it always sends anthropic-version.
        if "anthropic-version" in request.headers:
            body = await begin(request, sim, anthropic_error)
            if isinstance(body, Response):
                return body
            listed = [
                {
                    "type": "model",
                    "id": name,
                    "display_name": name,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for name in ANTHROPIC_MODELS
            ]
            first, last = ANTHROPIC_MODELS[0], ANTHROPIC_MODELS[-1]
            return json_response(
                {"data": listed, "has_more": False, "first_id": first, "last_id": last}
            )
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        owners = {"deepseek": "deepseek"}
        data: list[dict[str, object]] = [
            {
                "id": name,
                "object": "model",
                "created": _EPOCH,
                "owned_by": owners.get(name.split("-")[0], "openai"),
            }
            for name in OPENAI_MODELS
        ]
        return json_response({"object": "list", "data": data})

    return [Route("/v1/models", models, methods=["GET"])]


def create_simulator(require_key: str | None = None, record: int = 64) -> Starlette:
    """A new simulated upstream (see the package docstring for endpoints and directives).

    ``require_key``: when set, a request must carry it (``Authorization: Bearer``,
    ``x-api-key``, ``x-goog-api-key`` or ``?key=``) or gets a 401 in its provider's shape.
    ``record``: how many recent requests ``app.state.received`` keeps (0: none).

    ``app.state.requests`` counts requests per path (every request, answered or refused);
    ``app.state.received`` holds the last ones as ``Received`` (method, path, query, headers,
    parsed body); ``app.state.sim`` is the whole ``SimState``; ``app.state.tokens`` the
    ``TokenIssuer`` of the fake OAuth endpoints (register service accounts and Entra ID
    applications there).
    """
    sim = SimState(require_key=require_key, record=record)
    # Vertex AI takes a token from the fake token endpoints, never the key (simulator/tokens.py).
    issuer = TokenIssuer()
    routes = [
        *chat_routes(sim),
        *responses_routes(sim),
        *anthropic_routes(sim),
        *media_routes(sim),
        *_model_routes(sim),
        *gemini_routes(sim),
        *batches_routes(sim),
        *vertex_routes(sim, issuer),
        *token_routes(issuer),
    ]
    app = Starlette(routes=routes)
    app.state.sim = sim
    app.state.tokens = issuer
    app.state.requests = sim.requests
    app.state.received = sim.received
    return app
