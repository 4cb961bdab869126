"""Admin API for insights: the month-end forecast and optimisation hints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import admin
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.services import hints as hint_service
from meterline.services import insights

router = APIRouter(prefix="/api", tags=["insights"], dependencies=[Depends(admin)])


@router.get("/forecast", summary="Month-end spend forecast, with monthly budgets' projections")
async def forecast(request: Request, tenant: str | None = Query(
        None, description="default: every tenant, in the reporting currency")) -> JsonResponse:
    app = state(request)
    found = await run_in_threadpool(insights.forecast, app.engine, tenant,
                                    reporting_currency=app.config.reporting_currency)
    return JsonResponse(found.to_json())


@router.get("/hints", summary="Optimisation hints: caching, cheaper models, unused keys, "
                              "spend concentration")
async def hints(request: Request, tenant: str,
                days: int = Query(hint_service.DEFAULT_DAYS,
                                  description=f"the window, 1 to {hint_service.MAX_DAYS}")
                ) -> JsonResponse:
    found = await run_in_threadpool(hint_service.hints, state(request).engine, tenant,
                                    days=days)
    return JsonResponse({"tenant": tenant, "days": days,
                         "hints": [hint.to_json() for hint in found]})
