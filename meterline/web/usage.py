"""``/usage``: the usage explorer — records newest first, filtered by tenant, user, key,
provider, model, status, a metadata value (``tag=key=value``) and time, a page at a time by
keyset (``after``: the time and request id of the page's last record, so page N costs what
page 1 does); ``/usage/{request_id}``: one call with its charge lines, price version, FX rate
and metadata.

The list is the admin API's ``GET /api/usage`` query (store/ledger.py ``list_records``), served
by the (tenant, time) index or, across tenants, the (time, request id) one.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from starlette.responses import Response

from meterline.api.state import state
from meterline.domain.events import CallStatus, parse_timestamp
from meterline.domain.usage import Meter
from meterline.errors import InvalidInput, NotFound
from meterline.store import accounts, ledger
from meterline.web.layout import show

PAGE_SIZE: Final = 50
FILTERS: Final = ("tenant", "user", "key", "model", "provider", "status", "tag", "start", "end")
STATUSES: Final = tuple(status.value for status in CallStatus)
DATE_LENGTH: Final = len("2026-01-01")

router = APIRouter(include_in_schema=False)


def cursor_of(record: Any) -> str:
    """The opaque ``after`` of the page that follows ``record``."""
    text = f"{record.occurred_at.isoformat()}|{record.request_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(value: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, sep, request_id = text.partition("|")
        if not sep or not request_id:
            raise ValueError(value)
        return parse_timestamp(at, "after"), request_id
    except (ValueError, binascii.Error, InvalidInput):  # UnicodeDecodeError is a ValueError
        raise InvalidInput("after: not a page of this list; start again from the first page",
                           field="after") from None


def parse_tag(value: str) -> tuple[str, str]:
    key, sep, wanted = value.partition("=")
    key = key.strip()
    if not sep or not key or '"' in key:
        raise InvalidInput("tag: must be key=value, a metadata key and its value", field="tag")
    return key, wanted.strip()


def _time(value: str, name: str, *, end: bool = False) -> datetime:
    """An ISO 8601 time; a plain date is its whole day (UTC), so an end date is included."""
    at = parse_timestamp(value, name)
    return at + timedelta(days=1) if end and len(value.strip()) == DATE_LENGTH else at


@dataclass(frozen=True, slots=True)
class UsagePage:
    records: list[Any]
    next_after: str | None
    first_page: bool


def load_page(engine: Engine, chosen: dict[str, str], after: str | None) -> UsagePage:
    since = _time(chosen["start"], "start") if chosen["start"] else None
    until = _time(chosen["end"], "end", end=True) if chosen["end"] else None
    if since and until and until <= since:
        raise InvalidInput("end: must be after start", field="end")
    cursor = parse_cursor(after) if after else None
    tag = parse_tag(chosen["tag"]) if chosen["tag"] else None
    with engine.connect() as conn:
        if chosen["tenant"]:
            accounts.get_tenant(conn, chosen["tenant"])  # 404, as in the API
        rows = ledger.list_records(
            conn, tenant_id=chosen["tenant"] or None, user_id=chosen["user"] or None,
            key_id=chosen["key"] or None, model=chosen["model"] or None,
            provider=chosen["provider"] or None, status=chosen["status"] or None,
            since=since, until=until, limit=PAGE_SIZE + 1, after=cursor, metadata_value=tag)
    shown = rows[:PAGE_SIZE]
    more = len(rows) > PAGE_SIZE
    return UsagePage(shown, cursor_of(shown[-1]) if more else None, cursor is None)


@router.get("/usage")
async def usage_page(request: Request, tenant: str = "", user: str = "", key: str = "",
                     model: str = "", provider: str = "", status: str = "", tag: str = "",
                     start: str = "", end: str = "", after: str | None = None) -> Response:
    chosen = {"tenant": tenant, "user": user, "key": key, "model": model,
              "provider": provider, "status": status, "tag": tag, "start": start, "end": end}
    engine = state(request).engine
    kept = {name: value for name, value in chosen.items() if value}

    def context(found: UsagePage) -> dict[str, Any]:
        following = (f"/usage?{urlencode({**kept, 'after': found.next_after})}"
                     if found.next_after else None)
        first = f"/usage?{urlencode(kept)}" if kept else "/usage"
        return {"page": found, "chosen": chosen, "next_url": following, "first_url": first,
                "statuses": [(s, s) for s in STATUSES]}

    return await show(request, "usage.html", "Usage",
                      lambda: load_page(engine, chosen, after), context)


@dataclass(frozen=True, slots=True)
class Call:
    record: Any
    lines: list[Any]


def load_call(engine: Engine, request_id: str) -> Call:
    with engine.connect() as conn:
        found = ledger.find_record(conn, request_id)
    if found is None:
        raise NotFound(f"no usage record {request_id!r}")
    record, lines = found
    return Call(record, lines)


@router.get("/usage/{request_id}")
async def call_page(request: Request, request_id: str) -> Response:
    engine = state(request).engine
    return await show(request, "record.html", "Usage record",
                      lambda: load_call(engine, request_id),
                      lambda found: {"call": found, "record": found.record,
                                     "meters": _meters(found.record)})


def _meters(record: Any) -> list[tuple[str, Any]]:
    """The usage a record counted, meter by meter (those above zero)."""
    return [(meter.value, getattr(record, meter.value)) for meter in Meter
            if getattr(record, meter.value)]
