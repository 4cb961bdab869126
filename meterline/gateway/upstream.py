"""HTTP to the providers: one pooled client per provider, auth headers per wire format, and the
translation of httpx's errors into meterline's at this boundary.

A request is retried once only when nothing reached the provider (the connection could not be
made); once bytes were sent, a retry could run the call twice and charge twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx

from meterline.config import ProviderConfig
from meterline.errors import UpstreamError, UpstreamTimeout

ANTHROPIC_VERSION = "2023-06-01"
#: Client headers passed on to the provider (everything else is the gateway's business).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta", "accept")
CONNECT_ATTEMPTS = 2


def auth_headers(provider: ProviderConfig) -> dict[str, str]:
    if provider.api_key is None:
        return {}
    secret = provider.api_key.reveal()
    if provider.kind == "anthropic":
        return {"x-api-key": secret}
    if provider.kind == "gemini":
        return {"x-goog-api-key": secret}
    return {"authorization": f"Bearer {secret}"}


class Upstreams:
    def __init__(self, providers: Mapping[str, ProviderConfig]) -> None:
        self.providers = providers
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, provider: ProviderConfig) -> httpx.AsyncClient:
        found = self._clients.get(provider.name)
        if found is None:
            timeout = httpx.Timeout(provider.timeout_seconds, connect=min(10.0,
                                                                           provider.timeout_seconds))
            found = httpx.AsyncClient(
                base_url=provider.base_url, timeout=timeout,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            )
            self._clients[provider.name] = found
        return found

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

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
                     ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the response with its body still unread."""
        client = self.client(provider)
        request = client.build_request(method, path, content=content, headers=dict(headers),
                                       params=params)
        response: httpx.Response | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                response = await client.send(request, stream=True)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise UpstreamError(f"{provider.name}: cannot connect ({exc})",
                                        provider=provider.name) from exc
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(f"{provider.name}: no answer within "
                                      f"{provider.timeout_seconds:g} s",
                                      provider=provider.name) from exc
            except httpx.HTTPError as exc:
                raise UpstreamError(f"{provider.name}: {exc.__class__.__name__}: {exc}",
                                    provider=provider.name) from exc
        assert response is not None
        try:
            yield response
        finally:
            await response.aclose()


def translate(exc: httpx.HTTPError, provider: ProviderConfig) -> UpstreamError:
    """An httpx error met while reading a response, as meterline's error."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"{provider.name}: no answer within "
                               f"{provider.timeout_seconds:g} s", provider=provider.name)
    return UpstreamError(f"{provider.name}: the connection broke ({exc.__class__.__name__})",
                         provider=provider.name)
