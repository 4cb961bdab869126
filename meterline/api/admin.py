"""Admin API (admin token): tenants, keys, prices, FX rates, usage records, rerating."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import actor, admin
from meterline.api.inputs import model_body, object_body, schema
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.domain.events import parse_timestamp
from meterline.domain.money import format_decimal
from meterline.domain.prices import VERSION_FIELDS
from meterline.errors import InvalidInput
from meterline.services import accounts as account_service
from meterline.services import prices as price_service
from meterline.services.records import UsageRecordView
from meterline.store import accounts, audit, ledger, pricing

router = APIRouter(prefix="/api", tags=["admin"], dependencies=[Depends(admin)])


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    currency: str = "USD"
    timezone: str = "UTC"


class KeyIn(BaseModel):
    tenant: str = Field(min_length=1)
    user: str | None = Field(None, min_length=1, max_length=128)
    models: list[str] | None = Field(None, description="model names (none empty)")
    name: str | None = Field(None, max_length=128)
    expires_at: datetime | None = None
    rpm: int | None = Field(None, gt=0, description="requests per minute (all processes)")
    tpm: int | None = Field(None, gt=0, description="tokens per minute (all processes)")


class FxIn(BaseModel):
    base: str
    quote: str
    rate: str = Field(description="decimal string, e.g. \"7.1\"")
    effective_from: datetime | None = None


#: The top-level fields of a price version in the catalog shape, as PriceVersion.parse reads
#: them (docs/prices.md); the endpoint refuses any other, the catalog's own files are not held
#: to this.
def _utc(value: datetime | None, name: str) -> datetime | None:
    """An aware time given in a body, in UTC; refuses naive times and ones UTC cannot hold."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(f"{name}: needs a timezone (e.g. Z)", field=name)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name}: {value.isoformat()} is out of range", field=name) from None


def _run(request: Request) -> Any:
    return state(request).engine


@router.post("/tenants", status_code=201, summary="Create a tenant",
             openapi_extra=schema(TenantIn))
async def create_tenant(request: Request) -> JsonResponse:
    body = await model_body(request, TenantIn)
    tenant = await run_in_threadpool(
        lambda: account_service.create_tenant(_run(request), body.name, body.currency,
                                              body.timezone, actor=actor(request)))
    return JsonResponse(tenant.to_json(), status_code=201)


@router.get("/tenants", summary="List tenants")
async def list_tenants(request: Request) -> JsonResponse:
    def work() -> list[dict[str, Any]]:
        with _run(request).connect() as conn:
            return [t.to_json() for t in accounts.list_tenants(conn)]
    return JsonResponse({"tenants": await run_in_threadpool(work)})


@router.get("/tenants/{tenant}/users", summary="List a tenant's users")
async def list_users(tenant: str, request: Request) -> JsonResponse:
    def work() -> list[str]:
        with _run(request).connect() as conn:
            return accounts.list_users(conn, tenant)
    return JsonResponse({"users": await run_in_threadpool(work)})


@router.post("/keys", status_code=201, summary="Create an API key (the key is shown once)",
             openapi_extra=schema(KeyIn))
async def create_key(request: Request) -> JsonResponse:
    body = await model_body(request, KeyIn)
    expires_at = _utc(body.expires_at, "expires_at")

    secret, key = await run_in_threadpool(
        lambda: account_service.create_key(_run(request), body.tenant, actor=actor(request),
                                           user=body.user, models=body.models, name=body.name,
                                           expires_at=expires_at, rpm=body.rpm, tpm=body.tpm))
    return JsonResponse({"key": secret, **key.to_json()}, status_code=201)


@router.get("/keys", summary="List API keys (never the keys themselves)")
async def list_keys(request: Request, tenant: str | None = None) -> JsonResponse:
    def work() -> list[dict[str, Any]]:
        with _run(request).connect() as conn:
            return [k.to_json() for k in accounts.list_keys(conn, tenant)]
    return JsonResponse({"keys": await run_in_threadpool(work)})


@router.post("/keys/{key_id}/revoke", summary="Revoke an API key")
async def revoke_key(key_id: str, request: Request) -> JsonResponse:
    key = await run_in_threadpool(
        lambda: account_service.revoke_key(_run(request), key_id, actor=actor(request)))
    return JsonResponse(key.to_json())


@router.get("/prices", summary="List price versions")
async def list_prices(request: Request, model: str | None = None) -> JsonResponse:
    book = state(request).metering.book
    models = [book.resolve(model)] if model is not None else book.models()
    return JsonResponse({"versions": [
        entry.version.to_json() | {"id": entry.version.id, "layer": entry.layer.label}
        for name in models for entry in book.entries(name)]})


@router.get("/prices/sources", summary="Which layer prices each model, and where layers differ")
async def price_sources(request: Request, model: str | None = None,
                        provider: str | None = None, disagree: bool = False) -> JsonResponse:
    book = state(request).metering.book
    rows = price_service.sources(book, datetime.now(UTC), model=model, provider=provider,
                                 disagreeing=disagree)
    return JsonResponse({"models": [row.to_json() for row in rows]})


@router.post("/prices", status_code=201, summary="Add a price version (catalog entry shape)")
async def add_price(request: Request) -> JsonResponse:
    body = await object_body(request, VERSION_FIELDS)
    version = await run_in_threadpool(
        lambda: price_service.add_version(_run(request), body, actor=actor(request)))
    state(request).metering.refresh(force=True)
    return JsonResponse(version.to_json() | {"id": version.id}, status_code=201)


@router.post("/prices/import", summary="Import a price file (?format=litellm|meterline)")
async def import_prices(request: Request, format: str = "litellm") -> JsonResponse:
    raw = await request.body()
    summary = await run_in_threadpool(
        lambda: price_service.import_file(_run(request), raw, format, actor=actor(request)))
    state(request).metering.refresh(force=True)
    return JsonResponse(summary.to_json())


@router.get("/fx", summary="List FX rates")
async def list_fx(request: Request) -> JsonResponse:
    def work() -> list[dict[str, str]]:
        with _run(request).connect() as conn:
            return [{"base": r.base, "quote": r.quote, "rate": format_decimal(r.rate),
                     "effective_from": r.effective_from.isoformat()}
                    for r in pricing.load_fx(conn).all()]
    return JsonResponse({"rates": await run_in_threadpool(work)})


@router.post("/fx", status_code=201, summary="Add an FX rate: 1 base = rate quote",
             openapi_extra=schema(FxIn))
async def set_fx(request: Request) -> JsonResponse:
    body = await model_body(request, FxIn)
    effective_from = _utc(body.effective_from, "effective_from")
    fx = await run_in_threadpool(
        lambda: price_service.set_fx(_run(request), body.base, body.quote, body.rate,
                                     effective_from, actor=actor(request)))
    state(request).metering.refresh(force=True)
    return JsonResponse({"base": fx.base, "quote": fx.quote, "rate": format_decimal(fx.rate),
                         "effective_from": fx.effective_from.isoformat()}, status_code=201)


@router.get("/usage", summary="Usage records, filtered")
async def list_usage(
    request: Request, tenant: str | None = None, user: str | None = None,
    key: str | None = None, model: str | None = None, provider: str | None = None,
    status: str | None = None, request_id: str | None = None,
    start: str | None = None, end: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
    archived: bool = Query(False, description="Read archived records too (meterline archive)"),
) -> JsonResponse:
    since = parse_timestamp(start, "start") if start else None
    until = parse_timestamp(end, "end") if end else None
    if since and until and until < since:
        raise InvalidInput("end: must not be before start", field="end")

    def work() -> list[dict[str, Any]]:
        with _run(request).connect() as conn:
            if tenant is not None:
                accounts.get_tenant(conn, tenant)  # 404, as everywhere a tenant filter is given
            rows = ledger.list_records(conn, tenant_id=tenant, user_id=user, key_id=key,
                                       model=model, provider=provider, status=status,
                                       request_id=request_id, since=since, until=until,
                                       limit=limit, archived=archived)
            lines = ledger.lines_of(conn, [r.request_id for r in rows], archived=archived)
        return [UsageRecordView.of_row(r, lines[r.request_id]).to_json() for r in rows]
    return JsonResponse({"records": await run_in_threadpool(work)})


@router.post("/rerate", summary="Price unpriced records; convert records that lacked an FX rate")
async def rerate(request: Request) -> JsonResponse:
    metering = state(request).metering
    priced, left = await run_in_threadpool(metering.rerate)
    converted, unconverted = await run_in_threadpool(metering.convert_missing_fx)
    found = {"priced": priced, "still_unpriced": left, "converted": converted,
             "still_fx_missing": unconverted}
    await run_in_threadpool(lambda: audit.record_done(_run(request), actor(request),
                                                      "usage.rerate", details=found))
    return JsonResponse(found)
