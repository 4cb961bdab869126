"""Running the simulator: in a background thread (tests, ``serve --demo``) or as a process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from meterline.simulator.app import create_simulator

DEFAULT_PORT = 9000
_START_TIMEOUT = 10.0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


#: How long an idle client connection is kept: longer than a client pool's own keep-alive
#: (meterline's and httpx's are 5 s), as providers' servers keep theirs. With equal times a
#: server may close a connection just as the client reuses it, and that request fails.
KEEP_ALIVE_SECONDS = 75


@contextmanager
def serve_in_thread(
    app: ASGIApp | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve ``app`` (a new simulator by default) with uvicorn in a daemon thread.

    Yields the base URL, e.g. ``http://127.0.0.1:54321``, once the server accepts
    connections; stops it (and waits for the thread) on exit. ``port=0`` picks a free port.
    Uvicorn's logging is left unconfigured, so it goes wherever the host process's goes (a
    ``break_after`` stream makes uvicorn log "ASGI callable returned without completing
    response." at ERROR: that is the simulated failure, not a bug).
    """
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app or create_simulator(),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"simulator-{bound}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.002)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()


def run(host: str = "127.0.0.1", port: int = DEFAULT_PORT, require_key: str | None = None) -> None:
    """Serve a new simulator in this process until interrupted."""
    uvicorn.run(create_simulator(require_key=require_key), host=host, port=port, access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS)
