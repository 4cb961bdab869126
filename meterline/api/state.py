"""What a running app holds: its config, database engine and metering service."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from fastapi import Request
from sqlalchemy import Engine

from meterline.config import Config
from meterline.gateway.journal import Journal
from meterline.health import Registry
from meterline.services.admins import AdminAccess
from meterline.services.metering import Metering


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
    #: Admin tokens and dashboard sessions (checked in the database at every request).
    admins: AdminAccess | None = None

    def __post_init__(self) -> None:
        if self.admins is None:
            self.admins = AdminAccess(self.engine)

    @property
    def access(self) -> AdminAccess:
        assert self.admins is not None  # set in __post_init__
        return self.admins


def state(request: Request) -> AppState:
    found: AppState = request.app.state.meterline
    return found
