"""HTTP to the providers: one pooled aiohttp session per provider, auth headers per wire format
(or an OAuth bearer token: Vertex AI, Azure with Entra ID; cloud_auth.py), and the translation
of aiohttp's errors into meterline's at this boundary.

A request is retried once only when nothing reached the provider (the connection could not be
made); once bytes were sent, a retry could run the call twice and charge twice.

A provider's ``timeout_seconds`` bounds each wait on it - for a connection (at most 10 s of it
for the connect itself), for the answer's headers, and between two reads of its body - not the
whole call: a long stream that keeps sending is not cut. Errors met while reading an answer are
raised as meterline's too (``UpstreamTimeout``, ``UpstreamError``), so no caller sees aiohttp's.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from meterline.config import ProviderConfig
from meterline.errors import UpstreamError, UpstreamTimeout
from meterline.gateway.cloud_auth import CloudTokens

ANTHROPIC_VERSION = "2023-06-01"
#: Client headers passed on to the provider (everything else is the gateway's business).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta", "accept")
CONNECT_ATTEMPTS = 2
#: Connections one provider's pool may hold, and how long an idle one is kept open.
POOL_SIZE = 1000
KEEPALIVE_SECONDS = 5.0
#: The longest wait for a TCP (and TLS) connection to be made, whatever the provider's timeout.
CONNECT_SECONDS = 10.0
#: Without a content type of its own, a body goes up without one (not as octet-stream).
_NO_CONTENT_TYPE = frozenset({"Content-Type"})


def auth_headers(provider: ProviderConfig) -> dict[str, str]:
    if provider.api_key is None:
        return {}
    secret = provider.api_key.reveal()
    if provider.kind == "anthropic":
        return {"x-api-key": secret}
    if provider.kind == "gemini":
        return {"x-goog-api-key": secret}
    if provider.kind == "azure":
        return {"api-key": secret}
    return {"authorization": f"Bearer {secret}"}


@lru_cache(maxsize=1024)
def _url(base_url: str, path: str) -> URL:
    """The provider's base URL with the endpoint's path appended (``/v1`` + ``/chat/...``),
    parsed once per endpoint and model."""
    return URL(base_url.rstrip("/") + path)


def env_proxy(url: URL) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``)
    asks for to reach ``url``, read once per provider rather than on every call."""
    if not url.host or urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


def _timeout(provider: ProviderConfig) -> UpstreamTimeout:
    return UpstreamTimeout(f"{provider.name}: no answer within {provider.timeout_seconds:g} s",
                           provider=provider.name)


def _broken(exc: BaseException, provider: ProviderConfig) -> UpstreamError:
    """An error met while reading an answer, as meterline's error."""
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one
        return _timeout(provider)
    return UpstreamError(f"{provider.name}: the connection broke ({exc.__class__.__name__})",
                         provider=provider.name)


class UpstreamResponse:
    """A provider's answer with its body still unread: status, case-insensitive headers, and
    the body - decoded (an upstream may compress it) - read whole or chunk by chunk. Reading
    raises ``UpstreamTimeout`` or ``UpstreamError``."""

    __slots__ = ("_provider", "_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse, provider: ProviderConfig) -> None:
        self._response = response
        self._provider = provider
        self.status_code: int = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _broken(exc, self._provider) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _broken(exc, self._provider) from exc

    async def aclose(self) -> None:
        """Give the connection back to the pool when the body was read to its end; close it
        otherwise (the provider then stops producing an answer no one will read)."""
        self._response.release()


class Upstreams:
    def __init__(self, providers: Mapping[str, ProviderConfig]) -> None:
        self.providers = providers
        self._sessions: dict[str, tuple[aiohttp.ClientSession, str | None]] = {}
        #: Bearer tokens of the providers that take no API key (Vertex AI, Entra ID).
        self.tokens = CloudTokens()

    def _session(self, provider: ProviderConfig) -> tuple[aiohttp.ClientSession, str | None]:
        found = self._sessions.get(provider.name)
        if found is None:
            # Made on first use, inside the running event loop the session belongs to.
            seconds = provider.timeout_seconds
            timeout = aiohttp.ClientTimeout(total=None, connect=seconds,
                                            sock_connect=min(CONNECT_SECONDS, seconds),
                                            sock_read=seconds)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE,
                                               keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=timeout, auto_decompress=True,
                # Never carry one caller's provider cookies into another's calls.
                cookie_jar=aiohttp.DummyCookieJar())
            found = self._sessions[provider.name] = (session, env_proxy(URL(provider.base_url)))
        return found

    def session(self, provider: ProviderConfig) -> aiohttp.ClientSession:
        """The provider's pooled session (made on first use)."""
        return self._session(provider)[0]

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session, _ in sessions:
            await session.close()
        await self.tokens.aclose()

    def headers(self, provider: ProviderConfig, incoming: Mapping[str, str],
                content_type: str | None) -> dict[str, str]:
        out = {name: incoming[name] for name in FORWARDED_HEADERS if name in incoming}
        if content_type:
            out["content-type"] = content_type
        if provider.kind == "anthropic":
            out.setdefault("anthropic-version", ANTHROPIC_VERSION)
        out.update(auth_headers(provider))
        return out

    @asynccontextmanager
    async def stream(self, provider: ProviderConfig, method: str, path: str, *,
                     content: bytes, headers: Mapping[str, str],
                     params: Mapping[str, str] | None = None
                     ) -> AsyncIterator[UpstreamResponse]:
        """Send a request and yield the response with its body still unread."""
        session, proxy = self._session(provider)
        url = _url(provider.base_url, path)
        # Fetched (or renewed) here, after admission: a token failure is an UpstreamError.
        token = await self.tokens.token(provider)
        if token is not None:
            headers = {**headers, "authorization": f"Bearer {token}"}
        skip = () if "content-type" in headers else _NO_CONTENT_TYPE
        response: aiohttp.ClientResponse | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                response = await session.request(method, url, data=content, headers=headers,
                                                 params=params, proxy=proxy,
                                                 skip_auto_headers=skip)
                break
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # No connection was made: nothing reached the provider, so one more try.
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise UpstreamError(f"{provider.name}: cannot connect ({exc})",
                                        provider=provider.name) from exc
            except TimeoutError as exc:
                raise _timeout(provider) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"{provider.name}: {exc.__class__.__name__}: {exc}",
                                    provider=provider.name) from exc
        assert response is not None
        answer = UpstreamResponse(response, provider)
        try:
            yield answer
        finally:
            await answer.aclose()
