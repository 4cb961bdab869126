"""Reading the audit log, with filters and pages — what the admin API and the CLI share
(docs/audit.md). Filters arrive as the strings the user typed, so a bad one is a 400 (exit 2)
naming its field, and a tenant filter naming no tenant a 404."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine

from meterline.domain.events import parse_timestamp
from meterline.errors import InvalidInput
from meterline.services.inputs import optional_name
from meterline.store import audit as store
from meterline.store.accounts import get_tenant
from meterline.store.audit import Entry

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
#: An action (``bill.issue``) or a family of them (``bill``, ``bill.``).
_ACTION: Final = re.compile(r"[a-z_]{1,32}(\.[a-z_]{1,32})*\.?")


@dataclass(frozen=True, slots=True)
class Page:
    """Entries newest first; ``next_before`` is the ``before`` that reads the next page (None
    on the last one)."""

    entries: list[Entry]
    next_before: int | None

    def to_json(self) -> dict[str, Any]:
        return {"entries": [entry.to_json() for entry in self.entries],
                "next_before": self.next_before}


def entries(engine: Engine, *, since: str | None = None, until: str | None = None,
            action: str | None = None, actor: str | None = None, tenant: str | None = None,
            limit: int = DEFAULT_LIMIT, before: int | None = None) -> Page:
    """A page of the audit log, newest first."""
    start = parse_timestamp(since, "since") if since else None
    end = parse_timestamp(until, "until") if until else None
    if start is not None and end is not None and end < start:
        raise InvalidInput("until: must not be before since", field="until")
    if action is not None and not _ACTION.fullmatch(action):
        raise InvalidInput(f"action: {action!r} is not an action (e.g. bill.issue) or a family "
                           "of them (e.g. bill)", field="action")
    who = optional_name(actor, "actor", 80)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: 1 to {MAX_LIMIT}", field="limit")
    if before is not None and (isinstance(before, bool) or not isinstance(before, int)
                               or before < 1):
        raise InvalidInput("before: an entry's id (a whole number above zero)", field="before")
    with engine.connect() as conn:
        if tenant is not None:
            get_tenant(conn, tenant)  # 404, as everywhere a tenant filter is given
        found = store.list_entries(conn, since=start, until=end, action=action, actor=who,
                                   tenant=tenant, before=before, limit=limit + 1)
    page = found[:limit]
    return Page(page, page[-1].id if len(found) > limit else None)
