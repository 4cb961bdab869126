"""The floor: the least a Python proxy does, to measure meterline against in the same run.

uvicorn (one worker, no access log; uvloop and httptools when installed, as uvicorn[standard]
gives them to meterline too) with a raw ASGI app that forwards each
POST to the same fake upstream with aiohttp and passes the answer back: read whole when it is
JSON, chunk by chunk as it arrives when it is a stream. No auth, no parsing, no metering, no
journal. Whatever meterline needs beyond this is its own cost.

    python3 bench/gateway/floor.py --port 8001 --upstream http://127.0.0.1:8000

``GET /readyz`` answers 200 without calling the upstream.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Sent upstream on every call (the floor holds the provider key, as a proxy would).
UPSTREAM_HEADERS = {"Authorization": "Bearer fake", "Content-Type": "application/json"}


def make_app(upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    sessions: list[aiohttp.ClientSession] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                sessions.append(aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                    timeout=aiohttp.ClientTimeout(total=60)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for session in sessions:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/readyz":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        parts = []
        more = True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        async with sessions[0].request(scope["method"], upstream + scope["path"],
                                       data=b"".join(parts), headers=UPSTREAM_HEADERS) as answer:
            kind = answer.headers.get("Content-Type", "application/octet-stream").encode()
            if kind.startswith(b"text/event-stream"):
                await send({"type": "http.response.start", "status": answer.status,
                            "headers": [(b"content-type", kind), (b"cache-control", b"no-cache")]})
                async for chunk in answer.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            body = await answer.read()
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(b"content-type", kind),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the fake upstream")
    args = parser.parse_args()
    uvicorn.run(make_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port,
                lifespan="on", access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
