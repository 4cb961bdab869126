"""Entry point for ``uvicorn --factory`` with several workers: the config comes from the
environment the parent process set (``METERLINE_CONFIG``, ``METERLINE_DATABASE_URL``)."""

from __future__ import annotations

from fastapi import FastAPI

from meterline.api.app import create_app
from meterline.config import load_config


def app_from_env() -> FastAPI:
    return create_app(load_config(), prepare=False)
