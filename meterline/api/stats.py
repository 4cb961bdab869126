"""Admin API for statistics: summary, breakdowns and the daily trend (docs/stats.md).

Parameters arrive as plain strings and are checked by the service, so a bad one answers 400
naming its field, an unknown tenant 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import admin
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.services import stats as stats_service

router = APIRouter(prefix="/api", tags=["statistics"], dependencies=[Depends(admin)])

TENANT = Query(None, description="a tenant's id; without it, every tenant in the reporting "
                                 "currency")


@router.get("/summary", summary="Total, this month, today, calls and success rate")
async def summary(request: Request, tenant: str | None = TENANT) -> JsonResponse:
    app = state(request)
    found = await run_in_threadpool(stats_service.summary, app.engine, tenant,
                                    app.config.reporting_currency)
    return JsonResponse(found.to_json())


@router.get("/stats", summary="Cost, calls and tokens per group over a range of days")
async def stats(request: Request, tenant: str | None = TENANT,
                start: str | None = Query(None, description="first day, YYYY-MM-DD or ISO "
                                                            "8601 (default: 1st of the month)"),
                end: str | None = Query(None, description="last day, included (default: "
                                                          "today)"),
                group_by: str | None = Query(None, description="provider, model, user, key, "
                                                               "meter, status, tag, purpose, "
                                                               "tenant or day (default: model)")
                ) -> JsonResponse:
    app = state(request)
    found = await run_in_threadpool(
        lambda: stats_service.stats(app.engine, tenant, app.config.reporting_currency,
                                    start=start, end=end, group_by=group_by))
    return JsonResponse(found.to_json())


@router.get("/trend/daily", summary="Cost and calls per day over the last N days")
async def trend(request: Request, tenant: str | None = TENANT,
                days: str | None = Query(None, description="1 to 3660 (default 30)")
                ) -> JsonResponse:
    app = state(request)
    found = await run_in_threadpool(stats_service.trend, app.engine, tenant,
                                    app.config.reporting_currency, days)
    return JsonResponse(found.to_json())
