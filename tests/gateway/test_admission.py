"""Budgets at the gateway (SPEC §1 "reservation", §7.3): a call is held at its worst case against
every ``block`` budget that covers it before the provider is called, refused with 402 when it
does not fit, and its record releases the hold and counts its real cost."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from meterline.config import LimitsConfig
from meterline.gateway.admission import Admission, _Limits
from tests.gateway.conftest import Gateway, money, token_cost

MODEL = "openai/gpt-5-nano"


def limited_gateway(factory: Any) -> Gateway:
    """A fresh gateway whose USD budgets can hold CNY-priced calls too (the catalog has some)."""
    gw: Gateway = factory()
    rate = gw.admin.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                          "effective_from": "2026-01-01T00:00:00Z"})
    assert rate.status_code == 201, rate.text
    return gw


def set_budget(gw: Gateway, **fields: Any) -> dict[str, Any]:
    answer = gw.admin.post("/api/budgets", json=fields)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def budget(gw: Gateway, budget_id: str) -> dict[str, Any]:
    listed = gw.admin.get("/api/budgets").json()["budgets"]
    return next(b for b in listed if b["id"] == budget_id)


def settled(gw: Gateway, budget_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The budget once no call holds it any more (every record reached the ledger)."""
    deadline = time.monotonic() + timeout
    while True:
        found = budget(gw, budget_id)
        if money(found["reserved"]) == 0:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"holds left on {budget_id}: {found}")
        time.sleep(0.05)


class StoppedClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chat(client: openai.OpenAI, max_tokens: int = 40) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": "hello"}])


def test_block_budget_serves_what_fits_then_refuses_with_402(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    # A call costs (1 + 16 × 2) / 1M USD and is held at (its ~90 body bytes × 1.25 + 40 × 2)
    # / 1M: about 0.0002 USD. So about four calls fit, and then the hold no longer does.
    limit = Decimal("0.0003")
    created = set_budget(gw, key=gw.key_id, amount=str(limit), currency="USD", period="day")
    assert created["tenant"] == "acme" and created["spent"] == "0"
    served, refused = [], []
    with gw.openai() as client:
        for _ in range(12):
            try:
                served.append(chat(client))
            except openai.APIStatusError as exc:
                assert exc.status_code == 402
                body = exc.response.json()["error"]
                assert body["code"] == "budget_exceeded"
                assert created["id"] in body["message"] and "left of 0.0003" in body["message"]
                assert "resets at" in body["message"]
                assert exc.response.headers["x-meterline-request-id"]
                refused.append(exc)
            settled(gw, created["id"])
    assert 2 <= len(served) <= 6 and len(served) + len(refused) == 12
    costs = [money(gw.record(r.headers["x-meterline-request-id"])["cost"]) for r in served]
    final = settled(gw, created["id"])
    assert money(final["spent"]) == sum(costs) <= limit
    # Refused calls never reached the provider and left no trace in the ledger.
    listed = gw.admin.get("/api/usage", params={"tenant": "acme"}).json()["records"]
    assert len(listed) == len(served)


def test_refusal_in_anthropic_shape(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    set_budget(gw, tenant="acme", amount="0.000001", period="month")
    with gw.anthropic() as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="anthropic/claude-sonnet-4-6", max_tokens=50,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 402
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["code"] == "budget_exceeded"


def test_alert_budget_counts_and_alerts_without_blocking(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    created = set_budget(gw, tenant="acme", user="bob", amount="0.00005", mode="alert",
                         thresholds=["0.5", "1"])
    ids = []
    with gw.openai() as client:
        for _ in range(3):
            ids.append(chat(client).headers["x-meterline-request-id"])
    costs = [money(gw.record(i)["cost"]) for i in ids]
    final = settled(gw, created["id"])
    assert money(final["spent"]) == sum(costs)
    assert final["spent"] == str(sum(costs)) or money(final["spent"]) > Decimal("0.00005")
    alerts = gw.admin.get("/api/alerts", params={"tenant": "acme"}).json()["alerts"]
    levels = sorted((a["threshold"], a["level"]) for a in alerts)
    assert levels == [("0.5", "info"), ("1", "critical")]
    assert all(a["budget_id"] == created["id"] and not a["resolved"] for a in alerts)
    resolved = gw.admin.post("/api/alerts/resolve", json={"ids": [alerts[0]["id"]]})
    assert resolved.json() == {"resolved": 1}
    still_open = gw.admin.get("/api/alerts", params={"resolved": "false"}).json()["alerts"]
    assert [a["id"] for a in still_open] == [alerts[1]["id"]]


def test_spent_counts_the_exact_ledger_cost_of_each_call(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    created = set_budget(gw, provider="openai", amount="5", currency="USD", period="total")
    with gw.openai() as client:
        raw = chat(client)
    record = gw.record(raw.headers["x-meterline-request-id"])
    assert money(record["cost"]) == token_cost(record["usage"])
    assert money(settled(gw, created["id"])["spent"]) == money(record["cost"])


def test_calls_far_from_the_limit_are_admitted_from_a_lease(gateway_factory: Any) -> None:
    """The first call holds a lease of 64 worst cases; the next ones are admitted from it in
    memory; once their records are written the lease is closed and only the real costs stay."""
    gw = limited_gateway(gateway_factory)
    # The lease's clock stands still while the calls are made: on a slow or busy machine ten
    # calls may take longer than lease_seconds, and a lease renewed meanwhile is no failure.
    clock = StoppedClock()
    leases = gw.app.state.gateway.admission.leases
    leases.clock = clock
    created = set_budget(gw, key=gw.key_id, amount="100", currency="USD", period="month")
    with gw.openai() as client:
        served = [chat(client) for _ in range(10)]
        during = budget(gw, created["id"])
    metrics = gw.admin.get("/metrics").text
    assert "meterline_leases_opened_total 1.0\n" in metrics
    assert "meterline_lease_admissions_total 9.0\n" in metrics
    # While the lease is open it holds far more than the calls cost: never less than the truth.
    costs = [money(gw.record(r.headers["x-meterline-request-id"])["cost"]) for r in served]
    assert money(during["spent"]) + money(during["reserved"]) > sum(costs)
    assert leases.open_leases() == 1  # nothing seals it before its time
    clock.now += leases.seconds + 1
    final = settled(gw, created["id"])  # sealed by the next sweep, closed once recorded
    assert money(final["spent"]) == sum(costs, Decimal(0))


def test_a_model_without_price_is_refused_under_a_block_budget(gateway_factory: Any) -> None:
    gw = limited_gateway(gateway_factory)
    set_budget(gw, tenant="acme", amount="10", period="month")
    with gw.openai() as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="openrouter/some/unpriced-model",
                                       messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 402
    assert "has no price" in caught.value.response.json()["error"]["message"]


@pytest.mark.parametrize("fields, field, words", [
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "-5"}, "amount", "greater than zero"),
    ({"amount": "abc"}, "amount", ""),
    ({"amount": "5", "thresholds": ["0.5", "1.2"]}, "thresholds", "(0, 1]"),
    ({"amount": "5", "thresholds": ["0"]}, "thresholds", "(0, 1]"),
    ({"amount": "5", "period": "week"}, "period", "day, month, total"),
    ({"amount": "5", "mode": "warn"}, "mode", "block, alert"),
    ({"amount": "5", "currency": "EUR"}, "currency", "FX rate"),
    ({"amount": "5", "currency": "XYZ"}, "currency", ""),
    ({"amount": "5", "timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
])
def test_bad_budgets_get_400_naming_the_field(gateway_factory: Any, fields: dict[str, Any],
                                             field: str, words: str) -> None:
    gw = limited_gateway(gateway_factory)
    answer = gw.admin.post("/api/budgets", json={"tenant": "acme", **fields})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["message"]


def test_crossing_alerts_reach_a_webhook(gateway_factory: Any) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from meterline.config import LimitsConfig, Secret, WebhookSetting
    from meterline.simulator import serve_in_thread

    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_in_thread(receiver) as url:
        limits = LimitsConfig(webhooks=(WebhookSetting(Secret(url + "/hook"), "json"),))
        gw = limited_gateway(lambda: gateway_factory(limits=limits))
        created = set_budget(gw, tenant="acme", amount="0.00003", mode="alert",
                             thresholds=["0.5"])
        with gw.openai() as client:
            gw.record(chat(client).headers["x-meterline-request-id"])
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(received) == 1, received
    payload = received[0]
    assert payload["budget_id"] == created["id"] and payload["level"] == "info"
    assert payload["kind"] == "threshold" and payload["currency"] == "USD"
    listed = gw.admin.get("/api/alerts").json()["alerts"]
    assert [a["notified"] for a in listed] == [True]


def test_calls_that_find_the_budget_list_due_share_one_read() -> None:
    """At many connections, the calls of the moment the cached budget list goes stale wait for
    one database read, not one each."""
    admission = Admission(None, LimitsConfig())  # type: ignore[arg-type]  # _load replaced
    reads: list[int] = []
    release = threading.Event()

    def load() -> Any:
        reads.append(1)
        release.wait(30)  # a hang guard only: set as soon as the read has begun
        return _Limits([], set())

    admission._load = load  # type: ignore[method-assign]

    async def calls() -> None:
        waiting = [asyncio.create_task(admission.current()) for _ in range(10)]
        # The shared read starts after every call above has found the list due and waits.
        while not reads:
            await asyncio.sleep(0.001)
        release.set()
        await asyncio.gather(*waiting)

    asyncio.run(calls())
    assert len(reads) == 1
