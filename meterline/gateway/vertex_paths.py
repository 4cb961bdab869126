"""Vertex AI's own paths on the gateway, for clients written against Vertex AI: the
``google-genai`` SDK with ``vertexai=True`` and Anthropic's ``AnthropicVertex``, their base URL
set to the gateway, authenticated with a meterline key.

``POST /{v1|v1beta1}/projects/{project}/locations/{location}/publishers/{publisher}/models/
{model}:{action}`` (and the same without ``projects/…/locations/…``, google-genai's express
mode). Google's models (``generateContent``, ``streamGenerateContent?alt=sse``) become a call
of the gateway's Gemini endpoint, Anthropic's (``rawPredict``, ``streamRawPredict``) one of its
Messages endpoint, both for the model at a configured ``kind = "vertex"`` provider: the one the
path's project names, else the only one configured. The client's project and location are
otherwise not used: the provider's are (the gateway holds the service account).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Message

from meterline.config import ProviderConfig
from meterline.errors import InvalidInput, NotFound
from meterline.gateway.calls import authenticate
from meterline.gateway.state import GatewayState
from meterline.providers import vertex

#: The routes (Starlette paths) of Vertex AI's model actions: v1 and v1beta1 (google-genai's
#: default), with or without a project and location.
PATHS = tuple(f"/{version}/{scope}publishers/{{publisher}}/models/{{model}}:{{action}}"
              for version in ("v1", "v1beta1")
              for scope in ("projects/{project}/locations/{location}/", ""))


def is_anthropic(path: str) -> bool:
    """A path whose client speaks Anthropic's wire format (errors in Anthropic's shape)."""
    return "/publishers/anthropic/models/" in path


def _provider(state: GatewayState, project: str | None) -> ProviderConfig:
    served = {p.name: p for p in state.router.providers.values() if p.kind == "vertex"}
    if project in served:
        return served[project]
    if len(served) == 1:
        return next(iter(served.values()))
    if not served:
        raise NotFound("no Vertex AI provider (kind = \"vertex\") is configured")
    raise InvalidInput(f"project: several Vertex AI providers are configured "
                       f"({', '.join(sorted(served))}); name one as the project "
                       "(projects/<provider>/locations/…)", field="project")


async def vertex_request(state: GatewayState, request: Request) -> tuple[Request, str]:
    """The request as the gateway endpoint that serves it takes it, and that endpoint."""
    # A stranger learns nothing of the configuration (which providers there are) before 401.
    await authenticate(state, request)
    params = request.path_params
    publisher, model, action = params["publisher"], params["model"], params["action"]
    qualified = f"{_provider(state, params.get('project')).name}/{model}"
    if publisher == vertex.GOOGLE:
        if action not in vertex.ACTIONS[vertex.GOOGLE]:
            raise NotFound(f"models/…:{action} is not served by the gateway (generateContent "
                           "and streamGenerateContent are)")
        if action == "streamGenerateContent" and request.query_params.get("alt") != "sse":
            raise InvalidInput("alt: the gateway streams Gemini's answers as server-sent "
                               "events: call streamGenerateContent with ?alt=sse", field="alt")
        scope = {**request.scope, "path_params": {"model": qualified, "action": action}}
        return Request(scope, request.receive), "gemini"
    if publisher == vertex.ANTHROPIC:
        if action not in vertex.ACTIONS[vertex.ANTHROPIC]:
            raise NotFound(f"models/…:{action} is not served by the gateway (rawPredict and "
                           "streamRawPredict are)")
        body = await _json_object(request)
        # The Messages endpoint reads the model from the body, and the path says whether to
        # stream.
        body["model"] = qualified
        if action == "streamRawPredict":
            body["stream"] = True
        else:
            body.pop("stream", None)
        return Request(request.scope, _replaying(orjson.dumps(body), request)), "messages"
    raise NotFound(f"publishers/{publisher}: the gateway serves Google's and Anthropic's "
                   "models on Vertex AI (publishers/google, publishers/anthropic)")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("body: must be a JSON object", field="body")
    return body


def _replaying(data: bytes, request: Request) -> Any:
    """An ASGI ``receive`` that gives ``data`` as the body, then the client's own messages (its
    disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await request.receive()

    return receive
