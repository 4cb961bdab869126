"""What a running app holds: its config, database engine and metering service."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
from fastapi import Request
from sqlalchemy import Engine

from meterline.config import Config
from meterline.gateway.journal import Journal
from meterline.health import Registry
from meterline.services.metering import Metering
from meterline.store import accounts


@dataclass
class AppState:
    config: Config
    engine: Engine
    metering: Metering
    #: Threads rating and writing ``POST /v1/usage`` batches at once (see Config).
    ingest_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(1))
    generated_admin_token: str | None = None
    #: The background loops' health, for /readyz.
    health: Registry = field(default_factory=Registry)
    #: The gateway's journal (its backlog is reported by /readyz).
    journal: Journal | None = None
    _admin_ok: dict[str, float] = field(default_factory=dict)

    def admin_token_valid(self, token: str, ttl: float = 30.0) -> bool:
        """Checked against the stored hashes; a valid token is remembered for ``ttl`` seconds."""
        now = time.monotonic()
        digest = accounts.hash_secret(token)
        if self._admin_ok.get(digest, 0.0) > now:
            return True
        with self.engine.connect() as conn:
            ok = accounts.admin_token_valid(conn, token)
        if ok:
            self._admin_ok[digest] = now + ttl
        return ok


def state(request: Request) -> AppState:
    found: AppState = request.app.state.meterline
    return found
