"""Entry point for ``uvicorn --factory`` with several workers: the config comes from the
environment the parent process set (``METERLINE_CONFIG``, ``METERLINE_DATABASE_URL``,
``METERLINE_WORKERS``)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from meterline.api.app import create_app
from meterline.config import load_config


def app_from_env() -> FastAPI:
    workers = os.environ.get("METERLINE_WORKERS", "1")
    return create_app(load_config(), prepare=False,
                      workers=int(workers) if workers.isdigit() else 1)
