"""Admin API for provider bills and reconciliation: ``POST /api/provider-bills`` takes a bill
file as the request body (a FOCUS CSV), ``GET /api/reconcile`` compares (docs/reconcile.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import actor, admin
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse, body_bytes
from meterline.errors import InvalidInput
from meterline.services import reconciliation

router = APIRouter(prefix="/api", tags=["reconciliation"], dependencies=[Depends(admin)])


@router.post("/provider-bills", status_code=201,
             summary="Import a provider's bill file (the body); it replaces what was stored for "
                     "its providers and days",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {
                 "type": "string"}}}, "required": True}})
async def import_bill(request: Request, file_format: str = Query(
        "focus", alias="format",
        description="focus, or a provider's console export: aliyun, tencent, volcano, baidu, "
                    "deepseek, openai, anthropic"),
        provider: str | None = Query(None, description="meterline's name of the provider "
                                     "(wins over the file's)")
        ) -> JsonResponse:
    try:
        text = (await body_bytes(request)).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body: a bill file in UTF-8", field="body") from None
    found = await run_in_threadpool(lambda: reconciliation.import_bill(
        state(request).engine, text, file_format, provider, actor=actor(request)))
    return JsonResponse(found.to_json(), status_code=201)


@router.get("/reconcile", summary="Metered cost against the providers' bills")
async def reconcile(request: Request, cycle: str = Query(description="YYYY-MM"),
                    provider: str | None = None,
                    tolerance: str = Query("0.01", description="a share: 0.01 is 1 %"),
                    currency: str | None = Query(None, description="the report's currency")
                    ) -> JsonResponse:
    app = state(request)
    found = await run_in_threadpool(
        lambda: reconciliation.report(app.engine, cycle, provider=provider, tolerance=tolerance,
                                      currency=currency,
                                      reporting_currency=app.config.reporting_currency,
                                      book=app.metering.book))
    return JsonResponse(found.to_json())
