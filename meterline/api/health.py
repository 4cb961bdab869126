"""Liveness and readiness.

``/readyz`` is ready when the database is reachable, its schema complete, and no background
loop of this process has failed ``health.FAILING_AFTER`` times in a row; it reports each loop's
last success and failures, and the journal's backlog, either way (docs/architecture.md).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from meterline.api.auth import metrics_reader
from meterline.api.state import state
from meterline.asgi.errors import public_message
from meterline.asgi.responses import JsonResponse
from meterline.errors import StoreError
from meterline.gateway.metrics import CONTENT_TYPE
from meterline.gateway.state import GatewayState
from meterline.store.engine import RETRY_AFTER_SECONDS
from meterline.store.migrate import check_schema

log = logging.getLogger("meterline.api")

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JsonResponse:
    return JsonResponse({"status": "ok"})


@router.get("/readyz", summary="The database is reachable, its schema complete, and the "
                               "background loops are not failing")
async def readyz(request: Request) -> JsonResponse:
    app = state(request)
    statuses = list(app.health)
    journal = app.journal
    background: dict[str, Any] = {"loops": {s.name: s.to_json() for s in statuses}}
    if journal is not None:
        background["journal"] = {"pending": await run_in_threadpool(journal.pending)}
    try:
        report = await run_in_threadpool(check_schema, app.engine)
    except StoreError as exc:
        log.warning("not ready: %s", exc.message)
        return JsonResponse({"status": "unavailable", "problems": [public_message(exc)],
                             **background}, 503, headers={"retry-after": str(
                                 exc.context.get("retry_after", RETRY_AFTER_SECONDS))})
    if not report.ok:
        return JsonResponse({"status": "schema_incomplete", "problems": report.problems(),
                             **background}, 503)
    failing = [f"background loop {s.name}: {s.failures} failures in a row ({s.last_error})"
               for s in statuses if s.failing]
    if failing:
        # Serving on would hide it: prices would go stale, holds stay held, alerts unsent.
        return JsonResponse({"status": "degraded", "revision": report.revision,
                             "problems": failing, **background}, 503)
    return JsonResponse({"status": "ready", "revision": report.revision, **background})


@router.get("/metrics", summary="Prometheus metrics (metrics token or admin token)",
            include_in_schema=False, dependencies=[Depends(metrics_reader)])
async def metrics(request: Request) -> Response:
    # With several workers this adds up every worker's file (gateway/metrics.py): off the loop.
    gateway: GatewayState = request.app.state.gateway
    body = await run_in_threadpool(gateway.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
