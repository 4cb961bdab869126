"""The per-unit endpoints (SPEC §3): embeddings by input tokens, images by count and
size/quality, speech by characters of ``input``, videos by seconds (multipart and JSON)."""

from __future__ import annotations

import asyncio
import base64
import struct
import warnings
from decimal import Decimal

from meterline.simulator.openai_media import AUDIO, PNG_1X1
from tests.gateway.conftest import (
    EMBEDDING_PRICE,
    IMAGE_PRICES,
    TTS_PRICE,
    UPSTREAM_KEY,
    VIDEO_PRICES,
    marker,
    money,
)


def check_record(gateway, headers, *, endpoint, model, usage, cost):
    record = gateway.record(headers["x-meterline-request-id"])
    assert record["status"] == "success", record
    assert record["endpoint"] == endpoint
    assert record["model"] == model
    assert record["provider"] == "openai"
    assert record["user"] == "bob"
    assert record["usage"] == usage
    assert record["estimated"] is False
    assert money(record["cost"]) == cost
    assert headers["x-meterline-cost"] == record["cost"]
    assert headers["x-meterline-currency"] == "USD"
    return record


def test_embeddings(gateway):
    m = marker()
    with gateway.openai() as client:
        raw = client.embeddings.with_raw_response.create(
            model="openai/text-embedding-3-small", input=[f"{m} one two", "three four five"])
        result = raw.parse()
        b64 = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="six seven", encoding_format="base64",
            dimensions=4)
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == 6
    check_record(gateway, raw.headers, endpoint="embeddings",
                 model="openai/text-embedding-3-small", usage={"input_tokens": 6},
                 cost=6 * EMBEDDING_PRICE / 1_000_000)
    # base64 vectors pass through untouched.
    vector = b64.http_response.json()["data"][0]["embedding"]
    assert len(struct.unpack("<4f", base64.b64decode(vector))) == 4
    check_record(gateway, b64.headers, endpoint="embeddings",
                 model="openai/text-embedding-3-small", usage={"input_tokens": 2},
                 cost=2 * EMBEDDING_PRICE / 1_000_000)
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1/embeddings"
    assert sent.body["model"] == "text-embedding-3-small"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_images_priced_per_image_by_size_and_quality(gateway):
    model = "openai/gpt-image-1"
    unbound, _ = gateway.new_key()  # only a key bound to no user may name one
    with gateway.openai() as client, gateway.openai(unbound) as named:
        high = client.images.with_raw_response.generate(
            model=model, prompt="a red fox", n=3, size="1024x1024", quality="high")
        low = named.images.with_raw_response.generate(
            model=model, prompt="a blue fox", quality="low",
            extra_headers={"x-meterline-user": "li"})
        plain = client.images.with_raw_response.generate(model=model, prompt="a fox", n=2)
    assert [d.b64_json for d in high.parse().data] == [PNG_1X1] * 3
    check_record(gateway, high.headers, endpoint="images", model=model, usage={"images": 3},
                 cost=3 * IMAGE_PRICES["1024x1024/high"])
    assert len(low.parse().data) == 1
    record = gateway.record(low.headers["x-meterline-request-id"])
    assert record["user"] == "li"
    assert record["usage"] == {"images": 1}
    assert money(record["cost"]) == IMAGE_PRICES["low"] == Decimal(low.headers["x-meterline-cost"])
    plain.parse()
    check_record(gateway, plain.headers, endpoint="images", model=model, usage={"images": 2},
                 cost=2 * IMAGE_PRICES["base"])


def test_speech_priced_by_characters_of_input(gateway):
    text = "Hello, world! Grüße aus Zürich."  # 31 characters, more bytes
    with gateway.openai() as client:
        raw = client.audio.speech.with_raw_response.create(
            model="openai/tts-1", voice="alloy", input=text)
        audio = raw.read() if hasattr(raw, "read") else raw.content
    assert audio == AUDIO
    assert raw.headers["content-type"] == "audio/mpeg"
    check_record(gateway, raw.headers, endpoint="speech", model="openai/tts-1",
                 usage={"characters": 31}, cost=31 * TTS_PRICE / 1000)


def test_videos_multipart_and_json_priced_by_seconds(gateway):
    m = marker()
    with gateway.openai() as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's Sora shutdown notice
        raw = client.videos.with_raw_response.create(
            model="openai/sora-2", prompt=f"{m} a dog on a skateboard", seconds="8",
            size="1280x720")
        video = raw.parse()
    assert video.status == "completed"
    assert video.seconds == "8"
    check_record(gateway, raw.headers, endpoint="videos", model="openai/sora-2",
                 usage={"seconds": "8"}, cost=8 * VIDEO_PRICES["1280x720"])
    sent = gateway.upstream.one(m)
    assert sent.path == "/v1/videos"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.body == {"prompt": f"{m} a dog on a skateboard", "model": "sora-2",
                         "seconds": "8", "size": "1280x720"}

    # The same endpoint with a JSON body, at the default size's price.
    with gateway.http() as http:
        answer = http.post("/v1/videos", headers=gateway.headers(),
                           json={"model": "sora-2", "prompt": "a cat", "seconds": "12"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["seconds"] == "12"
    check_record(gateway, answer.headers, endpoint="videos", model="openai/sora-2",
                 usage={"seconds": "12"}, cost=12 * VIDEO_PRICES["base"])


def test_video_reference_file_reaches_the_upstream(gateway):
    m = marker()
    with gateway.openai() as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's Sora shutdown notice
        raw = client.videos.with_raw_response.create(
            model="openai/sora-2", prompt=f"{m} animate this", seconds="4",
            input_reference=("ref.png", base64.b64decode(PNG_1X1), "image/png"))
        raw.parse()
    sent = gateway.upstream.one(m)
    assert sent.body["input_reference"] == "ref.png"
    assert sent.body["model"] == "sora-2"
    check_record(gateway, raw.headers, endpoint="videos", model="openai/sora-2",
                 usage={"seconds": "4"}, cost=4 * VIDEO_PRICES["base"])


def test_async_media_clients(gateway):
    async def run():
        async with gateway.async_openai() as client:
            emb = await client.embeddings.with_raw_response.create(
                model="openai/text-embedding-3-small", input="a b c d")
            img = await client.images.with_raw_response.generate(
                model="gpt-image-1", prompt="x", size="1024x1024", quality="high")
            return emb, img

    emb, img = asyncio.run(run())
    check_record(gateway, emb.headers, endpoint="embeddings",
                 model="openai/text-embedding-3-small", usage={"input_tokens": 4},
                 cost=4 * EMBEDDING_PRICE / 1_000_000)
    check_record(gateway, img.headers, endpoint="images", model="openai/gpt-image-1",
                 usage={"images": 1}, cost=IMAGE_PRICES["1024x1024/high"])
