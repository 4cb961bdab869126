"""Admin API: the audit log of admin actions, newest first, with filters and pages
(docs/audit.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import admin
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.services import audit as audit_service

router = APIRouter(prefix="/api", tags=["admin"], dependencies=[Depends(admin)])


@router.get("/audit", summary="The audit log of admin actions, newest first")
async def list_audit(
    request: Request,
    since: str | None = Query(None, description="from this time (ISO 8601, included)"),
    until: str | None = Query(None, description="until this time (ISO 8601, excluded)"),
    action: str | None = Query(None, description="an action (bill.issue) or a family of "
                                                 "them (bill)"),
    actor: str | None = Query(None, description="an admin token's name, session:<name> or "
                                                "cli"),
    tenant: str | None = None,
    limit: int = Query(audit_service.DEFAULT_LIMIT, ge=1, le=audit_service.MAX_LIMIT),
    before: int | None = Query(None, ge=1, description="entries older than this id: the "
                                                       "next_before of the page before"),
) -> JsonResponse:
    found = await run_in_threadpool(lambda: audit_service.entries(
        state(request).engine, since=since, until=until, action=action, actor=actor,
        tenant=tenant, limit=limit, before=before))
    return JsonResponse(found.to_json())
