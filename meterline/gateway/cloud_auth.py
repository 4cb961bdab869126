"""OAuth bearer tokens for the providers that take no API key: Vertex AI (a Google service
account's tokens, through google-auth) and Azure OpenAI with Entra ID (client credentials).

A token is fetched on a provider's first call, kept, and fetched again once less than
``REFRESH_MARGIN`` of its life is left (half its life for short-lived tokens), so calls do not
wait for a token in the common case. Providers with the same service account (or Entra ID
application) share its token, and one fetch runs at a time for it: calls arriving meanwhile
wait for that fetch rather than fetch too. google-auth is synchronous (it signs a JWT and
POSTs it with ``requests``): its refresh runs in a worker thread, never on the event loop.

A failed fetch is the provider's failure (``UpstreamError``, HTTP 502, saying which token
endpoint failed and why), never a 500; while the previous token is still valid it is used, and
the fetch retried no sooner than ``RETRY_SECONDS`` later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from meterline.config import AZURE_SCOPE, VERTEX_SCOPE, EntraApp, ProviderConfig, VertexAccount
from meterline.errors import UpstreamError

log = logging.getLogger("meterline.gateway")

#: A token is renewed when less than this much of its life is left (Google's own libraries
#: renew 3 min 45 s before expiry, Azure's 5 min).
REFRESH_MARGIN = 300.0
#: After a failed renewal, while the old token is still valid, the next attempt waits this long.
RETRY_SECONDS = 5.0
#: The longest wait for a token endpoint (google-auth's own default is 120 s).
TOKEN_TIMEOUT = 30.0

#: What a token source fetches: the token and the seconds it is valid for.
Fetch = Callable[[], Awaitable[tuple[str, float]]]


class CachedToken:
    """A provider's current bearer token; ``clock`` (monotonic seconds) may be replaced, so
    that tests move time instead of waiting for it."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.clock = clock
        #: Tokens fetched so far (for tests and the log).
        self.fetches = 0
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._pending: asyncio.Future[str] | None = None

    async def token(self) -> str:
        if self._token is not None and self.clock() < self._refresh_at:
            return self._token
        if self._pending is None:
            task = asyncio.get_running_loop().create_task(self._renew())
            # Read its outcome even if every caller went away meanwhile (no "never retrieved").
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._pending = task
        try:
            # Shielded: a caller that goes away does not cancel the fetch the others wait for.
            return await asyncio.shield(self._pending)
        except UpstreamError as exc:
            if self._token is not None and self.clock() < self._expires_at:
                log.warning("%s; the current token is still valid and is used", exc.message)
                return self._token
            raise

    async def _renew(self) -> str:
        started = self.clock()
        try:
            token, lifetime = await self.fetch()
        except UpstreamError:
            self._refresh_at = min(started + RETRY_SECONDS, self._expires_at)
            raise
        finally:
            self._pending = None
        self.fetches += 1
        self._token = token
        self._expires_at = started + lifetime
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 2)
        return token


def _message(exc: BaseException) -> str:
    """google-auth's errors carry (message, response body); the message is what matters."""
    first = exc.args[0] if exc.args else ""
    return first if isinstance(first, str) and first else exc.__class__.__name__


class ServiceAccountToken:
    """Fetches a Google service account's access token (the JWT bearer grant at its key
    file's ``token_uri``), with google-auth, in a worker thread."""

    def __init__(self, account: VertexAccount) -> None:
        self.account = account
        self._credentials: Any = None
        self._session: Any = None
        self._token_uri = ""

    def _refresh(self) -> tuple[str, float]:
        # Imported here: google-auth (and requests) only where a Vertex provider is used.
        import google.auth.exceptions
        import requests
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        if self.account.service_account is None:
            raise UpstreamError(f"no service account: the environment variable "
                                f"{self.account.credentials_env} (the path of its JSON key "
                                "file) was not set when meterline started")
        if self._credentials is None:
            info = json.loads(self.account.service_account.reveal())
            self._token_uri = str(info["token_uri"])
            made = service_account.Credentials.from_service_account_info
            self._credentials = made(info, scopes=[VERTEX_SCOPE])  # type: ignore[no-untyped-call]
            self._session = requests.Session()
        credentials = self._credentials
        where = self._token_uri
        try:
            credentials.refresh(_TimedRequest(Request(self._session)))
        except google.auth.exceptions.RefreshError as exc:
            raise UpstreamError(f"the token endpoint {where} refused the service account "
                                f"{credentials.service_account_email}: {_message(exc)}"
                                ) from exc
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamError(f"cannot reach the token endpoint {where} "
                                f"({_message(exc)})") from exc
        expiry: datetime | None = credentials.expiry
        lifetime = 3600.0
        if expiry is not None:
            # google-auth keeps a naive UTC time.
            now = datetime.now(UTC).replace(tzinfo=None if expiry.tzinfo is None else UTC)
            lifetime = max(0.0, (expiry - now).total_seconds())
        return str(credentials.token), lifetime

    async def __call__(self) -> tuple[str, float]:
        return await asyncio.to_thread(self._refresh)

    async def aclose(self) -> None:
        if self._session is not None:
            self._session.close()


class _TimedRequest:
    """google-auth's request callable with a bounded wait (its default is two minutes)."""

    def __init__(self, request: Callable[..., Any]) -> None:
        self.request = request

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> Any:
        return self.request(url, method=method, body=body, headers=headers,
                            timeout=timeout or TOKEN_TIMEOUT, **kwargs)


class EntraToken:
    """Fetches an Entra ID access token for Azure OpenAI with the OAuth 2.0 client
    credentials grant (``POST {authority}/{tenant}/oauth2/v2.0/token``)."""

    def __init__(self, app: EntraApp) -> None:
        self.app = app
        self._client: httpx.AsyncClient | None = None

    async def __call__(self) -> tuple[str, float]:
        app = self.app
        if app.client_secret is None:
            raise UpstreamError(f"no Entra ID client secret: the environment variable "
                                f"{app.client_secret_env} was not set when meterline started")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TOKEN_TIMEOUT)
        form = {"grant_type": "client_credentials", "client_id": app.client_id,
                "client_secret": app.client_secret.reveal(), "scope": AZURE_SCOPE}
        try:
            answer = await self._client.post(app.token_url, data=form)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach Entra ID at {app.token_url} "
                                f"({exc.__class__.__name__}: {exc})") from exc
        try:
            body = answer.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if answer.status_code != 200 or not isinstance(token, str) or not token:
            why = body.get("error_description") or body.get("error") or answer.text[:200]
            raise UpstreamError(f"Entra ID refused the client credentials of "
                                f"{app.client_id} (HTTP {answer.status_code}): {why}")
        try:
            # A number, or a numeric string (Entra ID's v1 endpoints).
            seconds = float(lifetime) if isinstance(lifetime, int | float | str) else 3600.0
        except ValueError:
            seconds = 3600.0
        return token, seconds

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _identity(provider: ProviderConfig) -> tuple[str, ...] | None:
    """Whose tokens a provider's calls carry: providers with the same service account (or
    Entra ID application) share one token, as the token endpoint sees one client."""
    if provider.vertex is not None:
        account = provider.vertex.service_account
        return ("vertex", account.reveal() if account else provider.vertex.credentials_env)
    if provider.entra is not None:
        app = provider.entra
        secret = app.client_secret.reveal() if app.client_secret else app.client_secret_env
        return ("entra", app.authority, app.tenant_id, app.client_id, secret)
    return None


class CloudTokens:
    """The token of each provider that authenticates with one (made on its first call)."""

    def __init__(self) -> None:
        self.sources: dict[tuple[str, ...], CachedToken] = {}
        self._fetchers: list[ServiceAccountToken | EntraToken] = []

    def source(self, provider: ProviderConfig) -> CachedToken | None:
        """The provider's token source; None for a provider with an API key."""
        identity = _identity(provider)
        if identity is None:
            return None
        found = self.sources.get(identity)
        if found is None:
            fetcher: ServiceAccountToken | EntraToken
            if provider.vertex is not None:
                fetcher = ServiceAccountToken(provider.vertex)
            else:
                assert provider.entra is not None
                fetcher = EntraToken(provider.entra)
            self._fetchers.append(fetcher)
            found = self.sources[identity] = CachedToken(fetcher)
        return found

    async def token(self, provider: ProviderConfig) -> str | None:
        """The provider's current bearer token (None for a provider with an API key); a
        failure is the provider's ``UpstreamError``, naming it."""
        source = self.source(provider)
        if source is None:
            return None
        try:
            return await source.token()
        except UpstreamError as exc:
            raise UpstreamError(f"{provider.name}: {exc.message}",
                                provider=provider.name) from exc

    async def aclose(self) -> None:
        fetchers, self._fetchers, self.sources = self._fetchers, [], {}
        for fetcher in fetchers:
            await fetcher.aclose()
