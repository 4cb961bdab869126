"""Request inputs: one rule for every JSON body and for every tenant filter.

* A body is read as JSON whatever its ``Content-Type``: ``curl -d`` sends
  ``application/x-www-form-urlencoded``, and the gateway's endpoints never looked at the header,
  so the admin API does not either. That is why no endpoint declares a pydantic body parameter
  (FastAPI would refuse a body not labelled JSON before the endpoint runs): endpoints read their
  body here, and ``schema`` keeps it documented in the OpenAPI schema.
* A field the endpoint does not know is refused by name (400): a misspelt optional field would
  otherwise be dropped and change what is created without a word (a budget losing its scope, a
  key losing its expiry).
* A ``?tenant=`` filter naming no tenant is a 404 (``tenant_not_found``), as a tenant in the path
  is: an empty list would read as "no usage" when the name is wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from meterline.asgi.responses import json_body
from meterline.errors import InvalidInput
from meterline.store.accounts import get_tenant

M = TypeVar("M", bound=BaseModel)


def refuse_unknown(raw: Mapping[str, Any], allowed: Collection[str]) -> None:
    """InvalidInput naming the first field (in sorted order) that is not in ``allowed``."""
    unknown = sorted(str(name) for name in raw if name not in allowed)
    if unknown:
        name = unknown[0]
        more = f" (and {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise InvalidInput(f"{name}: unknown field{more}; expected "
                           f"{', '.join(allowed)}", field=name, unknown=unknown)


async def object_body(request: Request, allowed: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` fields."""
    raw = await json_body(request)
    if not isinstance(raw, dict):
        raise InvalidInput("body: must be a JSON object", field="body")
    refuse_unknown(raw, allowed)
    return raw


async def model_body(request: Request, model: type[M]) -> M:
    """The body validated as ``model``; a bad field is a 400 naming it."""
    return validated(model, await object_body(request, list(model.model_fields)))


def validated(model: type[M], raw: dict[str, Any]) -> M:
    """``raw`` as ``model``; a bad field is a 400 naming it (the API's bodies and the
    dashboard's forms)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
                           field=where or "body") from None


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON body of an endpoint."""
    return {"requestBody": {"content": {"application/json": {
        "schema": model.model_json_schema()}}, "required": True}}


async def known_tenant(engine: Engine, tenant: str | None) -> None:
    """UnknownTenant (404) when a tenant filter is given and names no tenant."""
    if tenant is None:
        return

    def check() -> None:
        with engine.connect() as conn:
            get_tenant(conn, tenant)
    await run_in_threadpool(check)
