"""Fake OAuth token endpoints: Google's (a service account's JWT bearer grant) and Entra ID's
(client credentials), and the check that a request carries a token they issued.

- ``POST /token`` (a service account key file's ``token_uri``): form
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``; the JWT must be
  signed with the key of a registered service account (``register_service_account``), its
  ``aud`` this endpoint and its ``scope`` Vertex AI's.
- ``POST /{tenant}/oauth2/v2.0/token`` (Entra ID): form ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``, ``scope=https://cognitiveservices.azure.com/.default``, for a
  registered application (``register_entra_app``).

Both answer ``{"access_token", "expires_in", "token_type": "Bearer"}`` (``expires_in`` is
``TokenIssuer.expires_in``) and errors as the real ones do (``{"error", "error_description"}``).
Each identity has one *current* token: a new one replaces it, so a request with a token that
was replaced is refused, and a test sees that the newest token is sent. ``issued`` counts the
tokens per identity. ``EntraGate`` wraps the simulator so that Azure OpenAI's paths take only a
current Entra ID token (start the simulator without ``require_key`` behind it).
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from meterline.simulator.common import json_response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
VERTEX_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"


@dataclass
class TokenIssuer:
    """The identities the token endpoints know, and the tokens they issued."""

    #: Seconds a token is said to live.
    expires_in: int = 3600
    #: client_email -> the service account's public key (PEM).
    service_accounts: dict[str, bytes] = field(default_factory=dict)
    #: (tenant, client_id) -> client secret.
    entra_apps: dict[tuple[str, str], str] = field(default_factory=dict)
    #: identity ("google:<email>", "entra:<tenant>/<client>") -> its current token.
    current: dict[str, str] = field(default_factory=dict)
    issued: Counter[str] = field(default_factory=Counter)
    _owners: dict[str, str] = field(default_factory=dict)

    def register_service_account(self, email: str, public_key_pem: bytes) -> None:
        self.service_accounts[email] = public_key_pem

    def register_entra_app(self, tenant: str, client_id: str, secret: str) -> None:
        self.entra_apps[tenant, client_id] = secret

    def issue(self, identity: str) -> dict[str, Any]:
        token = f"sim-{identity.split(':', 1)[0]}-{secrets.token_urlsafe(18)}"
        self.current[identity] = token
        self._owners[token] = identity
        self.issued[identity] += 1
        return {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def identity(self, authorization: str | None, kind: str) -> str | None:
        """The identity (of ``kind``: "google", "entra") whose current token the header
        carries; None for a missing, unknown or replaced token."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[7:].strip()
        owner = self._owners.get(token)
        if owner is None or not owner.startswith(f"{kind}:") or self.current[owner] != token:
            return None
        return owner


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def token_routes(issuer: TokenIssuer) -> list[Route]:
    async def google(request: Request) -> Response:
        # Imported here: only this endpoint verifies a JWT.
        from google.auth import jwt

        form = await _form(request)
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        try:
            claims = jwt.decode(form["assertion"], verify=False)  # type: ignore[no-untyped-call]
            key = issuer.service_accounts.get(str(claims.get("iss")))
            if key is None:
                return _oauth_error(400, "invalid_grant", "Invalid grant: account not found")
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                form["assertion"], certs=key.decode(), clock_skew_in_seconds=10)
        except ValueError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        # google-auth names Google's endpoint as the audience, whatever the key file's uri.
        if str(claims.get("aud", "")).rstrip("/") not in (GOOGLE_TOKEN_URI,
                                                          str(request.url).rstrip("/")):
            return _oauth_error(400, "invalid_grant", "Invalid JWT: audience is not this "
                                "token endpoint.")
        if VERTEX_SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope.")
        return json_response(issuer.issue(f"google:{claims['iss']}"))

    async def entra(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = await _form(request)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "AADSTS70003: The app requested "
                                "an unsupported grant type.")
        if form.get("scope") != AZURE_SCOPE:
            return _oauth_error(400, "invalid_scope", "AADSTS70011: The provided scope is "
                                "not valid.")
        client = form.get("client_id", "")
        secret = issuer.entra_apps.get((tenant, client))
        if secret is None:
            return _oauth_error(400, "unauthorized_client", f"AADSTS700016: Application "
                                f"{client!r} was not found in the directory {tenant!r}.")
        if not secrets.compare_digest(form.get("client_secret", ""), secret):
            return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret "
                                "provided.")
        return json_response(issuer.issue(f"entra:{tenant}/{client}"))

    return [Route("/token", google, methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/token", entra, methods=["POST"])]


class EntraGate:
    """Azure OpenAI's paths (``/openai/…``) answered only with a current Entra ID token; 401
    in Azure's shape otherwise (the rest of the simulator as it is)."""

    def __init__(self, app: ASGIApp, issuer: TokenIssuer) -> None:
        self.app = app
        self.issuer = issuer
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/openai/"):
            headers = dict(scope["headers"])
            header = headers.get(b"authorization", b"").decode("latin-1")
            if self.issuer.identity(header, "entra") is None:
                self.refused += 1
                refusal = json_response({"error": {"code": "401", "message": "Unauthorized. "
                                         "Access token is missing, invalid, audience is "
                                         "incorrect, or have expired."}}, 401)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
