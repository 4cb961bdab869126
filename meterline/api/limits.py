"""Admin API for spend control: budgets, alerts, quotas and plans."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import actor, admin
from meterline.api.inputs import known_tenant, model_body, object_body, schema
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.services import alerts as alert_service
from meterline.services import budgets as budget_service
from meterline.services import quotas as quota_service

router = APIRouter(prefix="/api", tags=["limits"], dependencies=[Depends(admin)])


class BudgetIn(BaseModel):
    """A budget: every scope field left out widens it (none at all: the whole deployment)."""

    tenant: str | None = Field(None, min_length=1)
    user: str | None = Field(None, min_length=1)
    key: str | None = Field(None, min_length=1, description="an API key's id")
    provider: str | None = Field(None, min_length=1)
    model: str | None = Field(None, min_length=1)
    amount: str = Field(description='decimal string, e.g. "10" (a JSON number is refused)')
    currency: str | None = Field(None, description="default: the tenant's, else reporting")
    period: str = Field("month", description="day, month or total")
    mode: str = Field("block", description="block or alert")
    thresholds: list[str] | None = Field(None, description='default ["0.5", "0.8", "1"] '
                                                          '(strings, like money)')
    timezone: str | None = Field(None, description="periods' timezone; default the tenant's")


@router.post("/budgets", status_code=201, summary="Create or change a budget",
             openapi_extra=schema(BudgetIn))
async def set_budget(request: Request) -> JsonResponse:
    # Amounts and thresholds go to decimal() as they came: a JSON float is refused there, as
    # everywhere money is given (a float's text is not always what the client meant).
    raw = await object_body(request, list(BudgetIn.model_fields))
    app = state(request)
    found = await run_in_threadpool(
        lambda: budget_service.set_budget(app.engine, raw, app.config.reporting_currency,
                                          actor=actor(request)))
    return JsonResponse(found.to_json(), status_code=201)


@router.get("/budgets", summary="Budgets with spent, reserved, remaining and projection")
async def list_budgets(request: Request, tenant: str | None = None) -> JsonResponse:
    await known_tenant(state(request).engine, tenant)
    found = await run_in_threadpool(budget_service.list_state, state(request).engine, tenant)
    return JsonResponse({"budgets": [budget.to_json() for budget in found]})


@router.delete("/budgets/{budget_id}", summary="Delete a budget")
async def delete_budget(budget_id: str, request: Request) -> JsonResponse:
    await run_in_threadpool(lambda: budget_service.delete(state(request).engine, budget_id,
                                                          actor=actor(request)))
    return JsonResponse({"deleted": budget_id})


class ResolveIn(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=1000)


@router.get("/alerts", summary="Alerts, newest first")
async def list_alerts(request: Request, tenant: str | None = None,
                      resolved: bool | None = None,
                      limit: int = Query(100, ge=1, le=10_000)) -> JsonResponse:
    await known_tenant(state(request).engine, tenant)
    found = await run_in_threadpool(alert_service.list_alerts, state(request).engine, tenant,
                                    resolved, limit)
    return JsonResponse({"alerts": [stored.to_json() for stored in found]})


@router.post("/alerts/resolve", summary="Resolve alerts", openapi_extra=schema(ResolveIn))
async def resolve_alerts(request: Request) -> JsonResponse:
    body = await model_body(request, ResolveIn)
    count = await run_in_threadpool(lambda: alert_service.resolve(
        state(request).engine, body.ids, actor=actor(request)))
    return JsonResponse({"resolved": count})


class GrantIn(BaseModel):
    tenant: str = Field(min_length=1)
    user: str | None = Field(None, min_length=1)
    type: str = Field(description="text_token, image, tts_character or video_second")
    amount: int | str = Field(description="whole units")
    bonus: int | str | None = Field(None, description="extra units of a package")
    source: str = Field("admin_grant", description="plan, package or admin_grant")
    reference: str | None = None
    reason: str | None = None
    expires_at: str | None = None


@router.post("/quotas/grants", status_code=201, summary="Grant quota units to a tenant",
             openapi_extra=schema(GrantIn))
async def grant_quota(request: Request) -> JsonResponse:
    raw = await object_body(request, list(GrantIn.model_fields))
    found = await run_in_threadpool(lambda: quota_service.grant(state(request).engine, raw,
                                                                actor=actor(request)))
    return JsonResponse(found.to_json(), status_code=201)


@router.get("/quotas/{tenant}", summary="A tenant's quota balance by type and source, "
                                         "and its quota ledger")
async def show_quota(tenant: str, request: Request,
                     history: int = Query(100, ge=0, le=10_000)) -> JsonResponse:
    found = await run_in_threadpool(quota_service.show, state(request).engine, tenant, history)
    return JsonResponse(found.to_json())


class PlanIn(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    allowances: dict[str, int] = Field(description="units per cycle by quota type")


@router.post("/plans", status_code=201, summary="Create or change a subscription plan",
             openapi_extra=schema(PlanIn))
async def set_plan(request: Request) -> JsonResponse:
    body = await model_body(request, PlanIn)
    found = await run_in_threadpool(lambda: quota_service.set_plan(
        state(request).engine, body.id, body.allowances, actor=actor(request)))
    return JsonResponse(found.to_json(), status_code=201)


@router.get("/plans", summary="Subscription plans")
async def list_plans(request: Request) -> JsonResponse:
    found = await run_in_threadpool(quota_service.list_plans, state(request).engine)
    return JsonResponse({"plans": [plan.to_json() for plan in found]})


class SubscriptionIn(BaseModel):
    plan: str


@router.put("/tenants/{tenant}/plan", summary="Subscribe a tenant to a plan",
            openapi_extra=schema(SubscriptionIn))
async def subscribe(tenant: str, request: Request) -> JsonResponse:
    body = await model_body(request, SubscriptionIn)
    found = await run_in_threadpool(lambda: quota_service.subscribe(
        state(request).engine, tenant, body.plan, actor=actor(request)))
    return JsonResponse(found.to_json())
