"""What the gateway holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from meterline.gateway.admission import Admission
from meterline.gateway.idempotency import IdempotencyGuard
from meterline.gateway.keys import KeyCache
from meterline.gateway.metrics import Metrics
from meterline.gateway.ratelimit import RateLimits
from meterline.gateway.recorder import Recorder
from meterline.gateway.routing import Router
from meterline.gateway.upstream import Upstreams
from meterline.health import Registry
from meterline.services.metering import Metering
from meterline.store.accounts import Tenant, get_tenant


@dataclass
class GatewayState:
    metering: Metering
    router: Router
    keys: KeyCache
    upstreams: Upstreams
    recorder: Recorder
    admission: Admission
    rate_limits: RateLimits
    idempotency: IdempotencyGuard
    metrics: Metrics = field(default_factory=Metrics)
    #: The process's background loops (the journal drainer's among them), for /metrics.
    health: Registry = field(default_factory=Registry)
    _tenants: dict[str, Tenant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Its loops (``health`` is read at each scrape, so setting it later counts), leases
        # and journal are reported from the start: with several workers, each copies its own.
        self.metrics.follow(self)

    async def tenant(self, tenant_id: str) -> Tenant:
        """Tenants never change once created, so each is read from the database once."""
        found = self._tenants.get(tenant_id)
        if found is None:
            engine = self.metering.engine

            def load() -> Tenant:
                with engine.connect() as conn:
                    return get_tenant(conn, tenant_id)

            found = self._tenants[tenant_id] = await run_in_threadpool(load)
        return found
