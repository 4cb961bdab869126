"""Calls in flight when their process dies are recorded as ``interrupted`` (SPEC §7.4).

A call is journaled twice: as *started* just before the provider is called (``Recorder.start``,
with the record it should get if nothing more is ever heard of it: status ``interrupted``, the
usage estimated from the request, priced), and with its real record when it ends. The drainer
keeps started calls without a record in the table ``calls_started``; a record removes its row
in the transaction that writes it.

A process killed mid-call (SIGKILL, OOM, a power cut of its container) never writes the second
line. ``sweep`` notices: the journal writer that started the call is finished — its writer lock
is free and every segment it wrote is drained (gateway/journal.py) — so no record can come any
more. Its leftover rows become interrupted records, written like any other (idempotent by
request id; they release the call's budget holds and count against its budgets, and its
Idempotency-Key is free again at once), for reconciliation with the provider's bill. A
writer's lock file lives in its journal directory, so the writers of another host's journal
are left to that host's processes; the sweep also removes the lock files of finished writers
that left nothing unfinished.

The estimate is the request's own size, not its worst case: input tokens from the prompt text
(the provider read it), no output (unknown); images, speech and video as requested.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from meterline.config import LimitsConfig
from meterline.domain.usage import Usage
from meterline.gateway.admission import worst_case
from meterline.gateway.calls import ENDPOINTS, Incoming
from meterline.gateway.drainer import finished_writers, forget_writer
from meterline.gateway.recorder import record_from_journal, write_in
from meterline.providers.estimate import estimate_prompt_tokens
from meterline.store import claims, inflight

log = logging.getLogger("meterline.gateway")

#: How often a process looks for finished writers' calls (each pass is one small query).
INTERRUPTED_SWEEP_SECONDS = 5.0


def request_estimate(incoming: Incoming, endpoint: str, limits: LimitsConfig) -> Usage:
    """What the provider most likely billed for a call it received and never answered."""
    if endpoint in ("images", "speech", "videos"):
        usages, _ = worst_case(incoming, endpoint, None, limits)
        return usages[0]
    return Usage.of(input_tokens=estimate_prompt_tokens(incoming.body, ENDPOINTS[endpoint][0]))


def sweep(engine: Engine, journal_dir: Path) -> int:
    """Record the unfinished calls of this journal's finished writers as interrupted; returns
    how many."""
    written = 0
    for writer in finished_writers(journal_dir):
        with engine.begin() as conn:
            calls = inflight.of_writer(conn, writer)
            done = inflight.recorded(conn, [request_id for request_id, _ in calls])
            records = [record_from_journal(item) for request_id, item in calls
                       if request_id not in done]
            now = datetime.now(UTC)
            for record in records:
                record.row["recorded_at"] = now
            refused = write_in(conn, records)
            claims.release_calls(conn, [request_id for request_id, _ in calls])
            inflight.forget_writer(conn, writer)
        forget_writer(journal_dir, writer)
        for index, why in refused:
            log.error("interrupted call %s not recorded: %s", records[index].row["request_id"],
                      why)
        for record in records:
            log.warning("call %s (%s) was in flight when its gateway process ended: recorded "
                        "as interrupted, usage estimated", record.row["request_id"],
                        record.row.get("model"))
        written += len(records) - len(refused)
    return written
