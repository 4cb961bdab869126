"""Admin API for bills: a bill (open ones computed live), status changes (one, or a batch that
is all or nothing), exports, the list of stored bills, and refunds of usage records.

Parameters arrive as plain strings and are checked by the services, so a bad one answers 400
naming its field, an unknown tenant or user 404 (docs/bills.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from meterline.api.auth import actor, admin
from meterline.api.inputs import refuse_unknown
from meterline.api.state import state
from meterline.asgi.errors import error_body
from meterline.asgi.responses import JsonResponse, json_body
from meterline.errors import BatchRefused, InvalidInput
from meterline.services import bill_exports
from meterline.services import bills as bill_service
from meterline.services import refunds as refund_service

router = APIRouter(prefix="/api", tags=["bills"], dependencies=[Depends(admin)])

USER = Query(None, description="one user of the tenant (default: the tenant's own bill)")
CYCLE_DOC = "a calendar month in the tenant's timezone, YYYY-MM"


def _object(raw: Any, *allowed: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidInput("body: must be a JSON object", field="body")
    refuse_unknown(raw, allowed)
    return raw


@router.get("/bills", summary="Stored bills (issued, paid, void), newest cycle first")
async def list_bills(request: Request, tenant: str | None = None,
                     status: str | None = Query(None, description="issued, paid or void"),
                     user: str | None = USER,
                     limit: int = Query(1000, ge=1, le=bill_service.MAX_LIST)) -> JsonResponse:
    found = await run_in_threadpool(bill_service.list_bills, state(request).engine, tenant,
                                    status, user, limit)
    return JsonResponse({"bills": [stored.to_json() for stored in found]})


class StatusIn(BaseModel):
    status: str = Field(description="issued, paid or void")
    user: str | None = Field(None, description="one user's bill (default: the tenant's)")


class BillRef(BaseModel):
    tenant: str
    cycle: str = Field(description=CYCLE_DOC)
    user: str | None = None


#: Written out rather than generated, so the OpenAPI schema holds no dangling ``$defs`` refs.
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["status", "bills"], "title": "BatchIn",
    "properties": {
        "status": {"type": "string", "description": "issued, paid or void"},
        "bills": {"type": "array", "minItems": 1, "maxItems": 1000,
                  "description": "the bills; all change or none does",
                  "items": BillRef.model_json_schema()},
    },
}


@router.post("/bills/status", summary="Change the status of many bills: all or nothing",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": BATCH_SCHEMA}}, "required": True}})
async def set_status_many(request: Request) -> JsonResponse:
    body = _object(await json_body(request), "status", "bills")
    try:
        found = await run_in_threadpool(
            lambda: bill_service.set_status_many(state(request).engine, body.get("status"),
                                                 body.get("bills"), actor=actor(request)))
    except BatchRefused as exc:
        answer = error_body(exc.message, "invalid_request_error", exc.code, exc.field)
        answer["error"]["refusals"] = exc.context["refusals"]  # type: ignore[index]
        return JsonResponse(answer, status_code=400)
    return JsonResponse(found.to_json())


@router.get("/bills/{tenant}/{cycle}", summary="A bill: lines and total (open: computed now)")
async def get_bill(tenant: str, cycle: str, request: Request,
                   user: str | None = USER) -> JsonResponse:
    found = await run_in_threadpool(bill_service.get_bill, state(request).engine, tenant, cycle,
                                    user)
    return JsonResponse(found.to_json())


@router.post("/bills/{tenant}/{cycle}/status",
             summary="Issue, pay or void a bill (open → issued → paid, open | issued → void)",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": StatusIn.model_json_schema()}}, "required": True}})
async def set_status(tenant: str, cycle: str, request: Request,
                     user: str | None = USER) -> JsonResponse:
    body = _object(await json_body(request), "status", "user")
    found = await run_in_threadpool(
        lambda: bill_service.set_status(state(request).engine, tenant, cycle,
                                        body.get("status"), body.get("user", user),
                                        actor=actor(request)))
    return JsonResponse(found.to_json())


@router.get("/bills/{tenant}/{cycle}/export", summary="A bill as a CSV, XLSX or FOCUS file",
            response_class=Response)
async def export_bill(tenant: str, cycle: str, request: Request,
                      format: str | None = Query(None, description="csv, xlsx or focus"),
                      lang: str | None = Query(None, description="en (default) or zh"),
                      user: str | None = USER) -> Response:
    found = await run_in_threadpool(bill_exports.export, state(request).engine, tenant, cycle,
                                    format, lang, user)
    return Response(found.content, media_type=found.media_type, headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"',
        "X-Meterline-Bill-Total": found.total, "X-Meterline-Bill-Status": found.status})


class RefundIn(BaseModel):
    reason: str | None = Field(None, max_length=refund_service.MAX_REASON)


@router.post("/usage/{request_id}/refund", status_code=201,
             summary="Refund a usage record with a new, negative record (once)",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": RefundIn.model_json_schema()}}, "required": False}})
async def refund(request_id: str, request: Request) -> JsonResponse:
    raw = await request.body()
    body = _object(await json_body(request), "reason") if raw.strip() else {}
    found = await run_in_threadpool(
        lambda: refund_service.refund(state(request).engine, request_id, body.get("reason"),
                                      actor=actor(request)))
    return JsonResponse(found.to_json(), status_code=200 if found.duplicate else 201)
