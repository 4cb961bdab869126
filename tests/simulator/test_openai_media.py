"""Embeddings, images, speech, videos and the model list, over real HTTP."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from meterline.simulator import SimState


def test_embeddings_float_and_base64(oai: openai.OpenAI, http: httpx.Client) -> None:
    result = oai.embeddings.create(
        model="text-embedding-3-small", input=["one two three", "four"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == result.usage.total_tokens == 4
    # The SDK asks for base64 by default and decodes it: same vector.
    again = oai.embeddings.create(model="text-embedding-3-small", input="one two three")
    assert again.data[0].embedding == result.data[0].embedding
    raw = http.post(
        "/v1/embeddings",
        json={"model": "m", "input": "one two three", "encoding_format": "base64", "dimensions": 4},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<4f", packed)) == result.data[0].embedding[:4]


def test_embeddings_token_arrays_and_directives(http: httpx.Client) -> None:
    body = {"model": "m", "input": [[1, 2, 3], [4, 5]]}
    assert http.post("/v1/embeddings", json=body).json()["usage"]["prompt_tokens"] == 5
    body = {"model": "m", "input": [7, 8, 9, 10]}
    assert http.post("/v1/embeddings", json=body).json()["usage"]["total_tokens"] == 4
    body = {"model": "m", "input": "x [[sim no_usage]]"}
    assert "usage" not in http.post("/v1/embeddings", json=body).json()
    body = {"model": "m", "input": "x [[sim status=429]]"}
    assert http.post("/v1/embeddings", json=body).json()["error"]["code"] == "rate_limit_exceeded"
    bad = http.post("/v1/embeddings", json={"model": "m", "input": [{"x": 1}]})
    assert bad.status_code == 400


def test_images_b64_and_url(oai: openai.OpenAI) -> None:
    images = oai.images.generate(
        model="gpt-image-1", prompt="a red fox", n=3, size="1024x1024", quality="high"
    )
    assert images.data is not None and len(images.data) == 3
    assert all(base64.b64decode(i.b64_json or "").startswith(b"\x89PNG") for i in images.data)
    urls = oai.images.generate(model="dall-e-3", prompt="a fox", response_format="url")
    assert urls.data is not None and len(urls.data) == 1
    assert (urls.data[0].url or "").endswith(".png")
    with pytest.raises(openai.BadRequestError):
        oai.images.generate(model="dall-e-3", prompt="a fox", n=11)


def test_speech_returns_audio(oai: openai.OpenAI, http: httpx.Client) -> None:
    audio = oai.audio.speech.create(model="tts-1", voice="alloy", input="Hello, world.")
    assert 100 < len(audio.content) < 1000
    assert audio.response.headers["content-type"] == "audio/mpeg"
    body = {"model": "tts-1", "voice": "alloy", "input": "x [[sim status=503]]"}
    assert http.post("/v1/audio/speech", json=body).status_code == 503


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_videos_multipart_through_the_sdk(oai: openai.OpenAI, sim: SimState) -> None:
    video = oai.videos.create(model="sora-2", prompt="a cat", seconds="8", size="1280x720")
    assert (video.object, video.status, video.model) == ("video", "completed", "sora-2")
    assert (video.seconds, video.size) == ("8", "1280x720")
    received = sim.received[-1]
    assert received.headers["content-type"].startswith("multipart/form-data")
    assert received.body == {
        "prompt": "a cat",
        "model": "sora-2",
        "seconds": "8",
        "size": "1280x720",
    }


def test_videos_json_and_defaults(http: httpx.Client) -> None:
    video = http.post("/v1/videos", json={"prompt": "a dog", "seconds": 4}).json()
    assert (video["seconds"], video["size"], video["model"]) == ("4", "720x1280", "sora-2")
    assert video["id"].startswith("video_")
    files = {"prompt": (None, "a dog [[sim status=400]]"), "seconds": (None, "12")}
    refused = http.post("/v1/videos", files=files)
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"


def test_openai_model_list(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "gpt-5-mini" in ids
    assert "deepseek-chat" in ids
