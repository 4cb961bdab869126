"""``GET /metrics``: Prometheus counters of requests, tokens and cost by provider and model, and
the upstream latency histogram, after real calls through the gateway."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import openai
import pytest

from meterline.config import Secret
from tests.gateway.conftest import money

LINE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")
NANO = "openai/gpt-5-nano"


def scrape(gateway) -> dict[tuple[str, frozenset], str]:
    answer = gateway.admin.get("/metrics")  # the admin token
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in answer.text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = LINE.match(line)
        assert match, line
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        samples[(name, pairs)] = value
    return samples


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_metrics_after_calls(gateway_factory):
    gateway = gateway_factory()  # counters of its own
    ids = []
    with gateway.openai() as client:
        for prompt in ("one", "one two three [[sim tokens=4]]"):
            raw = client.chat.completions.with_raw_response.create(
                model=NANO, messages=[{"role": "user", "content": prompt}])
            raw.parse()
            ids.append(raw.headers["x-meterline-request-id"])
        with client.chat.completions.create(
                model=NANO, stream=True,
                messages=[{"role": "user", "content": "four five [[sim tokens=2]]"}]) as stream:
            ids.append(stream.response.headers["x-meterline-request-id"])
            list(stream)
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(
                model=NANO, messages=[{"role": "user", "content": "x [[sim status=500]]"}])
        ids.append(failed.value.response.headers["x-meterline-request-id"])
    with gateway.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="anthropic/claude-sonnet-4-6", max_tokens=10,
            messages=[{"role": "user", "content": "a b [[sim cached=5]]"}])
        raw.parse()
        ids.append(raw.headers["x-meterline-request-id"])
    records = [gateway.record(request_id) for request_id in ids]

    deadline = time.monotonic() + 5
    while True:  # a stream is counted as it ends, just after its last bytes went out
        samples = scrape(gateway)
        done = sample(samples, "meterline_requests_total", provider="openai", model=NANO,
                      status="success")
        if done == "3" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert done == "3"
    assert sample(samples, "meterline_requests_total", provider="openai", model=NANO,
                  status="error") == "1"
    assert sample(samples, "meterline_requests_total", provider="anthropic",
                  model="anthropic/claude-sonnet-4-6", status="success") == "1"
    # Tokens: prompts of 1, 3 and 2 words; answers of 16, 4 and 2 tokens.
    assert sample(samples, "meterline_tokens_total", provider="openai", model=NANO,
                  direction="input") == "6"
    assert sample(samples, "meterline_tokens_total", provider="openai", model=NANO,
                  direction="output") == "22"
    assert sample(samples, "meterline_tokens_total", provider="anthropic",
                  model="anthropic/claude-sonnet-4-6", direction="input") == "7"
    nano_cost = sum((money(r["cost"]) for r in records if r["model"] == NANO), Decimal(0))
    assert nano_cost == Decimal("0.000050")  # (6 * 1 + 22 * 2) per 1M
    assert Decimal(sample(samples, "meterline_cost_total", provider="openai", model=NANO,
                          currency="USD")) == nano_cost
    assert Decimal(sample(samples, "meterline_cost_total", provider="anthropic",
                          model="anthropic/claude-sonnet-4-6", currency="USD")) \
        == money(records[-1]["cost"])

    # The latency histogram: every call that got an answer from the upstream, cumulative buckets.
    count = int(sample(samples, "meterline_upstream_latency_seconds_count", provider="openai"))
    assert count == 4
    buckets = sorted(
        ((float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"])),
         int(value))
        for (name, labels), value in samples.items()
        if name == "meterline_upstream_latency_seconds_bucket"
        and dict(labels)["provider"] == "openai")
    assert len(buckets) > 5
    counts = [n for _, n in buckets]
    assert counts == sorted(counts) and counts[-1] == count
    assert buckets[-1][0] == float("inf")
    total = float(sample(samples, "meterline_upstream_latency_seconds_sum", provider="openai"))
    assert 0 < total < 10
    assert sample(samples, "meterline_upstream_latency_seconds_count",
                  provider="anthropic") == "1"


# --- who may read them (issue 12.9: /metrics was open on the public port) ----------------------

def test_metrics_need_the_metrics_token_or_an_admin_token(gateway):
    with gateway.http() as http:
        for headers, says in (({}, "missing token"),
                              ({"Authorization": f"Bearer {gateway.key}"}, "invalid"),
                              ({"Authorization": "Bearer guess"}, "invalid")):
            refused = http.get("/metrics", headers=headers)
            assert refused.status_code == 401, refused.text
            assert says in refused.json()["error"]["message"]
            assert "meterline_" not in refused.text
    assert gateway.admin.get("/metrics").status_code == 200  # the admin token


def test_metrics_token_reads_metrics_and_nothing_else(gateway_factory):
    gateway = gateway_factory(metrics_token=Secret("scrape-me"))
    with gateway.http() as http:
        scraper = {"Authorization": "Bearer scrape-me"}
        answer = http.get("/metrics", headers=scraper)
        assert answer.status_code == 200 and "meterline_journal_pending" in answer.text
        assert http.get("/api/tenants", headers=scraper).status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer scrape-m"}
                        ).status_code == 401
