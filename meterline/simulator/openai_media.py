"""OpenAI wire format beyond chat: embeddings, images, speech and videos."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.simulator.common import SimState, begin, gate, json_response, make_plan
from meterline.simulator.directives import count_words
from meterline.simulator.openai import openai_error

EMBEDDING_DIMENSIONS = 8
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
AUDIO = b"\xff\xfb\x90\x64" + bytes(range(256)) + bytes(157)
"""One 417-byte MPEG-1 Layer III frame (128 kbit/s, 44.1 kHz) — what /v1/audio/speech returns."""

_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


@lru_cache(maxsize=1024)
def _vector(key: str, dims: int, as_base64: bool) -> list[float] | str:
    """A deterministic vector for ``key``: multiples of 1/128, exact in float32."""
    seed = zlib.crc32(key.encode())
    values = [(((seed >> (i % 25)) & 127) - 64) / 128 for i in range(dims)]
    if as_base64:
        return base64.b64encode(struct.pack(f"<{dims}f", *values)).decode()
    return values


def _embedding_inputs(value: Any) -> list[tuple[str, int]] | None:
    """(key, token count) per input: strings count words, token arrays their length."""
    if isinstance(value, str):
        return [(value, count_words(value))]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) for v in value):
        return [(orjson.dumps(value).decode(), len(value))]
    out: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str):
            out.append((item, count_words(item)))
        elif isinstance(item, list) and item and all(isinstance(v, int) for v in item):
            out.append((orjson.dumps(item).decode(), len(item)))
        else:
            return None
    return out


def media_routes(sim: SimState) -> list[Route]:
    async def embeddings(request: Request) -> Response:
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        inputs = _embedding_inputs(body.get("input"))
        if not isinstance(model, str) or not model:
            return openai_error(400, "You must provide a model parameter.")
        if inputs is None:
            return openai_error(400, "'input' must be a string, strings or token arrays.")
        p = make_plan("\n".join(key for key, _ in inputs), None, openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        dims = body.get("dimensions")
        if not isinstance(dims, int) or not 0 < dims <= 4096:
            dims = EMBEDDING_DIMENSIONS
        as_b64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(key, dims, as_b64)}
            for i, (key, _) in enumerate(inputs)
        ]
        answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if not p.directives.no_usage:
            tokens = sum(n for _, n in inputs)
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_response(answer)

    async def images(request: Request) -> Response:
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt")
        n = body.get("n", 1)
        if not isinstance(prompt, str) or not prompt:
            return openai_error(400, "'prompt' must be a non-empty string.")
        if not isinstance(n, int) or not 1 <= n <= 10:
            return openai_error(400, "'n' must be a whole number from 1 to 10.")
        p = make_plan(prompt, None, openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        image_id = sim.next_id("img-")
        if body.get("response_format") == "url":
            data = [{"url": f"https://simulator.invalid/{image_id}-{i}.png"} for i in range(n)]
        else:
            data = [{"b64_json": PNG_1X1} for _ in range(n)]
        return json_response({"created": int(time.time()), "data": data})

    async def speech(request: Request) -> Response:
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        text = body.get("input")
        if not isinstance(text, str) or not text:
            return openai_error(400, "'input' must be a non-empty string.")
        p = make_plan(text, None, openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        fmt = body.get("response_format", "mp3")
        return Response(AUDIO, media_type=_AUDIO_TYPES.get(str(fmt), "audio/mpeg"))

    async def videos(request: Request) -> Response:
        body = await begin(request, sim, openai_error)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return openai_error(400, "'prompt' must be a non-empty string.")
        p = make_plan(prompt, None, openai_error)
        if isinstance(p, Response):
            return p
        refused = await gate(p.directives, openai_error)
        if refused is not None:
            return refused
        now = int(time.time())
        return json_response(
            {
                "id": sim.next_id("video_"),
                "object": "video",
                "model": str(body.get("model") or "sora-2"),
                "status": "completed",
                "progress": 100,
                "created_at": now,
                "completed_at": now,
                "expires_at": None,
                "seconds": str(body.get("seconds") or "4"),
                "size": str(body.get("size") or "720x1280"),
                "prompt": prompt,
                "error": None,
                "remixed_from_video_id": None,
            }
        )

    return [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/images/generations", images, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/v1/videos", videos, methods=["POST"]),
    ]
