"""The audit log: who changed what, through the admin API or the CLI (docs/audit.md).

An entry is written in the transaction of the change it records where the change has one (so
there is never a change without its entry, nor an entry of a change rolled back); a change made
in several transactions of its own (rerating, archiving) is recorded right after it succeeds.
Entries are only ever added.

``details`` holds the request's meaningful fields, never a secret: no API key, no admin token,
no session id. Money in it is a string, as everywhere in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Engine, insert, or_, select

from meterline.store.schema import audit_log

#: Who the command line acts as.
CLI_ACTOR: Final = "cli"
#: The prefix of an actor signed in to the dashboard (``session:<admin token name>``).
SESSION_PREFIX: Final = "session:"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an admin token's name, ``session:<name>`` for a dashboard session, ``cli``;
    ``request_id`` ties together the entries one request (or one CLI run) made."""

    name: str
    request_id: str | None = None


class Change(NamedTuple):
    """One entry to write: the action, the object's id, its tenant, the request's fields."""

    action: str
    target: str | None = None
    tenant: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    tenant: str | None
    target: str | None
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor,
                "action": self.action, "tenant": self.tenant, "target": self.target,
                "details": self.details, "request_id": self.request_id}


def record_all(conn: Connection, actor: Actor | None, changes: Sequence[Change],
               at: datetime | None = None) -> None:
    """Write an entry per change, in ``conn``'s transaction. ``actor`` None is meterline's own
    work (the demo's seed), which is no admin's action and is not recorded."""
    if actor is None or not changes:
        return
    when = at or datetime.now(UTC)
    conn.execute(insert(audit_log), [
        {"at": when, "actor": actor.name, "action": change.action, "tenant_id": change.tenant,
         "target": change.target, "details": dict(change.details or {}),
         "request_id": actor.request_id} for change in changes])


def record(conn: Connection, actor: Actor | None, action: str, *, target: str | None = None,
           tenant: str | None = None, details: Mapping[str, Any] | None = None) -> None:
    """Write one entry in ``conn``'s transaction (see ``record_all``)."""
    record_all(conn, actor, [Change(action, target, tenant, details)])


def record_done(engine: Engine, actor: Actor | None, action: str, *, target: str | None = None,
                tenant: str | None = None, details: Mapping[str, Any] | None = None) -> None:
    """Write one entry in a transaction of its own: for a change that already committed in
    transactions of its own (rerating, archiving, a file's usage)."""
    if actor is None:
        return
    with engine.begin() as conn:
        record(conn, actor, action, target=target, tenant=tenant, details=details)


def list_entries(conn: Connection, *, since: datetime | None = None,
                 until: datetime | None = None, action: str | None = None,
                 actor: str | None = None, tenant: str | None = None,
                 before: int | None = None, limit: int = 100) -> list[Entry]:
    """Entries newest first: ``at`` from ``since`` (inclusive) to ``until`` (exclusive);
    ``action`` is that action or a family of them (``bill`` and ``bill.`` match ``bill.issue``
    and ``bill.void``); ``before`` pages on: entries with a lower id than it."""
    c = audit_log.c
    query = select(audit_log).order_by(c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(c.at >= since)
    if until is not None:
        query = query.where(c.at < until)
    if action is not None:
        family = action if action.endswith(".") else action + "."
        query = query.where(or_(c.action == action.rstrip("."),
                                c.action.startswith(family, autoescape=True)))
    if actor is not None:
        query = query.where(c.actor == actor)
    if tenant is not None:
        query = query.where(c.tenant_id == tenant)
    if before is not None:
        query = query.where(c.id < before)
    return [Entry(row.id, row.at, row.actor, row.action, row.tenant_id, row.target,
                  row.details or {}, row.request_id) for row in conn.execute(query)]
