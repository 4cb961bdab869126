"""The curated Chinese-provider catalog (issue 11, item 3): every model in the coverage list below
is loadable and quotable in CNY through the product's catalog loader and rating function, and the
entries whose numbers come from the providers' own pages price those pages' examples exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.catalog.shipped import load_catalog
from meterline.domain.pricebook import PriceBook
from meterline.domain.rating import rate
from meterline.domain.usage import Usage

AT = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)

TOKEN_MODELS = {
    "qwen": ["qwen3-coder-plus", "qwen3-coder-flash", "qwen-plus", "qwen-flash", "qwen-turbo",
             "qwen-max", "qwen3-max", "qwen3-max-preview", "qwen3.5-plus", "qwen3.6-plus",
             "qwen-vl-max", "qwen-vl-plus", "qwen3-vl-plus"],
    "volcano": ["doubao-seed-2.0-pro", "doubao-seed-2.0-lite", "doubao-seed-2.0-mini",
                "doubao-seed-2.0-code", "doubao-seed-1.8", "doubao-seed-1.6",
                "doubao-seed-1.6-thinking", "doubao-seed-1.6-flash", "doubao-seed-1.6-lite",
                "doubao-seed-1.6-vision", "doubao-seed-code", "doubao-1.5-pro-32k",
                "doubao-1.5-pro-256k", "doubao-1.5-lite-32k", "doubao-1.5-thinking-pro"],
    "baidu": ["ernie-5.1", "ernie-5.0", "ernie-5.0-thinking-latest", "ernie-5.0-thinking-preview",
              "ernie-4.5-turbo-128k", "ernie-4.5-turbo-32k", "ernie-4.5-turbo-latest",
              "ernie-4.5-turbo-vl", "ernie-4.5-turbo-vl-32k", "ernie-4.5-8k-preview", "ernie-x1.1",
              "ernie-x1.1-preview", "ernie-x1-turbo-32k"],
    "tencent": ["hy3-preview", "hunyuan-2.0-thinking-20251109", "hunyuan-2.0-instruct-20251111",
                "hunyuan-role-latest", "hunyuan-t1-latest", "hunyuan-t1-vision-20250916",
                "hunyuan-vision-1.5-instruct", "hunyuan-lite", "hunyuan-turbos-latest"],
    "zhipu": ["glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-x", "glm-4.5-air", "glm-4.5-airx",
              "glm-4.5-flash", "glm-4.7-flash", "glm-4.7-flashx", "glm-4.6v", "glm-4.6v-flashx",
              "glm-4.6v-flash", "glm-4.5v", "glm-4-flash-250414", "glm-4-flashx",
              "glm-4-air-250414", "glm-4-airx", "glm-4-long", "glm-4-plus"],
    "moonshot": ["kimi-k2.7-code", "kimi-k2.6", "kimi-k2.5", "kimi-k2-thinking",
                 "kimi-k2-thinking-turbo", "kimi-k2-0905-preview", "kimi-k2-0711-preview",
                 "kimi-k2-turbo-preview", "moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k",
                 "moonshot-v1-auto", "moonshot-v1-8k-vision-preview",
                 "moonshot-v1-32k-vision-preview", "moonshot-v1-128k-vision-preview"],
    "minimax": ["MiniMax-M2", "MiniMax-M2-Stable", "MiniMax-M2.5", "MiniMax-M2.5-Lightning",
                "MiniMax-M2.1", "MiniMax-M2.1-Lightning", "MiniMax-M1", "MiniMax-Text-01"],
}
EMBEDDING_MODELS = {"qwen": ["text-embedding-v3", "text-embedding-v4"]}
IMAGE_MODELS = {
    "qwen": ["wan2.2-t2i-plus", "wan2.2-t2i-flash", "wanx2.1-t2i-plus", "wanx2.1-t2i-turbo",
             "wan2.5-t2i-preview", "wan2.6-t2i", "wan2.7-image", "wan2.7-image-pro", "qwen-image",
             "qwen-image-plus", "qwen-image-max", "qwen-image-edit"],
    "volcano": ["doubao-seedream-5-0-260128", "doubao-seedream-4-5-251128",
                "doubao-seedream-4-0-250828", "doubao-seedream-3-0-t2i-250415",
                "doubao-seededit-3-0-i2i-250628"],
    "tencent": ["hy-image-v3.0", "hy-image-lite"],
    "minimax": ["image-01", "image-01-live"],
}
SECOND_MODELS = {
    "qwen": ["wan2.5-t2v-preview", "wan2.5-i2v-preview", "wan2.6-t2v", "wan2.6-i2v",
             "wan2.7-t2v", "wan2.7-i2v"],
    "tencent": ["hy-video-1.5"],
}
CHARACTER_MODELS = {
    "qwen": ["cosyvoice-v3-plus", "cosyvoice-v3-flash", "cosyvoice-v2"],
    "minimax": ["speech-2.6-hd", "speech-02-hd", "speech-2.6-turbo", "speech-02-turbo"],
}
VIDEO_TOKEN_MODELS = {
    "volcano": ["doubao-seedance-1-0-pro-250528", "doubao-seedance-1-0-pro-fast-251015",
                "doubao-seedance-1-0-lite-t2v-250428", "doubao-seedance-1-0-lite-i2v-250428",
                "doubao-seedance-1-5-pro-251215"],
}
PER_VIDEO_MODELS = {
    "minimax": ["MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast"],
}


def _cases(groups: dict[str, list[str]], usage: Usage) -> list[tuple[str, Usage]]:
    return [(f"{provider}/{model}", usage) for provider, models in groups.items()
            for model in models]


COVERAGE = [
    *_cases(TOKEN_MODELS, Usage.of(input_tokens=1_000, output_tokens=1_000)),
    *_cases(EMBEDDING_MODELS, Usage.of(input_tokens=1_000)),
    *_cases(IMAGE_MODELS, Usage.of(images=1)),
    *_cases(SECOND_MODELS, Usage.of(seconds=5)),
    *_cases(CHARACTER_MODELS, Usage.of(characters=1_000)),
    *_cases(VIDEO_TOKEN_MODELS, Usage.of(output_tokens=100_000)),
    *_cases(PER_VIDEO_MODELS, Usage.of(requests=1)),
]


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return load_catalog()


def _quote(book: PriceBook, name: str, usage: Usage, **attributes: str) -> Decimal:
    version = book.version_at(book.resolve(name), AT)
    rating = rate(usage, version, AT, attributes)
    assert rating.currency == "CNY", name
    return rating.total.number


def test_coverage_list_is_large() -> None:
    assert len(COVERAGE) >= 100


@pytest.mark.parametrize(("model", "usage"), COVERAGE, ids=[m for m, _ in COVERAGE])
def test_every_covered_model_is_quotable_in_cny(book: PriceBook, model: str,
                                                usage: Usage) -> None:
    assert book.knows(model)
    total = _quote(book, model, usage)
    assert total >= 0
    source = book.version_at(model, AT).source
    assert source.startswith("https://"), model


@pytest.mark.parametrize("alias", ["volcano/doubao-seed-1-6-251015",
                                   "qwen/qwen3-coder-plus-2025-09-23", "zhipu/glm-4-flash",
                                   "doubao-seed-2-0-pro-260215"])
def test_dated_ids_resolve(book: PriceBook, alias: str) -> None:
    assert book.knows(alias) or "/" not in alias
    assert book.resolve(alias) in book


# --- Golden quotes from the providers' own pages -----------------------------------------------
# help.aliyun.com/zh/model-studio/user-guide/qwen-coder ("模型与价格", 中国大陆(北京)):
# qwen3-coder-plus per 1K tokens by the request's input tokens: 0<T≤32K 0.004/0.016 元,
# 32K<T≤128K 0.006/0.024, 128K<T≤256K 0.01/0.04, 256K<T≤1M 0.02/0.2; qwen3-coder-flash
# 0.001/0.004, 0.0015/0.006, 0.0025/0.01, 0.005/0.025; implicit-cache hits are billed at 20% of
# the input price.

def test_qwen3_coder_plus_first_tier(book: PriceBook) -> None:
    # 10,000 × 0.004/1K + 2,000 × 0.016/1K = 0.04 + 0.032
    usage = Usage.of(input_tokens=10_000, output_tokens=2_000)
    assert _quote(book, "qwen/qwen3-coder-plus", usage) == Decimal("0.072")


def test_qwen3_coder_plus_32k_to_128k_tier(book: PriceBook) -> None:
    # 100,000 × 0.006/1K + 5,000 × 0.024/1K = 0.6 + 0.12
    usage = Usage.of(input_tokens=100_000, output_tokens=5_000)
    assert _quote(book, "qwen/qwen3-coder-plus", usage) == Decimal("0.72")


def test_qwen3_coder_plus_above_256k_tier(book: PriceBook) -> None:
    # 300,000 × 0.02/1K + 10,000 × 0.2/1K = 6 + 2
    usage = Usage.of(input_tokens=300_000, output_tokens=10_000)
    assert _quote(book, "qwen/qwen3-coder-plus", usage) == Decimal("8")


def test_qwen3_coder_plus_implicit_cache_hit(book: PriceBook) -> None:
    # 20,000 input of which 10,000 hit the implicit cache (20% of 0.004/1K):
    # 10,000 × 0.004/1K + 10,000 × 0.0008/1K + 1,000 × 0.016/1K = 0.04 + 0.008 + 0.016
    usage = Usage.of(input_tokens=20_000, cached_input_tokens=10_000, output_tokens=1_000)
    assert _quote(book, "qwen/qwen3-coder-plus", usage) == Decimal("0.064")


def test_qwen3_coder_flash_128k_to_256k_tier(book: PriceBook) -> None:
    # 200,000 × 0.0025/1K + 4,000 × 0.01/1K = 0.5 + 0.04
    usage = Usage.of(input_tokens=200_000, output_tokens=4_000)
    assert _quote(book, "qwen/qwen3-coder-flash", usage) == Decimal("0.54")


def test_cosyvoice_v3_flash_characters(book: PriceBook) -> None:
    # help.aliyun.com/zh/model-studio/cosyvoice-python-sdk: cosyvoice-v3-flash 1 元/万字符;
    # 5,000 characters → 0.5 元
    assert _quote(book, "qwen/cosyvoice-v3-flash", Usage.of(characters=5_000)) == Decimal("0.5")


# platform.minimaxi.com/docs/pricing/pay-as-you-go (按量计费; read through its transcription in
# github.com/petehsu/LLM-Docs, MiniMax/简体中文/pricing/pay-as-you-go.md): MiniMax-M2 2.1 / 8.4 元
# per 1M input / output tokens, cache read 0.21, cache write 2.625; speech-02-hd / speech-2.6-hd
# 3.5 元 and the turbo models 2 元 per 10,000 characters; image-01 0.025 元 per image; Hailuo
# videos per video by resolution and length.

def test_minimax_m2_with_cache_read(book: PriceBook) -> None:
    # 600,000 × 2.1/1M + 400,000 × 0.21/1M + 100,000 × 8.4/1M = 1.26 + 0.084 + 0.84
    usage = Usage.of(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    assert _quote(book, "minimax/MiniMax-M2", usage) == Decimal("2.184")


def test_minimax_speech_hd_ten_thousand_characters(book: PriceBook) -> None:
    assert _quote(book, "minimax/speech-02-hd", Usage.of(characters=10_000)) == Decimal("3.5")


def test_minimax_speech_turbo_characters(book: PriceBook) -> None:
    # 25,000 characters × 2 元/万字符 = 5 元
    assert _quote(book, "minimax/speech-2.6-turbo", Usage.of(characters=25_000)) == Decimal("5")


def test_minimax_image_01_four_images(book: PriceBook) -> None:
    assert _quote(book, "minimax/image-01", Usage.of(images=4)) == Decimal("0.1")


@pytest.mark.parametrize(("resolution", "duration", "price"),
                         [("1080P", "6", "3.50"), ("768P", "6", "2.00"), ("768P", "10", "4.00"),
                          ("512P", "6", "0.60"), ("512P", "10", "1.00"), ("1080p", "6", "3.50")])
def test_minimax_hailuo_02_per_video(book: PriceBook, resolution: str, duration: str,
                                     price: str) -> None:
    usage = Usage.of(requests=1)
    total = _quote(book, "minimax/MiniMax-Hailuo-02", usage, resolution=resolution,
                   duration=duration)
    assert total == Decimal(price)


def test_minimax_hailuo_without_resolution_is_charged_the_dearest_video(book: PriceBook) -> None:
    # No row on the page for an unknown resolution/length: the dearest row (768P 10s) bounds it.
    assert _quote(book, "minimax/MiniMax-Hailuo-02", Usage.of(requests=1)) == Decimal("4.00")
    assert _quote(book, "minimax/MiniMax-Hailuo-2.3-Fast", Usage.of(requests=1),
                  resolution="1080P", duration="6") == Decimal("2.31")


# --- Quotes from the maintained database (LobeHub model-bank, CNY) -----------------------------
# Not provider pages; they check that the tiers and variants were transcribed as the database
# states them (and that the catalog never under-charges where it approximates).

def test_doubao_seed_1_6_input_length_tiers(book: PriceBook) -> None:
    # ≤32K: 0.8 / 8 (the dearer of the two output-length rows); 32K–128K: 1.2 / 16; >128K: 2.4 / 24
    assert _quote(book, "volcano/doubao-seed-1.6",
                  Usage.of(input_tokens=10_000, output_tokens=1_000)) == Decimal("0.016")
    assert _quote(book, "volcano/doubao-seed-1.6",
                  Usage.of(input_tokens=100_000, output_tokens=1_000)) == Decimal("0.136")
    assert _quote(book, "volcano/doubao-seed-1.6",
                  Usage.of(input_tokens=200_000, output_tokens=1_000)) == Decimal("0.504")


def test_seedream_and_seedance(book: PriceBook) -> None:
    assert _quote(book, "volcano/doubao-seedream-4-0-250828", Usage.of(images=3)) == Decimal("0.6")
    video = Usage.of(output_tokens=246_000)
    assert _quote(book, "volcano/doubao-seedance-1-0-pro-250528", video) == Decimal("3.69")
    assert _quote(book, "volcano/doubao-seedance-1-5-pro-251215", video,
                  generate_audio="false") == Decimal("1.968")
    assert _quote(book, "volcano/doubao-seedance-1-5-pro-251215", video) == Decimal("3.936")


def test_glm_4_5_cny_tiers(book: PriceBook) -> None:
    # ≤32K: 3 / 14 (dearer output-length row), cache 0.6; >32K: 4 / 16, cache 0.8
    usage = Usage.of(input_tokens=50_000, cached_input_tokens=20_000, output_tokens=2_000)
    # 30,000 × 4 + 20,000 × 0.8 + 2,000 × 16 (per 1M) = 0.12 + 0.016 + 0.032
    assert _quote(book, "zhipu/glm-4.5", usage) == Decimal("0.168")
