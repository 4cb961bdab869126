"""``GET /metrics``: Prometheus counters of requests, tokens and cost by provider and model, and
the upstream latency histogram, after real calls through the gateway (prometheus_client, a
registry per app). Several worker processes: tests/cli/test_serve_workers.py."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from decimal import Decimal

import openai
import pytest

from meterline.config import Secret
from meterline.gateway.metrics import Metrics
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


def number(samples, name, **labels) -> float | None:
    found = sample(samples, name, **labels)
    return None if found is None else float(found)


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
        done = number(samples, "meterline_requests_total", provider="openai", model=NANO,
                      status="success")
        if done == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert done == 3
    assert number(samples, "meterline_requests_total", provider="openai", model=NANO,
                  status="error") == 1
    assert number(samples, "meterline_requests_total", provider="anthropic",
                  model="anthropic/claude-sonnet-4-6", status="success") == 1
    # Tokens: prompts of 1, 3 and 2 words; answers of 16, 4 and 2 tokens.
    assert number(samples, "meterline_tokens_total", provider="openai", model=NANO,
                  direction="input") == 6
    assert number(samples, "meterline_tokens_total", provider="openai", model=NANO,
                  direction="output") == 22
    assert number(samples, "meterline_tokens_total", provider="anthropic",
                  model="anthropic/claude-sonnet-4-6", direction="input") == 7
    nano_cost = sum((money(r["cost"]) for r in records if r["model"] == NANO), Decimal(0))
    assert nano_cost == Decimal("0.000050")  # (6 * 1 + 22 * 2) per 1M
    # The ledger's cost is exact; the metric is a float, as every Prometheus value is.
    assert math.isclose(number(samples, "meterline_cost_total", provider="openai", model=NANO,
                               currency="USD"), nano_cost, rel_tol=1e-9)
    assert math.isclose(number(samples, "meterline_cost_total", provider="anthropic",
                               model="anthropic/claude-sonnet-4-6", currency="USD"),
                        money(records[-1]["cost"]), rel_tol=1e-9)

    # The latency histogram: every call that got an answer from the upstream, cumulative buckets.
    count = number(samples, "meterline_upstream_latency_seconds_count", provider="openai")
    assert count == 4
    buckets = sorted(
        ((float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"])),
         float(value))
        for (name, labels), value in samples.items()
        if name == "meterline_upstream_latency_seconds_bucket"
        and dict(labels)["provider"] == "openai")
    assert len(buckets) > 5
    counts = [n for _, n in buckets]
    assert counts == sorted(counts) and counts[-1] == count
    assert buckets[-1][0] == float("inf")
    total = number(samples, "meterline_upstream_latency_seconds_sum", provider="openai")
    assert 0 < total < 10
    assert number(samples, "meterline_upstream_latency_seconds_count",
                  provider="anthropic") == 1


def test_the_exposition_keeps_its_names_and_shows_each_series_once(gateway):
    """Dashboards and alerts rely on the names (and types) the hand-written exposition had."""
    with gateway.openai() as client:
        client.chat.completions.create(model=NANO, messages=[{"role": "user", "content": "hi"}])
    text = gateway.admin.get("/metrics").text
    for name, kind in (("meterline_requests_total", "counter"),
                       ("meterline_tokens_total", "counter"),
                       ("meterline_cost_total", "counter"),
                       ("meterline_upstream_latency_seconds", "histogram"),
                       ("meterline_leases_opened_total", "counter"),
                       ("meterline_lease_admissions_total", "counter"),
                       ("meterline_background_failures", "gauge"),
                       ("meterline_background_last_success_seconds", "gauge"),
                       ("meterline_journal_pending", "gauge")):
        assert f"# TYPE {name} {kind}\n" in text, name
    samples = scrape(gateway)
    for loop in ("price_refresh", "hold_sweep", "lease_sweep", "alerts", "journal_drainer"):
        assert number(samples, "meterline_background_failures", loop=loop) == 0, loop
        assert number(samples, "meterline_background_last_success_seconds", loop=loop) >= 0
    assert number(samples, "meterline_journal_pending") >= 0
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines()
              if line and not line.startswith("#")]
    assert [s for s, n in Counter(series).items() if n > 1] == []
    # Series a multiprocess scrape cannot show are left out here too.
    assert "_created" not in text


def test_apps_in_one_process_count_apart():
    """Tests (and any program) build many apps in one process: each has a registry of its own,
    where the global one would refuse the second app's metrics."""
    first, second = Metrics(), Metrics()
    first.observe(provider="p", model="m", status="success", input_tokens=1, output_tokens=1,
                  cost=Decimal("0.1"), currency="USD", upstream_seconds=0.1)
    assert b'meterline_requests_total{model="m",provider="p",status="success"} 1.0' \
        in first.render()
    assert b"meterline_requests_total{" not in second.render()


def test_observing_odd_numbers_never_fails_the_call():
    """A counter refuses to go down; a call's answer must not fail on that."""
    metrics = Metrics()
    metrics.observe(provider="p", model="m", status="success", input_tokens=-1,
                    output_tokens=2, cost=Decimal("-0.5"), currency="USD",
                    upstream_seconds=-0.1)
    text = metrics.render().decode()
    assert 'meterline_requests_total{model="m",provider="p",status="success"} 1.0' in text
    assert 'meterline_tokens_total{direction="output",model="m",provider="p"} 2.0' in text
    assert 'meterline_tokens_total{direction="input",model="m",provider="p"} 0.0' in text
    assert 'meterline_cost_total{currency="USD",model="m",provider="p"} 0.0' in text


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
