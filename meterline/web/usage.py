"""``/usage``: usage records, newest first, filtered by tenant, user, model, provider and
status (the admin API's ``GET /api/usage`` as a page)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterline.api.state import state
from meterline.services.records import record_json
from meterline.store import ledger
from meterline.web.layout import field, render, table

SHOWN: Final = 200
FILTERS: Final = (("tenant", "Tenant"), ("user", "User"), ("model", "Model"),
                  ("provider", "Provider"), ("status", "Status"))

router = APIRouter(include_in_schema=False)


@router.get("/usage")
async def usage_page(request: Request, tenant: str | None = None, user: str | None = None,
                     model: str | None = None, provider: str | None = None,
                     status: str | None = None) -> Response:
    chosen = {"tenant": tenant, "user": user, "model": model, "provider": provider,
              "status": status}
    engine = state(request).engine

    def load() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            rows = ledger.list_records(
                conn, tenant_id=tenant or None, user_id=user or None, model=model or None,
                provider=provider or None, status=status or None, limit=SHOWN)
        return [record_json(row) for row in rows]

    def show(records: list[dict[str, Any]]) -> str:
        form = ("<h1>Usage</h1><form class=filters>" +
                "".join(field(name, label, chosen[name]) for name, label in FILTERS) +
                "<button>Show</button></form>")
        rows = table(("When", "Tenant", "User", "Model", "Status", "Input", "Output", "Cost",
                      "Currency", "Request"),
                     ((r["timestamp"], r["tenant"], r["user"], r["model"], r["status"],
                       r["usage"].get("input_tokens", 0), r["usage"].get("output_tokens", 0),
                       r["cost"] or "-", r["currency"], r["request_id"]) for r in records),
                     numeric=(5, 6, 7))
        shown = (f"<p>The newest {len(records)} records.</p>" if len(records) == SHOWN
                 else f"<p>{len(records)} records.</p>")
        return form + (shown + rows if records else "<p>No records.</p>")

    return await render(request, "Usage", load, show)
