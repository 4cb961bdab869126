"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.http import JsonResponse
from meterline.api.state import state
from meterline.errors import StoreError
from meterline.store.migrate import check_schema

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JsonResponse:
    return JsonResponse({"status": "ok"})


@router.get("/readyz", summary="The database is reachable and its schema complete")
async def readyz(request: Request) -> JsonResponse:
    try:
        report = await run_in_threadpool(check_schema, state(request).engine)
    except StoreError as exc:
        return JsonResponse({"status": "unavailable", "problems": [exc.message]}, 503)
    if not report.ok:
        return JsonResponse({"status": "schema_incomplete", "problems": report.problems()}, 503)
    return JsonResponse({"status": "ready", "revision": report.revision})
