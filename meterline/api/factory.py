"""Entry points for serving: ``app_from_env`` for ``uvicorn --factory`` with several workers
(the config comes from the environment the parent process set: ``METERLINE_CONFIG``,
``METERLINE_DATABASE_URL``, ``METERLINE_WORKERS``), and the garbage-collector settings of a
serving process."""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI

from meterline.api.app import create_app
from meterline.config import Config, load_config

#: Allocations between young-generation collections (CPython's default is 700). A batch of
#: 1000 usage events makes tens of thousands of objects that live until its response is sent;
#: with the default, each batch sets off dozens of collections that scan them again and again,
#: and full collections over the whole heap (measured: about an eighth of ingestion's CPU).
GC_YOUNG_THRESHOLD = 10_000
GC_OLDER_THRESHOLD = 10


def tune_garbage_collector() -> None:
    """For a serving process, once its app is built: what exists now (code, the price book,
    SQLAlchemy's tables) lives as long as the process, so collections stop scanning it
    (``gc.freeze``), and young collections run less often. Reference counting still frees
    almost everything at once; the collector is only for cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_OLDER_THRESHOLD, GC_OLDER_THRESHOLD)


def serving_app(config: Config, *, prepare: bool = True, workers: int = 1) -> FastAPI:
    """The app of a ``meterline serve`` process (one of ``workers``)."""
    app = create_app(config, prepare=prepare, workers=workers)
    tune_garbage_collector()
    return app


def app_from_env() -> FastAPI:
    workers = os.environ.get("METERLINE_WORKERS", "1")
    return serving_app(load_config(), prepare=False,
                       workers=int(workers) if workers.isascii() and workers.isdigit() else 1)
