"""The simulator's Vertex AI routes and fake OAuth token endpoints: tokens from google-auth's
own service account flow and Entra ID's client credentials grant; only the current token is
taken, never an API key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth.exceptions
import httpx
import orjson
import pytest
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account as google_sa
from starlette.applications import Starlette

from meterline.simulator import create_simulator, serve_in_thread
from meterline.simulator.tokens import AZURE_SCOPE, EntraGate, TokenIssuer
from tests.service_accounts import ServiceAccount, service_account

KEY = "sk-upstream"
BASE = "/v1/projects/proj-1/locations/us-central1/publishers"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Starlette]]:
    app = create_simulator(require_key=KEY)
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def url(served: tuple[str, Starlette]) -> str:
    return served[0]


@pytest.fixture
def issuer(served: tuple[str, Starlette]) -> TokenIssuer:
    found: TokenIssuer = served[1].state.tokens
    return found


@pytest.fixture
def account(tmp_path: Path, url: str, issuer: TokenIssuer) -> ServiceAccount:
    made = service_account(tmp_path, f"{url}/token")
    issuer.register_service_account(made.email, made.public_key)
    return made


def google_token(account: ServiceAccount) -> str:
    """A token as google-auth fetches it (the JWT bearer grant at the key file's token_uri)."""
    credentials = google_sa.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(account.path), scopes=SCOPES)
    credentials.refresh(GoogleRequest())
    assert isinstance(credentials.token, str)
    return credentials.token


def post(url: str, path: str, token: str | None, body: dict[str, Any],
         **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}{path}", json=body, headers=headers, params=params, timeout=10)


GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi [[sim tokens=3 cached=2]]"}]}]}
CLAUDE_BODY = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 50,
               "messages": [{"role": "user", "content": "hi there [[sim tokens=4 cache_write=3]]"}]}


def test_gemini_on_vertex_takes_a_service_account_token(url: str, account: ServiceAccount,
                                                       issuer: TokenIssuer) -> None:
    token = google_token(account)
    assert issuer.issued[f"google:{account.email}"] == 1
    answer = post(url, f"{BASE}/google/models/gemini-2.5-flash:generateContent", token,
                  GEMINI_BODY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usageMetadata"]["promptTokenCount"] == 1 + 2
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"] == "lorem ipsum dolor"
    streamed = post(url, f"{BASE}/google/models/gemini-2.5-flash:streamGenerateContent",
                    token, GEMINI_BODY, alt="sse")
    events = [orjson.loads(e[6:]) for e in streamed.text.strip().split("\r\n\r\n")]
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 3


def test_no_token_a_key_or_a_replaced_token_is_refused(url: str, account: ServiceAccount) -> None:
    path = f"{BASE}/google/models/gemini-2.5-flash:generateContent"
    assert post(url, path, None, GEMINI_BODY).status_code == 401
    refused = post(url, path, KEY, GEMINI_BODY)  # the simulator's API key is no token
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
    old = google_token(account)
    new = google_token(account)
    assert post(url, path, old, GEMINI_BODY).status_code == 401
    assert post(url, path, new, GEMINI_BODY).status_code == 200


def test_the_token_endpoint_refuses_an_unknown_account(tmp_path: Path, url: str) -> None:
    stranger = service_account(tmp_path, f"{url}/token")  # never registered
    with pytest.raises(google.auth.exceptions.RefreshError, match="account not found"):
        google_token(stranger)


def test_claude_on_vertex_raw_predict(url: str, account: ServiceAccount) -> None:
    token = google_token(account)
    path = f"{BASE}/anthropic/models/claude-sonnet-4-5@20250929"
    answer = post(url, f"{path}:rawPredict", token, CLAUDE_BODY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "claude-sonnet-4-5@20250929"
    assert (body["usage"]["input_tokens"], body["usage"]["cache_creation_input_tokens"],
            body["usage"]["output_tokens"]) == (2, 3, 4)
    streamed = post(url, f"{path}:streamRawPredict", token, CLAUDE_BODY)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "event: message_stop" in streamed.text
    unversioned = {k: v for k, v in CLAUDE_BODY.items() if k != "anthropic_version"}
    wrong = post(url, f"{path}:rawPredict", token, unversioned)
    assert wrong.status_code == 400 and wrong.json()["type"] == "error"
    assert post(url, f"{path}:rawPredict", None, CLAUDE_BODY).json()["error"]["type"] == \
        "authentication_error"


def entra_token(url: str, tenant: str, client: str, secret: str) -> httpx.Response:
    return httpx.post(f"{url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client, "client_secret": secret,
        "scope": AZURE_SCOPE}, timeout=10)


def test_entra_client_credentials(url: str, issuer: TokenIssuer) -> None:
    issuer.register_entra_app("tenant-1", "app-1", "s3cret")
    granted = entra_token(url, "tenant-1", "app-1", "s3cret")
    assert granted.status_code == 200
    assert granted.json()["token_type"] == "Bearer" and granted.json()["expires_in"] == 3600
    assert issuer.identity(f"Bearer {granted.json()['access_token']}", "entra") == \
        "entra:tenant-1/app-1"
    # An Entra ID token is not Google's.
    assert issuer.identity(f"Bearer {granted.json()['access_token']}", "google") is None
    bad = entra_token(url, "tenant-1", "app-1", "wrong")
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")
    unknown = entra_token(url, "tenant-2", "app-1", "s3cret")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unauthorized_client")


def test_the_entra_gate_guards_azure_paths() -> None:
    app = create_simulator()
    issuer: TokenIssuer = app.state.tokens
    issuer.register_entra_app("t", "c", "s")
    gate = EntraGate(app, issuer)
    with serve_in_thread(gate) as url:
        path = "/openai/deployments/prod/chat/completions"
        body = {"model": "prod", "messages": [{"role": "user", "content": "hi"}]}
        token = entra_token(url, "t", "c", "s").json()["access_token"]
        assert post(url, path, None, body, **{"api-version": "2024-10-21"}).status_code == 401
        assert post(url, path, token, body, **{"api-version": "2024-10-21"}).status_code == 200
        entra_token(url, "t", "c", "s")  # a new token replaces it
        assert post(url, path, token, body, **{"api-version": "2024-10-21"}).status_code == 401
    assert gate.refused == 2
