"""Request bodies are limited while they are read, before any authentication (issue 12.7):
``POST /login`` once read any body whole (400 MB, unauthenticated), and the other endpoints
buffered a body whole before their 32 MiB check.

A body that declares a length over the limit is refused before a byte of it is sent, with no
credentials at all. One sent in chunks is refused once it has passed the limit while the client
still holds back the rest of it (the end of the chunked body is never sent), so a 413 proves
the server stopped reading at the limit: without the limit it would wait for the rest. A
request refused on its headers (no key) is answered without reading its body, and its
connection closed rather than read on.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

import httpx
import orjson

from meterline.api.bodies import LOGIN_MAX_BODY_BYTES
from meterline.asgi.responses import MAX_BODY_BYTES
from tests.conftest import ADMIN_TOKEN

#: path -> its limit: the sign-in form, a tenant-key endpoint, an admin endpoint and the
#: gateway's two wire formats.
ENDPOINTS = {"/login": LOGIN_MAX_BODY_BYTES, "/v1/usage": MAX_BODY_BYTES,
             "/api/fx": MAX_BODY_BYTES, "/v1/chat/completions": MAX_BODY_BYTES,
             "/v1/messages": MAX_BODY_BYTES}
CHUNK = 64 * 1024


class RawAnswer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}

    def json(self) -> dict[str, object]:
        found: dict[str, object] = orjson.loads(self.body)
        return found


def exchange(client: httpx.Client, head: str, body: Iterable[bytes] = ()) -> RawAnswer:
    """Send ``head`` and ``body`` on a connection of its own, then read the answer until the
    server closes the connection."""
    url = client.base_url
    assert url.port is not None
    with socket.create_connection((url.host, url.port), timeout=60) as sock:
        sock.sendall(head.encode())
        for piece in body:
            sock.sendall(piece)
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            # A server that closes with our unread bytes in its buffer resets the connection;
            # the answer it sent before is what the test reads (none: the test fails on it).
            pass
    return RawAnswer(received)


def post_head(path: str, length: str) -> str:
    return (f"POST {path} HTTP/1.1\r\nhost: meterline\r\ncontent-type: application/json\r\n"
            f"{length}\r\n\r\n")


def assert_refused(answer: RawAnswer, path: str, limit: int) -> None:
    assert answer.status == 413, answer.body
    assert answer.headers["connection"] == "close"
    error = answer.json()["error"]
    assert isinstance(error, dict)
    assert error["code"] == "body_too_large" and error["field"] == "body"
    assert str(limit) in str(error["message"])
    if path == "/v1/messages":
        assert answer.json()["type"] == "error"  # Anthropic's shape
    if path.startswith("/v1/"):
        assert answer.headers["x-meterline-request-id"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
        client: httpx.Client) -> None:
    for path, limit in ENDPOINTS.items():
        answer = exchange(client, post_head(path, f"content-length: {limit + 1}"))
        assert_refused(answer, path, limit)
        # 400 MB announced: refused alike, nothing read.
        assert exchange(client, post_head(path, "content-length: 400000000")).status == 413


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
        client: httpx.Client, tenant_key: str) -> None:
    """The sign-in form without credentials; the others with theirs, since they check them
    before reading a body (without them, see the next test)."""
    for path, limit in ENDPOINTS.items():
        sent = 0
        secret = tenant_key if path.startswith("/v1/") else ADMIN_TOKEN
        auth = f"authorization: Bearer {secret}\r\n" if path != "/login" else ""

        def chunks(limit: int = limit) -> Iterator[bytes]:
            # Up to one byte past the limit, and never the terminating chunk: the server cannot
            # answer by waiting for the end of the body.
            nonlocal sent
            while sent <= limit:
                size = min(CHUNK, limit + 1 - sent)
                sent += size
                yield b"%x\r\n" % size + b" " * size + b"\r\n"

        answer = exchange(client, post_head(path, auth + "transfer-encoding: chunked"),
                          chunks())
        assert_refused(answer, path, limit)
        assert sent == limit + 1


def test_a_body_refused_on_its_headers_is_not_read_on(client: httpx.Client) -> None:
    """No credentials: 401 before the body is read, and the connection closes instead of the
    server reading on to reuse it (the end of the body is never sent, so nothing else ends
    it)."""
    for path in ("/v1/usage", "/v1/chat/completions", "/api/fx"):
        answer = exchange(client, post_head(path, "transfer-encoding: chunked"),
                          [b"400\r\n" + b" " * 1024 + b"\r\n"])
        assert answer.status == 401, path
        assert answer.headers["connection"] == "close"


def test_a_client_streaming_a_huge_body_is_stopped_at_the_limit(client: httpx.Client) -> None:
    """An ordinary client (httpx) uploading 400 MB to the sign-in form: it hears 413 and stops
    after little more than the limit."""
    consumed = 0

    def upload() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(400 * 1024 * 1024 // CHUNK):
            consumed += CHUNK
            yield b"t" * CHUNK

    answer = client.post("/login", content=upload(),
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "body_too_large"
    # What the client managed to hand over before the connection closed: the limit, plus what
    # the sockets' buffers took on the way; far from the 400 MB.
    assert consumed < 64 * 1024 * 1024, consumed


def test_bodies_within_the_limit_are_served(client: httpx.Client) -> None:
    assert client.post("/login", data={"token": "x" * (LOGIN_MAX_BODY_BYTES // 2)},
                       follow_redirects=False).status_code == 401
    answer = client.post("/v1/usage", content=b" " * (1024 * 1024))
    assert answer.status_code == 401  # read (within the limit), then the key is missing
