"""The demo data set: a tenant, a key and a month of usage history, made up deterministically.

Seeded once per database (the ``demo`` tenant marks it); every start creates a fresh demo key,
because keys are shown only once (stored hashed), and revokes the one of the start before, so a
demo database has one usable demo key however often it is restarted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from meterline.errors import NotFound
from meterline.services.metering import Metering
from meterline.services.prices import set_fx
from meterline.store import accounts

DEMO_TENANT = "demo"
DEMO_KEY_NAME = "demo"
DEMO_MODELS = (
    "openai/gpt-5-nano", "openai/gpt-5-codex", "anthropic/claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5-20251001", "deepseek/deepseek-chat", "deepseek/deepseek-reasoner",
    "openai/text-embedding-3-small", "qwen/qwen-long",
)
DEMO_USERS = ("alice", "bob", "carol", "dave", "erin")
PURPOSES = ("chat", "summarise", "search", "classify")


@dataclass
class DemoInfo:
    key: str
    seeded_events: int


def _events(metering: Metering, now: datetime, days: int, per_day: int) -> list[dict[str, Any]]:
    rng = random.Random(20261101)
    start = now - timedelta(days=days)
    book = metering.book
    models = [m for m in DEMO_MODELS if m in book]
    usable = []
    for model in models:
        try:
            book.version_at(model, start)
            usable.append(model)
        except NotFound:
            continue
    events = []
    for day in range(days):
        for n in range(per_day + rng.randint(-per_day // 3, per_day // 3)):
            at = start + timedelta(days=day, seconds=rng.randint(0, 86_399))
            model = rng.choice(usable)
            prompt = rng.randint(200, 6000)
            cached = prompt // 2 if rng.random() < 0.3 else 0
            usage = {"input_tokens": prompt, "cached_input_tokens": cached}
            if "embedding" not in model:
                usage["output_tokens"] = rng.randint(20, 1500)
            events.append({
                "id": f"demo-{day:02d}-{n:04d}", "timestamp": at.isoformat(), "model": model,
                "user": rng.choice(DEMO_USERS), "usage": usage,
                "status": "success" if rng.random() < 0.97 else "error",
                "metadata": {"purpose": rng.choice(PURPOSES)},
            })
    return events


def seed(engine: Engine, metering: Metering, *, days: int = 30, per_day: int = 120) -> DemoInfo:
    now = datetime.now(UTC)
    seeded = 0
    with engine.begin() as conn:
        fresh = all(t.id != DEMO_TENANT for t in accounts.list_tenants(conn))
        if fresh:
            accounts.create_tenant(conn, DEMO_TENANT, "USD", "UTC")
    if fresh:
        # The demo's own seed, no admin's action: not in the audit log.
        set_fx(engine, "CNY", "USD", "0.14", now - timedelta(days=days + 1), actor=None)
        metering.refresh(force=True)
        events = _events(metering, now, days, per_day)
        for start in range(0, len(events), 1000):
            metering.ingest(DEMO_TENANT, events[start:start + 1000], source="demo")
        seeded = len(events)
    with engine.begin() as conn:
        for key in accounts.list_keys(conn, DEMO_TENANT):
            if key.name == DEMO_KEY_NAME and key.revoked_at is None:
                accounts.revoke_key(conn, key.id)
        secret, _ = accounts.create_key(conn, DEMO_TENANT, name=DEMO_KEY_NAME)
    return DemoInfo(secret, seeded)
