"""A month of two providers end to end, on SQLite and PostgreSQL: Alibaba Cloud billing in CNY
(qwen) and OpenAI in USD, known usage metered through ``POST /v1/usage`` at known prices, known
bills served by the fakes and synced with the sync button (``POST /api/sync``); then every
row of ``GET /api/reconcile`` and ``meterline reconcile`` — status and exact difference, in each
provider's currency and in USD — and the alerts the syncs raised."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson

from meterline.config import Config
from tests.billing.apps import fakes, finished, meterline
from tests.billing.conftest import source
from tests.billing.data import BY_PROVIDER, KEY_ID, SECRET
from tests.billing.fakes import Account
from tests.conftest import Cli

D = Decimal


def aliyun() -> Account:
    def item(day: str, spec: str, amount: str) -> dict[str, Any]:
        return {"BillingDate": f"2026-10-{day}", "InstanceSpec": spec, "PretaxAmount": D(amount),
                "Currency": "CNY", "ProductCode": "sfm"}
    return Account(KEY_ID, SECRET, throttle_first=False, rows=[
        item("01", "qwen-max", "1.20"), item("02", "qwen-max", "2.00"),
        item("03", "qwen-plus", "0.30"), item("05", "qwen-max", "0.99")],
        balance={"AvailableAmount": "50.00", "Currency": "CNY"})


def openai() -> Account:
    def bucket(day: str, *items: tuple[str, str]) -> dict[str, Any]:
        start = int(datetime.fromisoformat(f"2026-10-{day}T00:00:00+00:00").timestamp())
        return {"object": "bucket", "start_time": start, "end_time": start + 86400,
                "results": [{"amount": {"value": D(value), "currency": "usd"},
                             "line_item": line} for line, value in items]}
    return Account("", SECRET, throttle_first=False, rows=[
        bucket("01", ("gpt-5, input", "0.50"), ("gpt-5, output", "0.25")),
        bucket("02", ("gpt-5, input", "0.40"))])


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def meter(http: httpx.Client) -> None:
    """At 1 per million input tokens: qwen in CNY for tenant cn, gpt-5 in USD for tenant us."""
    usage = {"cn": [("01", "qwen/qwen-max", 1_200_000), ("02", "qwen/qwen-max", 1_500_000),
                    ("04", "qwen/qwen-plus", 100_000), ("05", "qwen/qwen-max", 1_000_000)],
             "us": [("01", "openai/gpt-5", 750_000), ("02", "openai/gpt-5", 500_000)]}
    for tenant, currency in (("cn", "CNY"), ("us", "USD")):
        ok(http.post("/api/tenants", json={"name": tenant, "currency": currency}), 201)
        key = ok(http.post("/api/keys", json={"tenant": tenant}), 201)["key"]
        for model in sorted({model for _, model, _ in usage[tenant]}):
            ok(http.post("/api/prices", json={
                "model": model, "unit": "1M", "currency": currency,
                "effective_from": "2020-01-01", "prices": {"input_tokens": "1",
                                                           "output_tokens": "2"}}), 201)
        events = [{"id": f"{tenant}-{day}-{model}", "timestamp": f"2026-10-{day}T10:00:00Z",
                   "model": model, "usage": {"input_tokens": tokens, "output_tokens": 0}}
                  for day, model, tokens in usage[tenant]]
        ok(http.post("/v1/usage", json={"events": events},
                     headers={"Authorization": f"Bearer {key}"}))
    ok(http.post("/api/fx", json={"base": "CNY", "quote": "USD", "rate": "0.14",
                                  "effective_from": "2020-01-01T00:00:00Z"}), 201)


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, Decimal, list[str]]]:
    """Each row's model, day, status, difference and the codes of its likely causes."""
    return [(r["model"], r["date"], r["status"], D(r["difference"]),
             [cause["code"] for cause in r["causes"]]) for r in report["rows"]]


QWEN = [  # metered against billed, CNY; the causes the ledger shows
    ("qwen/qwen-max", "2026-10-01", "match", D("0"), []),       # 1.20 against 1.20
    # 2.00 against 1.50: one of the day's calls was reported rather than passing the gateway
    ("qwen/qwen-max", "2026-10-02", "over", D("0.50"), ["reported"]),
    ("qwen/qwen-max", "2026-10-05", "match", D("-0.01"), []),   # 0.99 against 1.00: 1 %
    # the same calls on either side of a Beijing-time midnight
    ("qwen/qwen-plus", "2026-10-03", "only_billed", D("0.30"), ["day_boundary"]),
    ("qwen/qwen-plus", "2026-10-04", "only_metered", D("-0.10"), ["reported", "day_boundary"])]
OPENAI = [  # two line items of a day are one model's day, USD
    ("openai/gpt-5", "2026-10-01", "match", D("0"), []),        # 0.75 against 0.75
    # 0.40 against 0.50; the day's calls were reported, not passed through the gateway
    ("openai/gpt-5", "2026-10-02", "under", D("-0.10"), ["reported"])]


def test_two_providers_in_two_currencies_reconcile_row_by_row(config: Config,
                                                              run_cli: Cli) -> None:
    cases = ((BY_PROVIDER["aliyun"], aliyun()), (BY_PROVIDER["openai"], openai()))
    with fakes(*cases) as [ali_url, oai_url]:
        synced = replace(config, bill_sources=(
            source("aliyun", ali_url, low_balance=D(100)), source("openai", oai_url)))
        with meterline(synced) as http:
            meter(http)
            for provider in ("aliyun", "openai"):
                run = ok(http.post("/api/sync", json={"provider": provider,
                                                      "cycle": "2026-10"}), 202)
                assert finished(http, run["id"])["status"] == "ok"
            qwen = ok(http.get("/api/reconcile", params={"cycle": "2026-10",
                                                         "provider": "qwen"}))
            gpt = ok(http.get("/api/reconcile", params={"cycle": "2026-10",
                                                        "provider": "openai"}))
            alerts = ok(http.get("/api/alerts"))["alerts"]
    assert (qwen["currency"], rows(qwen)) == ("CNY", QWEN)
    assert (gpt["currency"], rows(gpt)) == ("USD", OPENAI)
    assert {(r["metered"], r["billed"]) for r in qwen["rows"] if r["status"] == "over"} == {
        ("1.5", "2")}
    # both providers in one report in USD: CNY at 0.14, the 1 % match still a match
    cli = run_cli("reconcile", "--cycle", "2026-10", "--currency", "USD", "--json")
    assert cli.exit_code == 0, cli.output
    both = orjson.loads(cli.stdout)
    assert (both["currency"], both["unconverted"]) == ("USD", [])
    assert rows(both) == OPENAI + [(model, day, status, difference * D("0.14"), causes)
                                   for model, day, status, difference, causes in QWEN]
    text = run_cli("reconcile", "--cycle", "2026-10", "--provider", "qwen").stdout
    assert text.count("only_billed") == 1 and "over" in text and "CNY" in text
    # each provider's differences beyond 1 % and the low balance are alerts
    found = {(a["kind"], a["source"]): a for a in alerts}
    assert set(found) == {("bill_difference", "aliyun:main"), ("bill_difference", "openai:main"),
                          ("low_balance", "aliyun:main")}
    qwen_alert = found[("bill_difference", "aliyun:main")]
    # over, only_billed and only_metered: billed 2.30 against 1.60 metered
    assert (D(qwen_alert["amount"]), D(qwen_alert["limit"]), qwen_alert["currency"]) == (
        D("2.30"), D("1.60"), "CNY")
    assert "in 3 rows" in qwen_alert["message"] and "qwen/qwen-max" in qwen_alert["message"]
    # the alert names the largest row's cause
    assert "in days of Asia/Shanghai" in qwen["rows"][3]["causes"][0]["message"]
    assert qwen_alert["message"].endswith(
        "; likely: 1 call of these days was reported to meterline rather than passing the "
        "gateway: their usage is the reporter's word")
    gpt_alert = found[("bill_difference", "openai:main")]
    assert (D(gpt_alert["amount"]), D(gpt_alert["limit"]), gpt_alert["percentage"]) == (
        D("0.40"), D("0.50"), "20")
    assert D(found[("low_balance", "aliyun:main")]["amount"]) == D("50")
