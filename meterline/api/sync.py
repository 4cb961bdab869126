"""Admin API of bill syncs (docs/reconcile.md, "Syncing over HTTP"): ``POST /api/sync`` starts
a sync of a provider account and answers 202 at once with its run, which goes on in the
background; ``GET /api/sync`` lists the runs, ``GET /api/sync/{id}`` reads one with its
progress, ``GET /api/balances`` the providers' latest balances."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from meterline.api.auth import actor, admin
from meterline.api.inputs import model_body, schema
from meterline.api.state import state
from meterline.asgi.responses import JsonResponse
from meterline.billing import runs

router = APIRouter(prefix="/api", tags=["reconciliation"], dependencies=[Depends(admin)])


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    provider: str
    account: str | None = None
    cycle: str | None = None


@router.post("/sync", status_code=202, openapi_extra=schema(SyncRequest),
             summary="Start a sync of a provider account's bill and balance (in the "
                     "background); 202 with its run")
async def start_sync(request: Request) -> JsonResponse:
    body = await model_body(request, SyncRequest)
    app = state(request)
    clock = app.access.clock
    who = actor(request)

    def start() -> tuple[runs.Planned, int]:
        planned = runs.plan(app.config, body.provider, body.account, body.cycle, clock())
        run_id = runs.begin(app.engine, planned, "api", actor=who, now=clock())
        assert run_id is not None  # a run without a day is never claimed already
        return planned, run_id

    planned, run_id = await run_in_threadpool(start)
    found = await run_in_threadpool(runs.one, app.engine, run_id)
    # Sent once the answer is: the sync's outcome is read from its run, never awaited here.
    work = BackgroundTask(runs.execute_quietly, app.engine, app.config, run_id, planned,
                          actor=who, now=clock)
    return JsonResponse(found, status_code=202, background=work,
                        headers={"location": f"/api/sync/{run_id}"})


@router.get("/sync", summary="Bill sync runs, newest first")
async def list_runs(request: Request, provider: str | None = None,
                    account: str | None = None,
                    limit: int = Query(50, ge=1, le=500),
                    before: int | None = Query(None, ge=1, description="runs older than this "
                                                                        "id")) -> JsonResponse:
    found = await run_in_threadpool(lambda: runs.history(
        state(request).engine, provider=provider, account=account, limit=limit, before=before))
    return JsonResponse({"runs": found})


@router.get("/sync/{run_id}", summary="One bill sync run, with its progress")
async def get_run(request: Request, run_id: int = Path(ge=1, le=2**63 - 1)) -> JsonResponse:
    return JsonResponse(await run_in_threadpool(runs.one, state(request).engine, run_id))


@router.get("/balances", summary="Each provider account's latest balances")
async def balances(request: Request) -> JsonResponse:
    found = await run_in_threadpool(runs.balances, state(request).engine)
    return JsonResponse({"balances": found})
