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
from meterline.store.audit import Actor
from meterline.store.sync_runs import Run

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
    found, work = await begin_sync(request, body.provider, body.account, body.cycle,
                                   actor(request))
    return JsonResponse(found.to_json(), status_code=202, background=work,
                        headers={"location": f"/api/sync/{found.id}"})


async def begin_sync(request: Request, provider: str, account: str | None,
                     cycle: str | None, who: Actor) -> tuple[Run, BackgroundTask]:
    """Plan and begin a run (bad input and a busy account refused before it starts): the run
    as ``GET /api/sync/{id}`` shows it, and the work to send once the answer is — the sync
    goes on in the background, its outcome read from its run, never awaited. ``POST /api/sync``
    and the dashboard's "sync cloud bills" button (web/reconcile.py) both start syncs here."""
    app = state(request)
    clock = app.access.clock

    def start() -> tuple[runs.Planned, int]:
        planned = runs.plan(app.config, provider, account, cycle, clock())
        run_id = runs.begin(app.engine, planned, "api", actor=who, now=clock())
        assert run_id is not None  # a run without a day is never claimed already
        return planned, run_id

    planned, run_id = await run_in_threadpool(start)
    found = await run_in_threadpool(runs.one, app.engine, run_id)
    work = BackgroundTask(runs.execute_quietly, app.engine, app.config, run_id, planned,
                          actor=who, now=clock)
    return found, work


@router.get("/sync", summary="Bill sync runs, newest first")
async def list_runs(request: Request, provider: str | None = None,
                    account: str | None = None,
                    limit: int = Query(50, ge=1, le=500),
                    before: int | None = Query(None, ge=1, description="runs older than this "
                                                                        "id")) -> JsonResponse:
    found = await run_in_threadpool(lambda: runs.history(
        state(request).engine, provider=provider, account=account, limit=limit, before=before))
    return JsonResponse({"runs": [run.to_json() for run in found]})


@router.get("/sync/{run_id}", summary="One bill sync run, with its progress")
async def get_run(request: Request, run_id: int = Path(ge=1, le=2**63 - 1)) -> JsonResponse:
    found = await run_in_threadpool(runs.one, state(request).engine, run_id)
    return JsonResponse(found.to_json())


@router.get("/balances", summary="Each provider account's latest balances")
async def balances(request: Request) -> JsonResponse:
    found = await run_in_threadpool(runs.balances, state(request).engine)
    return JsonResponse({"balances": [balance.to_json() for balance in found]})
