"""Batch API objects created through the gateway (migration 0016): the files uploaded for
OpenAI batches and the batches of both APIs (OpenAI ``/v1/batches``, Anthropic
``/v1/messages/batches``), whose they are — only their tenant reaches them — and what a batch's
results are billed as when it ends (gateway/batches.py)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from meterline.store.tables.base import metadata
from meterline.store.types import Json, UtcDateTime

# A file uploaded through the gateway (``purpose=batch``), or a batch's output or error file
# first seen on a retrieval. ``lines``: per custom_id, the model the line was resolved to, the
# name the client gave, its endpoint and what bounds its cost (None for files the provider
# made).
batch_files = Table(
    "batch_files", metadata,
    Column("file_id", String(200), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("lines", Json, nullable=True),
)

# A batch: ``api`` is ``openai`` or ``anthropic``; ``pending`` what its results' records need
# (the tenant's currency and zone, tags, metadata, each custom_id's model). Billing is claimed
# (``claimed_until``, so that one poller at a time fetches the results) and then marked done
# (``billed_at``, ``billed_lines``); the records' request ids, derived from the batch and
# custom ids, keep each line in the ledger once whatever happens between.
batches = Table(
    "batches", metadata,
    Column("batch_id", String(200), primary_key=True),
    Column("api", String(16), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("input_file_id", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("pending", Json, nullable=False),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("billed_at", UtcDateTime, nullable=True),
    Column("billed_lines", Integer, nullable=True),
    # A tenant's batches newest first (``GET /v1/batches``).
    Index("ix_batches_tenant", "tenant_id", "api", "created_at", "batch_id"),
)
