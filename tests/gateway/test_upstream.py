"""The HTTP client to the providers (meterline.gateway.upstream), against small loopback servers
that misbehave on purpose: refused connections are tried twice, nothing is retried once bytes
were sent, timeouts and broken answers become meterline's errors, compressed streams are decoded
as they arrive, and one pooled session per provider keeps its connections open between calls."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from meterline.config import ProviderConfig, Secret
from meterline.errors import UpstreamError, UpstreamTimeout
from meterline.gateway import upstream
from meterline.gateway.upstream import Upstreams

EVENTS = [f'data: {{"n": {n}, "text": "{"lorem ipsum " * 20}"}}\n\n'.encode() for n in range(5)]


def provider(url: str, timeout: float = 5.0, name: str = "p") -> ProviderConfig:
    return ProviderConfig(name, "openai", url + "/v1", Secret("sk-up"), timeout)


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> AsyncIterator[str]:
    """An aiohttp server on loopback answering every POST with ``handler``."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(answer: bytes, connections: list[int]) -> AsyncIterator[str]:
    """A server that reads a request's head, writes ``answer`` as it is and hangs up."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def upstreams(*configs: ProviderConfig) -> AsyncIterator[Upstreams]:
    found = Upstreams({p.name: p for p in configs})
    try:
        yield found
    finally:
        await found.aclose()


async def post(ups: Upstreams, config: ProviderConfig, body: bytes = b"{}",
               **headers: str) -> tuple[int, bytes]:
    async with ups.stream(config, "POST", "/chat/completions", content=body,
                          headers={"content-type": "application/json", **headers}) as answer:
        return answer.status_code, await answer.aread()


# --- connecting and retrying ---------------------------------------------------------------------

def test_refused_connection_is_tried_twice_then_an_upstream_error(monkeypatch):
    attempts: list[int] = []
    connect = aiohttp.TCPConnector.connect

    async def counted(self: aiohttp.TCPConnector, *args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return await connect(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", counted)
    config = provider(f"http://127.0.0.1:{closed_port()}", name="closed")

    async def main() -> None:
        async with upstreams(config) as ups:
            with pytest.raises(UpstreamError) as raised:
                await post(ups, config)
        error = raised.value
        assert not isinstance(error, UpstreamTimeout)
        assert error.message.startswith("closed: cannot connect (")
        assert "127.0.0.1" in error.message
        assert error.context["provider"] == "closed"
        assert isinstance(error.__cause__, aiohttp.ClientConnectorError)

    asyncio.run(main())
    assert len(attempts) == upstream.CONNECT_ATTEMPTS == 2


def test_no_retry_once_the_request_was_sent():
    """The provider took the request and hung up without answering: it may have run the call,
    so it is not sent again."""
    connections: list[int] = []

    async def main() -> None:
        async with raw_server(b"", connections) as url, upstreams(provider(url)) as ups:
            with pytest.raises(UpstreamError) as raised:
                await post(ups, provider(url))
        assert not isinstance(raised.value, UpstreamTimeout)
        assert "ServerDisconnectedError" in raised.value.message
        assert isinstance(raised.value.__cause__, aiohttp.ClientError)

    asyncio.run(main())
    assert connections == [1]


# --- timeouts and broken answers -----------------------------------------------------------------

def test_no_answer_in_time_is_an_upstream_timeout():
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.wait_for(release.wait(), 2)  # until the test is over
        return web.Response(text="{}")

    async def main() -> None:
        async with serving(slow) as url, upstreams(provider(url, timeout=0.2)) as ups:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as raised:
                await post(ups, provider(url, timeout=0.2))
            assert 0.15 < time.monotonic() - started < 1.0
            release.set()
        assert raised.value.message == "p: no answer within 0.2 s"
        assert isinstance(raised.value.__cause__, TimeoutError)

    asyncio.run(main())


def test_an_answer_that_stops_midway_is_an_upstream_timeout_when_read():
    """The timeout bounds each wait on the provider, not the whole call: a stream that keeps
    sending within the timeout runs past it, one that goes silent longer does not."""
    release = asyncio.Event()

    async def silent_after_some(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await answer.prepare(request)
        for event in EVENTS[:3]:
            await answer.write(event)
            await asyncio.sleep(0.15)
        await asyncio.wait_for(release.wait(), 2)
        return answer

    async def main() -> None:
        async with serving(silent_after_some) as url, upstreams(provider(url, 0.3)) as ups:
            config = provider(url, 0.3)
            received: list[bytes] = []
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                async with ups.stream(config, "POST", "/chat/completions", content=b"{}",
                                      headers={}) as answer:
                    assert answer.status_code == 200
                    async for chunk in answer.aiter_bytes():
                        received.append(chunk)
            assert b"".join(received) == b"".join(EVENTS[:3])
            assert time.monotonic() - started > 0.4  # past the timeout, as long as bytes came
            with pytest.raises(UpstreamTimeout):
                await post(ups, config)
            release.set()

    asyncio.run(main())


def test_an_answer_cut_short_is_an_upstream_error():
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    connections: list[int] = []

    async def main() -> None:
        async with raw_server(head + b'{"id": "x"', connections) as url, \
                upstreams(provider(url)) as ups:
            with pytest.raises(UpstreamError) as raised:
                await post(ups, provider(url))
        assert not isinstance(raised.value, UpstreamTimeout)
        assert raised.value.message == "p: the connection broke (ClientPayloadError)"

    asyncio.run(main())


# --- bodies --------------------------------------------------------------------------------------

def test_a_gzip_compressed_stream_is_decoded_as_it_arrives():
    second = asyncio.Event()

    async def gzipped(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"content-type": "text/event-stream",
                                             "content-encoding": "gzip"})
        await answer.prepare(request)
        packer = zlib.compressobj(wbits=31)  # gzip framing
        await answer.write(packer.compress(EVENTS[0]) + packer.flush(zlib.Z_SYNC_FLUSH))
        # The rest only once the client has the first event, decoded.
        await asyncio.wait_for(second.wait(), 5)
        for event in EVENTS[1:]:
            await answer.write(packer.compress(event) + packer.flush(zlib.Z_SYNC_FLUSH))
        await answer.write(packer.flush())
        await answer.write_eof()
        return answer

    async def main() -> None:
        async with serving(gzipped) as url, upstreams(provider(url)) as ups:
            received = b""
            async with ups.stream(provider(url), "POST", "/chat/completions", content=b"{}",
                                  headers={}) as answer:
                assert answer.headers["Content-Encoding"] == "gzip"
                assert answer.headers.get("content-type") == "text/event-stream"
                async for chunk in answer.aiter_bytes():
                    received += chunk
                    if received == EVENTS[0]:
                        second.set()
            assert second.is_set()
            assert received == b"".join(EVENTS)

    asyncio.run(main())


def test_a_gzip_compressed_answer_is_decoded_when_read_whole():
    body = b'{"id": "chatcmpl-1", "text": "' + b"lorem " * 500 + b'"}'

    async def gzipped(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(body), content_type="application/json",
                            headers={"content-encoding": "gzip"})

    async def main() -> None:
        async with serving(gzipped) as url, upstreams(provider(url)) as ups:
            assert await post(ups, provider(url)) == (200, body)

    asyncio.run(main())


def test_request_as_sent_upstream():
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append((str(request.rel_url), dict(request.headers), await request.read()))
        return web.Response(status=201, text="{}", headers={"Retry-After": "3"})

    async def main() -> None:
        async with serving(echo) as url, upstreams(provider(url)) as ups:
            # A trailing slash on the base URL is not doubled.
            config = ProviderConfig("p", "openai", url + "/v1/", Secret("sk-up"))
            headers = ups.headers(config, {"accept": "application/json", "cookie": "no"},
                                  "application/json")
            async with ups.stream(config, "POST", "/chat/completions", content=b'{"a": 1}',
                                  headers=headers, params={"alt": "sse"}) as answer:
                assert answer.status_code == 201
                assert answer.headers["retry-after"] == "3"
                assert await answer.aread() == b"{}"
            # Without a content type, none is made up.
            async with ups.stream(config, "POST", "/x", content=b"", headers={}) as answer:
                assert answer.status_code == 201

    asyncio.run(main())
    path, headers, body = seen[0]
    assert (path, body) == ("/v1/chat/completions?alt=sse", b'{"a": 1}')
    assert headers["Authorization"] == "Bearer sk-up"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert "Cookie" not in headers
    assert "Content-Type" not in seen[1][1]


# --- the pool ------------------------------------------------------------------------------------

def test_one_pooled_session_per_provider_reuses_its_connections():
    peers: list[int] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peername[1])
        return web.Response(text="{}", headers={"set-cookie": "session=abc"})

    async def main() -> None:
        async with serving(answer) as url:
            one, two = provider(url, name="one"), provider(url, name="two")
            async with upstreams(one, two) as ups:
                for _ in range(3):
                    assert await post(ups, one) == (200, b"{}")
                session = ups.session(one)
                assert ups.session(one) is session
                assert ups.session(two) is not session
                assert await post(ups, two) == (200, b"{}")
                assert not session.closed
            assert session.closed

    asyncio.run(main())
    assert len(peers) == 4
    assert len(set(peers[:3])) == 1  # one kept-alive connection for the three calls
    assert peers[3] != peers[0]  # another provider, another pool


def test_an_answer_left_unread_closes_its_connection():
    """A client that goes away mid-stream: the connection to the provider is closed (so it
    stops producing), not handed back to the pool half-read."""
    ended = asyncio.Event()
    peers: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peername[1])
        answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await answer.prepare(request)
        try:
            for _ in range(200):
                await answer.write(EVENTS[0])
                await asyncio.sleep(0.01)
        except (ConnectionError, RuntimeError):
            ended.set()
        return answer

    async def main() -> None:
        async with serving(endless) as url, upstreams(provider(url)) as ups:
            async with ups.stream(provider(url), "POST", "/chat/completions", content=b"{}",
                                  headers={}) as answer:
                async for _ in answer.aiter_bytes():
                    break
            await asyncio.wait_for(ended.wait(), 3)
            async with ups.stream(provider(url), "POST", "/chat/completions", content=b"{}",
                                  headers={}) as answer:
                async for _ in answer.aiter_bytes():
                    break

    asyncio.run(main())
    assert len(peers) == 2 and peers[0] != peers[1]


def test_proxy_from_the_environment(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert upstream.env_proxy(URL("https://api.openai.com/v1")) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert upstream.env_proxy(URL("https://api.openai.com/v1")) == "http://proxy.internal:3128"
    assert upstream.env_proxy(URL("http://api.openai.com/v1")) is None
    assert upstream.env_proxy(URL("http://127.0.0.1:9000/v1")) is None
