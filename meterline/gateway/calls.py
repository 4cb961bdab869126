"""Turning an incoming request into an upstream request: auth, model, user, tags, body.

Everything here happens before the provider is called and needs no database round trip once
the key is cached. Bodies pass through unchanged except ``model`` (the upstream's id) and, for
streamed OpenAI-format chat, ``stream_options.include_usage``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from meterline.config import ProviderConfig
from meterline.domain.events import MAX_USER_LENGTH, metadata_object
from meterline.errors import AuthError, Forbidden, InvalidInput, UserNotAllowed
from meterline.gateway.idempotency import MAX_KEY
from meterline.gateway.recorder import Call
from meterline.gateway.routing import Target
from meterline.gateway.state import GatewayState
from meterline.logs import request_id
from meterline.store.accounts import ApiKey

#: The ledger's limits (usage_records.event_id and .model).
MAX_EVENT_ID = 200
MAX_MODEL = 200
#: endpoint -> (client wire format, upstream path for an OpenAI-kind provider)
ENDPOINTS: Mapping[str, tuple[str, str]] = {
    "chat": ("openai", "/chat/completions"),
    "embeddings": ("openai", "/embeddings"),
    "images": ("openai", "/images/generations"),
    "speech": ("openai", "/audio/speech"),
    "videos": ("openai", "/videos"),
    "messages": ("anthropic", "/v1/messages"),
    "responses": ("openai", "/responses"),
    # Gemini's own API passed through: the path names the model and the action.
    "gemini": ("gemini", "/v1beta/models"),
}
#: Which provider kinds can serve which endpoint (Gemini through translation, chat only).
SERVES: Mapping[str, tuple[str, ...]] = {
    "chat": ("openai", "gemini"), "embeddings": ("openai",), "images": ("openai",),
    "speech": ("openai",), "videos": ("openai",), "messages": ("anthropic",),
    "responses": ("openai",), "gemini": ("gemini",),
}


@dataclass
class Incoming:
    """A client request, checked and resolved, ready to be sent upstream."""

    call: Call
    key: ApiKey
    target: Target
    body: dict[str, Any]
    stream: bool
    client_wants_usage: bool
    form: Form | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: A Responses API answer's id (kept so that only this tenant reaches it), and whether it
    #: is a background response still to be billed when it completes (gateway/responses.py).
    response_id: str | None = None
    response_pending: bool = False

    @property
    def provider(self) -> ProviderConfig:
        return self.target.provider


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        secret = header[7:].strip()
        if secret:
            return secret
    # x-goog-api-key: Google's SDKs, on Gemini's own API.
    secret = request.headers.get("x-api-key", "") or request.headers.get("x-goog-api-key", "")
    if not secret:
        raise AuthError("missing API key: send Authorization: Bearer <key> or x-api-key")
    return secret


async def authenticate(state: GatewayState, request: Request) -> ApiKey:
    secret = presented_key(request)
    key = state.keys.cached(secret)
    if key is None:
        key = await run_in_threadpool(state.keys.load, secret)
    return key


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(rb';\s*(name|filename)="([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FormPart:
    head: bytes
    name: str
    filename: str | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Form:
    """A multipart/form-data body, kept part by part so that it can be sent upstream as it came
    (files included) with only the ``model`` field changed."""

    boundary: bytes
    parts: tuple[FormPart, ...]

    @property
    def fields(self) -> dict[str, str]:
        """The text fields (not the files)."""
        return {p.name: p.value.decode("utf-8", "replace") for p in self.parts
                if p.filename is None}

    def replacing(self, name: str, value: str) -> tuple[bytes, str]:
        """The body with field ``name`` set to ``value``, and its content type."""
        delimiter = b"--" + self.boundary
        out = []
        for part in self.parts:
            body = value.encode() if part.name == name and part.filename is None else part.value
            out += [delimiter, b"\r\n", part.head, b"\r\n\r\n", body, b"\r\n"]
        out += [delimiter, b"--\r\n"]
        return b"".join(out), f"multipart/form-data; boundary={self.boundary.decode()}"


def parse_form(raw: bytes, content_type: str) -> Form:
    """Split a multipart/form-data body into its parts; InvalidInput if it is not one."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise InvalidInput("body: multipart/form-data without a boundary", field="body")
    boundary = match.group(1).encode()
    chunks = raw.split(b"--" + boundary)
    parts: list[FormPart] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return Form(boundary, tuple(parts))
        head, sep, value = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        params = {k.lower(): v for k, v in _PARAM.findall(head)}
        if not sep or not value.endswith(b"\r\n") or b"name" not in params:
            break
        filename = params.get(b"filename")
        parts.append(FormPart(head, params[b"name"].decode("utf-8", "replace"),
                              filename.decode("utf-8", "replace") if filename is not None
                              else None, value[:-2]))
    raise InvalidInput("body: not a well-formed multipart/form-data body", field="body")


async def read_body(request: Request, endpoint: str
                    ) -> tuple[dict[str, Any], Form | None]:
    """The JSON body (or, for videos, the multipart form: its text fields, and the form)."""
    content_type = request.headers.get("content-type", "")
    raw = await request.body()  # bounded while it was read (api/bodies.py)
    if endpoint == "videos" and content_type.startswith("multipart/form-data"):
        form = parse_form(raw, content_type)
        return form.fields, form
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("body: must be a JSON object", field="body")
    return body, None


def request_tags(request: Request) -> list[str] | None:
    raw = request.headers.get("x-meterline-tags")
    if not raw:
        return None
    return [t.strip() for t in raw.split(",") if t.strip()] or None


def request_metadata(request: Request) -> dict[str, Any] | None:
    raw = request.headers.get("x-meterline-metadata")
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("x-meterline-metadata: must be a JSON object",
                           field="x-meterline-metadata")
    # Checked now, like everything journaled: a value the journal refused after the upstream
    # answered would leave a paid call unrecorded.
    return metadata_object(value, "x-meterline-metadata")


def bound_user(request: Request, key: ApiKey) -> str | None:
    """The call's user: the key's own if it is bound to one (a header naming another is
    refused, or a user's budget could be bypassed), else the ``x-meterline-user`` header."""
    named = request.headers.get("x-meterline-user") or None
    if key.user_id is not None:
        if named is not None and named != key.user_id:
            raise UserNotAllowed(
                f"x-meterline-user: this key is bound to user {key.user_id!r} and cannot call "
                f"as {named!r}; leave the header out or use an unbound key",
                field="x-meterline-user", user=key.user_id)
        return key.user_id
    if named is not None and (len(named) > MAX_USER_LENGTH or "\x00" in named):
        raise InvalidInput(f"x-meterline-user: at most {MAX_USER_LENGTH} characters",
                           field="x-meterline-user")
    return named


def key_allows(key: ApiKey, requested: str, target: Target) -> bool:
    if not key.models:
        return True
    names = {requested, target.model, f"{target.provider.name}/{target.upstream_model}"}
    if "/" not in target.upstream_model:
        # A bare name on the key allows that model at any provider; a name with a provider
        # (an aggregator's "openai/gpt-5-nano") allows only that provider's model.
        names.add(target.upstream_model)
    return any(name in key.models for name in names)


async def prepare(state: GatewayState, request: Request, endpoint: str) -> Incoming:
    started = datetime.now(UTC)
    key = await authenticate(state, request)
    body, form = await read_body(request, endpoint)
    model = request.path_params.get("model") if endpoint == "gemini" else body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model: missing (a string such as openai/gpt-5-nano)", field="model")
    idempotency_key = request.headers.get("idempotency-key") or None
    # What the ledger cannot store is refused now, before the provider is paid for a call
    # whose record the database would then refuse.
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY:
        raise InvalidInput(f"Idempotency-Key: longer than {MAX_KEY} characters",
                           field="Idempotency-Key")
    book, _ = state.metering.snapshot()
    target = state.router.resolve(model, book)
    if len(target.model) > MAX_MODEL:
        raise InvalidInput(f"model: longer than {MAX_MODEL} characters", field="model")
    if not key_allows(key, model, target):
        raise Forbidden(f"this key may not use {model!r}", model=model)
    if target.provider.wire not in SERVES[endpoint]:
        raise InvalidInput(f"model: {model!r} is served by a {target.provider.wire}-format "
                           f"provider, which does not serve this endpoint", field="model")
    user = bound_user(request, key)
    tenant = await state.tenant(key.tenant_id)
    metadata = request_metadata(request)
    stream = (bool(body.get("stream")) and endpoint in ("chat", "messages", "responses")) \
        or request.path_params.get("action") == "streamGenerateContent"
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    call = Call(
        request_id=request_id(), tenant_id=key.tenant_id, tenant_currency=tenant.currency,
        key_id=key.id, user_id=user, requested_model=model,
        model=target.model, provider=target.provider.name, endpoint=endpoint,
        started_at=started, tags=request_tags(request), metadata=metadata,
        event_id=idempotency_key, tenant_timezone=tenant.timezone,
    )
    headers = {k: v for k, v in request.headers.items()}
    return Incoming(call, key, target, body, stream, wants_usage, form, headers)
