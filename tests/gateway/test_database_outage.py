"""A real database outage under steady traffic (issue 12, proofs): the gateway's own
PostgreSQL server, started by the test (tests/private_pg.py), is stopped for OUTAGE_SECONDS
while threads keep calling through the official ``openai`` SDK, streamed and not, with a key
under a block budget and a key without limits; then it is started again.

What must hold (SPEC §7.3, §7.4, §7.6):
- every call that was answered (200) is in the ledger exactly once, and no refused call is;
- a call under the block budget is refused with 503 and Retry-After while its limit cannot be
  checked (never a 500, never let through unheld); once refused, refused until the database
  is back;
- a call no limit covers is served throughout;
- afterwards every background loop is alive: ``/readyz`` reports them healthy again, a price
  added by another process (the CLI) is used by the next call (only this gateway's price
  refresh loop can bring it in), and a hold left by a dead process is swept.

Unlike tests/gateway/test_store_outage.py (a TCP proxy cut between the gateway and the shared
server), the server itself goes down here (STOP_MODE): its sessions end with it and every new
connection is refused until it is back, as in a database crash, restart or failover.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from meterline.api.app import create_app
from meterline.config import Config, LimitsConfig, Secret
from meterline.store import budgets as budget_store
from meterline.store.engine import make_engine
from meterline.store.schema import budget_holds
from tests.conftest import ADMIN, ADMIN_TOKEN, Cli, LiveServer
from tests.gateway.conftest import Upstream, add_test_prices, money, providers
from tests.private_pg import PrivatePostgres

#: How long the database is down (the issue's 30 s: as long as the background loops' longest
#: back-off, so each of them fails several times and must come back on its own).
OUTAGE_SECONDS = 30.0
#: How the server is stopped: "immediate" is a crash (sessions cut off mid-transaction,
#: recovery from the WAL at the next start); "fast" ends the sessions and shuts down cleanly,
#: as a restart does. Both pass; the crash is the harsher.
STOP_MODE = "immediate"
#: The longest any condition is waited for (a hang guard on a loaded machine, never a speed
#: check: every wait ends as soon as its condition holds).
WAIT = 180.0
MODEL = "openai/gpt-5-nano"
#: The model whose price changes after the outage (the traffic's model keeps its price).
PROBE_MODEL = "deepseek/deepseek-chat"
NEW_PRICES = {"input_tokens": Decimal(3), "output_tokens": Decimal(5)}  # per 1M
#: Short loop intervals, so that the loops fail many times during the outage.
INTERVALS = {"price_refresh": 0.5, "hold_sweep": 0.5, "alerts": 0.5}
LOOPS = ("price_refresh", "hold_sweep", "lease_sweep", "alerts", "journal_drainer")
#: The loops that read or write the database on every pass (the alerts loop only does with
#: webhooks configured, the lease sweep only with leases open).
DATABASE_LOOPS = ("price_refresh", "hold_sweep", "journal_drainer")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return found


# --- the traffic ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One call as its client saw it."""

    key: str  # "limited" | "free"
    stream: bool
    started: float
    ended: float
    phase_started: str
    phase_ended: str
    status: int | None  # the HTTP status; None: no answer at all
    request_id: str | None
    retry_after: str | None = None
    code: str | None = None
    error: str | None = None  # an exception the client raised other than an API status
    complete: bool = False  # a 200 whose answer (every chunk of a stream) arrived whole


@dataclass
class Traffic:
    """Threads calling steadily through the official SDK until ``stop`` is set."""

    base_url: str
    keys: dict[str, str]
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, per_key: int = 2) -> None:
        for name in self.keys:
            for index in range(per_key):
                thread = threading.Thread(target=self._run, args=(name, index % 2 == 1),
                                          daemon=True, name=f"traffic-{name}-{index}")
                thread.start()
                self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=WAIT)
            assert not thread.is_alive(), f"{thread.name} is stuck"

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def served(self, key: str, phase: str) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if o.key == key and o.status == 200
                       and o.complete and o.phase_started == phase)

    def _run(self, key: str, stream_first: bool) -> None:
        stream = stream_first
        with openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.keys[key],
                           max_retries=0, timeout=60) as client:
            while not self.stop.is_set():
                outcome = self._call(client, key, stream)
                with self.lock:
                    self.outcomes.append(outcome)
                stream = not stream
                time.sleep(0.05)  # steady, not a flood: the machine is shared

    def _call(self, client: openai.OpenAI, key: str, stream: bool) -> Outcome:
        with self.lock:
            phase = self.phase
        outcome = Outcome(key, stream, time.monotonic(), 0.0, phase, "", None, None)
        messages: Any = [{"role": "user", "content": f"steady traffic {key}"}]
        try:
            if stream:
                with client.chat.completions.create(model=MODEL, messages=messages,
                                                    max_tokens=64, stream=True) as answer:
                    outcome.status = answer.response.status_code
                    outcome.request_id = answer.response.headers.get("x-meterline-request-id")
                    chunks = list(answer)
                outcome.complete = any(c.choices and c.choices[0].finish_reason
                                       for c in chunks)
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=messages, max_tokens=64)
                outcome.status = raw.status_code
                outcome.request_id = raw.headers.get("x-meterline-request-id")
                outcome.complete = bool(raw.parse().choices)
        except openai.APIStatusError as exc:
            response = exc.response
            outcome.status = response.status_code
            outcome.request_id = response.headers.get("x-meterline-request-id")
            outcome.retry_after = response.headers.get("retry-after")
            try:
                outcome.code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError, httpx.ResponseNotRead):
                outcome.code = None
        except openai.APIError as exc:  # a broken stream, no answer at all
            outcome.error = f"{exc.__class__.__name__}: {exc}"
        outcome.ended = time.monotonic()
        with self.lock:
            outcome.phase_ended = self.phase
        return outcome


# --- the setup -----------------------------------------------------------------------------------

@dataclass
class Setup:
    pg: PrivatePostgres
    url: str
    admin: httpx.Client
    keys: dict[str, str]
    budget_id: str

    def ready(self) -> httpx.Response:
        return self.admin.get("/readyz")

    def ledger(self, tenant: str) -> list[dict[str, Any]]:
        answer = self.admin.get("/api/usage", params={"tenant": tenant, "limit": 10_000})
        assert answer.status_code == 200, answer.text
        records: list[dict[str, Any]] = answer.json()["records"]
        return records


@pytest.fixture
def setup(upstream: Upstream, tmp_path: Path) -> Iterator[Setup]:
    with PrivatePostgres.create() as pg:
        config = Config(database_url=pg.url, admin_token=Secret(ADMIN_TOKEN),
                        journal_dir=str(tmp_path / "journal"), providers=providers(upstream.url),
                        # keys and budget lists expire during the outage: read again, they fail
                        key_cache_seconds=1.0, limits=LimitsConfig(cache_seconds=1.0))
        app = create_app(config, intervals=INTERVALS)
        with LiveServer(app) as url, \
                httpx.Client(base_url=url, headers=ADMIN, timeout=60) as admin:
            for tenant in ("limited", "free"):
                created = admin.post("/api/tenants", json={"name": tenant})
                assert created.status_code == 201, created.text
            add_test_prices(admin)
            # A tenant budget covers CNY-priced models too: it needs a rate to hold them.
            fx = admin.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                             "effective_from": "2026-01-01T00:00:00Z"})
            assert fx.status_code == 201, fx.text
            keys = {}
            for tenant in ("limited", "free"):
                made = admin.post("/api/keys", json={"tenant": tenant})
                assert made.status_code == 201, made.text
                keys[tenant] = made.json()["key"]
            budget = admin.post("/api/budgets", json={
                "tenant": "limited", "amount": "1000", "currency": "USD", "period": "month",
                "mode": "block"})
            assert budget.status_code == 201, budget.text
            try:
                yield Setup(pg, url, admin, keys, budget.json()["id"])
            finally:
                # A test that failed midway: the server comes back before the gateway stops,
                # so that it drains and shuts down cleanly. Whatever happened, the server is
                # stopped and deleted afterwards (PrivatePostgres's context).
                if not pg.running:
                    pg.start()


# --- the test ------------------------------------------------------------------------------------

def test_a_database_outage_under_steady_traffic(setup: Setup) -> None:
    traffic = Traffic(setup.url, setup.keys)
    traffic.start()
    try:
        for key in setup.keys:
            wait_for(lambda k=key: traffic.served(k, "before") >= 4, f"{key} calls served")

        traffic.set_phase("stopping")
        setup.pg.stop(STOP_MODE)
        traffic.set_phase("outage")
        outage_started = time.monotonic()
        wait_for(lambda: setup.ready().status_code == 503, "/readyz says unavailable")
        during = setup.ready()
        assert during.json()["status"] == "unavailable", during.text
        assert int(during.headers["retry-after"]) > 0
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        # Every loop that needs the database has failed by now, and is counted.
        loops_at_end = setup.ready().json()["loops"]
        traffic.set_phase("starting")
        setup.pg.start()
        traffic.set_phase("after")

        for key in setup.keys:
            wait_for(lambda k=key: traffic.served(k, "after") >= 4,
                     f"{key} calls served after the outage")
    finally:
        traffic.finish()
    outcomes = traffic.outcomes

    # -- what the clients saw -----------------------------------------------------------------
    strange = [o for o in outcomes if o.error or o.status not in (200, 503)]
    assert not strange, strange[:5]
    free = [o for o in outcomes if o.key == "free"]
    assert all(o.status == 200 and o.complete for o in free), \
        [o for o in free if o.status != 200 or not o.complete][:5]
    in_outage = [o for o in free if o.phase_started == o.phase_ended == "outage"]
    assert len(in_outage) >= 10, "too few calls without limits ran during the outage"

    limited = [o for o in outcomes if o.key == "limited"]
    refused = [o for o in limited if o.status == 503]
    assert refused, "no call under the block budget was refused during the outage"
    for o in refused:
        assert o.code == "store_unavailable", o
        assert o.retry_after is not None and int(o.retry_after) > 0, o
        assert o.request_id, o
        assert o.phase_ended in ("stopping", "outage", "starting"), o
    # Once refused, refused until the database is back (a lease held before the outage may
    # admit calls for its last fraction of a second; nothing after that).
    first_refusal = min(o.ended for o in refused)
    let_through = [o for o in limited if o.status == 200 and o.started > first_refusal
                   and o.phase_started == o.phase_ended == "outage"]
    assert not let_through, let_through[:5]
    assert all(o.complete for o in limited if o.status == 200)

    # -- the ledger: every answered call exactly once ------------------------------------------
    def drained() -> bool:
        body = setup.ready().json()
        return body.get("journal", {}).get("pending") == 0

    wait_for(drained, "the journal drained into the ledger")
    for tenant in ("limited", "free"):
        answered = {o.request_id for o in outcomes if o.key == tenant and o.status == 200}
        assert None not in answered
        records = setup.ledger(tenant)
        ids = Counter(r["request_id"] for r in records)
        assert not [rid for rid, n in ids.items() if n > 1], "a call recorded twice"
        missing = answered - set(ids)
        assert not missing, f"{len(missing)} answered {tenant} calls not in the ledger"
        # Nothing else: the refused calls never went upstream, and are not billed.
        assert set(ids) == answered, set(ids) - answered
        assert all(r["status"] == "success" for r in records)
        assert all(money(r["cost"]) > 0 for r in records)
    rows = setup.pg.psql("SELECT request_id, count(*) FROM usage_records GROUP BY request_id "
                         "HAVING count(*) > 1")
    assert rows == []

    # -- the background loops: failed during the outage, alive after it ------------------------
    for name in DATABASE_LOOPS:
        assert loops_at_end[name]["failures"] >= 1, (name, loops_at_end)

    def healthy() -> dict[str, Any] | None:
        answer = setup.ready()
        body: dict[str, Any] = answer.json()
        loops = body["loops"]
        if answer.status_code != 200 or body["status"] != "ready":
            return None
        return body if all(loops[n]["failures"] == 0 and loops[n]["last_success"]
                           for n in DATABASE_LOOPS) and all(
            not loop["failing"] for loop in loops.values()) else None

    ready = wait_for(healthy, "/readyz reports every loop healthy")
    assert set(LOOPS) <= set(ready["loops"]), ready

    # A price added by another process: only this gateway's price refresh loop brings it in.
    cli = Cli(setup.pg.url)
    added = cli("prices", "add", "--model", PROBE_MODEL, "--currency", "USD",
                "--input", str(NEW_PRICES["input_tokens"]),
                "--output", str(NEW_PRICES["output_tokens"]))
    assert added.exit_code == 0, added.output

    def priced_anew() -> bool:
        with openai.OpenAI(base_url=setup.url + "/v1", api_key=setup.keys["free"],
                           max_retries=0, timeout=60) as client:
            raw = client.chat.completions.with_raw_response.create(
                model=PROBE_MODEL, messages=[{"role": "user", "content": "what price"}])
        usage = raw.parse().usage
        assert raw.status_code == 200 and usage is not None
        expected = (usage.prompt_tokens * NEW_PRICES["input_tokens"]
                    + usage.completion_tokens * NEW_PRICES["output_tokens"]) / Decimal(10**6)
        return money(raw.headers["x-meterline-cost"]) == expected

    wait_for(priced_anew, "a call priced at the price added after the outage")

    # A hold left by a process that died (expired, never recorded) is swept.
    engine = make_engine(setup.pg.url)
    try:
        with engine.begin() as conn:
            budget = budget_store.get_budget(conn, setup.budget_id)
            now = datetime.now(UTC)
            start, end = budget.bounds(now)
            refusal = budget_store.reserve(
                conn, "req_dead_process", [budget_store.Hold(budget, start, end, Decimal("7"))],
                expires_at=now - timedelta(seconds=1))
            assert refusal is None

        def swept() -> bool:
            with engine.connect() as conn:
                return conn.execute(select(budget_holds.c.request_id).where(
                    budget_holds.c.request_id == "req_dead_process")).first() is None

        wait_for(swept, "the expired hold swept")
    finally:
        engine.dispose()

    def released() -> bool:
        answer = setup.admin.get("/api/budgets", params={"tenant": "limited"})
        [found] = answer.json()["budgets"]
        return money(found["reserved"]) == 0

    # With the traffic over, its leases and the dead hold all given back.
    wait_for(released, "nothing held on the budget")
