"""Admin API: the admin tokens themselves (named, listed with their last use, revocable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import actor, admin
from meterline.api.inputs import model_body, schema
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.services import admins

router = APIRouter(prefix="/api", tags=["admin"], dependencies=[Depends(admin)])


class AdminTokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64,
                      description="letters, digits, '-', '_' or '.'; unique among active tokens")


@router.post("/admin-tokens", status_code=201, openapi_extra=schema(AdminTokenIn),
             summary="Create an admin token (the token is shown once)")
async def create_admin_token(request: Request) -> JsonResponse:
    body = await model_body(request, AdminTokenIn)
    token, stored = await run_in_threadpool(
        lambda: admins.create_token(state(request).engine, body.name, actor=actor(request)))
    return JsonResponse({"token": token, **stored.to_json()}, status_code=201)


@router.get("/admin-tokens", summary="List admin tokens with their last use (never the tokens)")
async def list_admin_tokens(request: Request) -> JsonResponse:
    found = await run_in_threadpool(admins.list_tokens, state(request).engine)
    return JsonResponse({"admin_tokens": [t.to_json() for t in found]})


@router.post("/admin-tokens/{token}/revoke",
             summary="Revoke an admin token (by id, or active name) and end its sessions")
async def revoke_admin_token(token: str, request: Request) -> JsonResponse:
    def work() -> dict[str, Any]:
        return admins.revoke_token(state(request).engine, token,
                                   actor=actor(request)).to_json()
    return JsonResponse(await run_in_threadpool(work))
