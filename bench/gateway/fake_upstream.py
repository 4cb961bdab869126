"""The fake upstream: nginx answering OpenAI chat completions with fixed bodies.

nginx cannot cheaply look inside a JSON body, so streamed and non-streamed answers live at two
locations and the benchmark points each run at the right one (for the proxies: a provider or
model whose base URL leads there):

    POST /plain/v1/chat/completions  ->  a chat.completion with usage (application/json)
    POST /sse/v1/chat/completions    ->  chat.completion.chunk events, a final usage chunk and
                                         ``data: [DONE]`` (text/event-stream)

One worker process, no access log, run in the foreground as a child of the benchmark.

Without nginx (``run.py --quick`` on a machine that has none, or ``--python-tools``), a Python
stand-in answers the same two locations with the same bytes: uvicorn with a raw ASGI app, run
as ``python3 bench/gateway/fake_upstream.py --port N``. It is far slower than nginx, so its
numbers only show that the benchmark works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from procs import Child, start_child, wait_until

MODEL = "bench-model"
#: The usage every answer reports (prices turn it into a cost at the proxies).
USAGE = {"prompt_tokens": 120, "completion_tokens": 24, "total_tokens": 144,
         "prompt_tokens_details": {"cached_tokens": 64},
         "completion_tokens_details": {"reasoning_tokens": 0}}
ANSWER = "Benchmarks measure the proxy, not the model."
CREATED = 1767225600


def completion_body() -> bytes:
    """A fixed, complete OpenAI chat.completion answer with usage."""
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": ANSWER, "refusal": None}}],
        "usage": USAGE,
    }, separators=(",", ":")).encode()


def stream_body() -> bytes:
    """A fixed OpenAI stream: a role chunk, content chunks, the finishing chunk, the usage chunk
    (as sent for ``stream_options.include_usage``) and ``[DONE]``."""
    def chunk(delta: dict[str, object], finish: str | None = None,
              usage: dict[str, object] | None = None, choices: bool = True) -> bytes:
        body: dict[str, object] = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}] if choices else [],
            "usage": usage,
        }
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    words = ANSWER.split(" ")
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": (" " if i else "") + word}) for i, word in enumerate(words)]
    events.append(chunk({}, finish="stop"))
    events.append(chunk({}, usage=USAGE, choices=False))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _nginx_string(raw: bytes) -> str:
    """``raw`` as a single-quoted nginx config string (nginx unescapes \\n, \\' and \\\\)."""
    text = raw.decode()
    if "$" in text:
        raise ValueError("nginx would expand '$' in a return body")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def nginx_config(prefix: Path, port: int) -> str:
    return f"""\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /plain/v1/chat/completions {{
            default_type application/json;
            return 200 {_nginx_string(completion_body())};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 {_nginx_string(stream_body())};
        }}
        location / {{
            return 404 '{{"error": {{"message": "no such route in the fake upstream"}}}}';
        }}
    }}
}}
"""


def start_nginx(nginx: str, workdir: Path, port: int) -> Child:
    """Start nginx on ``port`` with its config and temp files in ``workdir``; checked with one
    request of each kind before it is returned."""
    prefix = workdir / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, port))
    check = subprocess.run([nginx, "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx config rejected: {check.stderr.strip()}")
    child = start_child("nginx", [nginx, "-p", str(prefix), "-c", str(conf)], prefix / "out.log")
    return _checked(child, port)


def start_python(workdir: Path, port: int) -> Child:
    """The Python stand-in for nginx on ``port`` (same locations, same bytes), checked alike."""
    prefix = workdir / "upstream"
    prefix.mkdir(parents=True, exist_ok=True)
    child = start_child("python upstream", [sys.executable, str(Path(__file__).resolve()),
                                            "--port", str(port)], prefix / "out.log")
    return _checked(child, port)


def _checked(child: Child, port: int) -> Child:
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        return httpx.post(f"{base}/plain/v1/chat/completions", json={}, timeout=2
                          ).status_code == 200

    wait_until(answers, 20, child)
    plain = httpx.post(f"{base}/plain/v1/chat/completions", json={"model": MODEL})
    sse = httpx.post(f"{base}/sse/v1/chat/completions", json={"model": MODEL, "stream": True})
    if (plain.content != completion_body() or sse.content != stream_body()
            or not sse.headers["content-type"].startswith("text/event-stream")):
        child.stop()
        raise RuntimeError("nginx does not answer with the fixed bodies")
    return child


def asgi_app() -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
    """The stand-in: the locations and bodies of ``nginx_config`` as a raw ASGI app."""
    routes = {"/plain/v1/chat/completions": (b"application/json", completion_body()),
              "/sse/v1/chat/completions": (b"text/event-stream", stream_body())}
    missing = (b"application/json",
               b'{"error": {"message": "no such route in the fake upstream"}}')

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body whole before answering, as nginx does
            more = (await receive()).get("more_body", False)
        kind, body = routes.get(scope["path"], missing)
        await send({"type": "http.response.start",
                    "status": 200 if scope["path"] in routes else 404,
                    "headers": [(b"content-type", kind),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="the Python stand-in for the nginx upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(asgi_app(), host="127.0.0.1", port=args.port, lifespan="off",
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
