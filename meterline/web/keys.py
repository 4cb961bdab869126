"""``/keys[?tenant=]``: the tenants' API keys — what ``GET /api/keys`` lists (never a key's
secret: its prefix only) with each key's status now (active, revoked, expired).

Forms (web/forms.py: POST, same-site, the session as the audit log's actor):

* ``POST /keys`` creates a key through ``services.accounts.create_key`` with the fields and the
  checks of ``POST /api/keys`` (its body model, ``KeyIn``). The answer is the one page that
  shows the key's secret, once; nothing stores it, so no later page can show it again. The
  expiry is read as UTC when it names no offset (the page's date-time input has none).
* ``GET /keys/{id}/revoke`` asks to confirm; ``POST /keys/{id}/revoke`` revokes through
  ``services.accounts.revoke_key`` (``POST /api/keys/{id}/revoke``'s service).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.responses import RedirectResponse, Response

from meterline.api.admin import KeyIn
from meterline.api.inputs import validated
from meterline.api.state import state
from meterline.errors import InvalidInput, NotFound
from meterline.services import accounts as account_service
from meterline.store import accounts
from meterline.store.accounts import ApiKey
from meterline.store.audit import Actor
from meterline.web.dashboard import dashboard
from meterline.web.forms import FormError, again, change
from meterline.web.layout import show

TITLE: Final = "API keys"
KEY_FIELDS: Final = ("tenant", "user", "name", "models", "expires_at", "rpm", "tpm")

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key and its status at the moment the page was read."""

    key: ApiKey
    status: str

    @classmethod
    def of(cls, key: ApiKey, now: datetime) -> KeyRow:
        if key.revoked_at is not None:
            return cls(key, "revoked")
        if key.expires_at is not None and now >= key.expires_at:
            return cls(key, "expired")
        return cls(key, "active")


@dataclass(frozen=True, slots=True)
class KeysView:
    keys: list[KeyRow]
    confirm: ApiKey | None = None


def load(engine: Engine, tenant: str | None, confirm: str | None = None,
         now: datetime | None = None) -> KeysView:
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        found = accounts.list_keys(conn, tenant)  # a tenant naming none: 404, as the API
        asked = None
        if confirm is not None:
            asked = accounts.find_key(conn, confirm)
            if asked is None:
                raise NotFound(f"no API key {confirm!r}", key=confirm)
    # Newest first: the key just made is at the top.
    return KeysView([KeyRow.of(k, moment) for k in reversed(found)], asked)


def _context(found: KeysView, tenant: str | None, *, form: Mapping[str, str] | None = None,
             error: FormError | None = None, created: tuple[str, ApiKey] | None = None,
             ) -> dict[str, Any]:
    return {"title": TITLE, "tenant": tenant, "view": found,
            "form": dict(form) if form is not None else ({"tenant": tenant} if tenant else {}),
            "error": error, "created": created}


def _back(tenant: str | None) -> str:
    return "/keys" + (f"?{urlencode({'tenant': tenant})}" if tenant else "")


def key_input(form: Mapping[str, str]) -> KeyIn:
    """The form as ``POST /api/keys``'s body: models comma-separated, the expiry in UTC unless
    it names an offset."""
    raw: dict[str, object] = {name: value for name, value in form.items() if name != "models"}
    if "models" in form:
        raw["models"] = [m.strip() for m in form["models"].split(",") if m.strip()]
    body = validated(KeyIn, raw)
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            body.expires_at = body.expires_at.replace(tzinfo=UTC)
        try:
            body.expires_at = body.expires_at.astimezone(UTC)
        except OverflowError:
            raise InvalidInput(f"expires_at: {form.get('expires_at')} is out of range",
                               field="expires_at") from None
    return body


@router.get("/keys")
async def keys_page(request: Request, tenant: str | None = None) -> Response:
    engine = state(request).engine
    chosen = tenant or None
    return await show(request, "keys.html", TITLE, lambda: load(engine, chosen),
                      lambda found: _context(found, chosen))


@router.post("/keys")
async def create_key(request: Request) -> Response:
    """Create a key (``POST /api/keys``'s service); its secret is on this answer only."""
    engine = state(request).engine
    chosen = request.query_params.get("tenant") or None

    def work(form: dict[str, str], actor: Actor) -> tuple[tuple[str, ApiKey], KeysView]:
        body = key_input(form)
        made = account_service.create_key(engine, body.tenant, actor=actor, user=body.user,
                                          models=body.models, name=body.name,
                                          expires_at=body.expires_at, rpm=body.rpm,
                                          tpm=body.tpm)
        return made, load(engine, made[1].tenant_id)

    def done(result: tuple[tuple[str, ApiKey], KeysView], form: dict[str, str]) -> Response:
        made, found = result
        return dashboard(request).page(
            request, "keys.html", _context(found, made[1].tenant_id, created=made),
            status_code=201)

    async def refused(error: FormError, form: dict[str, str]) -> Response:
        return await again(request, "keys.html", TITLE, lambda: load(engine, chosen),
                           lambda found: _context(found, chosen, form=form, error=error),
                           error.status)

    return await change(request, TITLE, KEY_FIELDS, work, done, refused)


@router.get("/keys/{key_id}/revoke")
async def confirm_revoke(request: Request, key_id: str) -> Response:
    """The confirmation step: the key, and the button that revokes it."""
    engine = state(request).engine
    return await show(request, "keys.html", TITLE,
                      lambda: load(engine, None, confirm=key_id),
                      lambda found: _context(found, None))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key (``POST /api/keys/{id}/revoke``'s service)."""
    engine = state(request).engine

    def work(form: dict[str, str], actor: Actor) -> ApiKey:
        return account_service.revoke_key(engine, key_id, actor=actor)

    def done(key: ApiKey, form: dict[str, str]) -> Response:
        return RedirectResponse(_back(key.tenant_id), status_code=303)

    async def refused(error: FormError, form: dict[str, str]) -> Response:
        return await again(request, "keys.html", TITLE, lambda: load(engine, None),
                           lambda found: _context(found, None, error=error), error.status)

    return await change(request, TITLE, (), work, done, refused)
