"""The ASGI app factory: everything the app needs is built here from an explicit Config."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from meterline import __version__
from meterline.api import admin, errors, health, usage
from meterline.api.state import AppState
from meterline.config import Config
from meterline.services.bootstrap import ensure_admin_token, prepare_database, sync_providers
from meterline.services.metering import Metering
from meterline.store.engine import make_engine

log = logging.getLogger("meterline")


def create_app(config: Config, *, prepare: bool = True) -> FastAPI:
    """Build the app. With ``prepare`` the database is migrated and the catalog synced first."""
    engine = make_engine(config.database_url)
    generated = None
    if prepare:
        prepare_database(engine)
        sync_providers(engine, config)
        generated = ensure_admin_token(engine, config)
    app_state = AppState(config=config, engine=engine, metering=Metering(engine),
                         generated_admin_token=generated)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="meterline", version=__version__, lifespan=lifespan,
                  description="LLM API gateway and billing service.")
    app.state.meterline = app_state
    errors.install(app)
    app.include_router(health.router)
    app.include_router(usage.router)
    app.include_router(admin.router)
    return app
