"""Prometheus metrics of the gateway: requests, tokens and cost by provider and model, and an
upstream latency histogram. Kept in process memory and rendered in the text exposition format
at ``GET /metrics`` (each process reports its own; Prometheus sums them)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from decimal import Decimal

from meterline.domain.money import format_decimal

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.tokens: dict[tuple[str, str, str], int] = defaultdict(int)
        self.cost: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        self.latency_buckets: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)  # money-ok: seconds
        self.latency_count: dict[str, int] = defaultdict(int)

    def observe(self, *, provider: str, model: str, status: str, input_tokens: int,
                output_tokens: int, cost: Decimal | None, currency: str | None,
                upstream_seconds: float | None) -> None:  # money-ok: seconds
        with self._lock:
            self.requests[(provider, model, status)] += 1
            self.tokens[(provider, model, "input")] += input_tokens
            self.tokens[(provider, model, "output")] += output_tokens
            if cost is not None and currency is not None:
                self.cost[(provider, model, currency)] += cost
            if upstream_seconds is not None:
                buckets = self.latency_buckets.setdefault(provider, [0] * (len(BUCKETS) + 1))
                buckets[bisect.bisect_left(BUCKETS, upstream_seconds)] += 1
                self.latency_sum[provider] += upstream_seconds
                self.latency_count[provider] += 1

    def render(self) -> str:
        out = ["# HELP meterline_requests_total Gateway calls by provider, model and status.",
               "# TYPE meterline_requests_total counter"]
        with self._lock:
            for (provider, model, status), n in sorted(self.requests.items()):
                out.append(f"meterline_requests_total"
                           f"{_labels(provider=provider, model=model, status=status)} {n}")
            out += ["# HELP meterline_tokens_total Tokens metered, by direction.",
                    "# TYPE meterline_tokens_total counter"]
            for (provider, model, direction), n in sorted(self.tokens.items()):
                out.append(f"meterline_tokens_total"
                           f"{_labels(provider=provider, model=model, direction=direction)} {n}")
            out += ["# HELP meterline_cost_total Cost metered, in the price's currency.",
                    "# TYPE meterline_cost_total counter"]
            for (provider, model, currency), amount in sorted(self.cost.items()):
                labels = _labels(provider=provider, model=model, currency=currency)
                out.append(f"meterline_cost_total{labels} {format_decimal(amount)}")
            out += ["# HELP meterline_upstream_latency_seconds Time until the upstream answered.",
                    "# TYPE meterline_upstream_latency_seconds histogram"]
            for provider, buckets in sorted(self.latency_buckets.items()):
                running = 0
                for bound, n in zip((*BUCKETS, float("inf")), buckets, strict=True):
                    running += n
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    out.append(f"meterline_upstream_latency_seconds_bucket"
                               f"{_labels(provider=provider, le=le)} {running}")
                out.append(f"meterline_upstream_latency_seconds_sum{_labels(provider=provider)} "
                           f"{self.latency_sum[provider]:.6f}")
                out.append(f"meterline_upstream_latency_seconds_count"
                           f"{_labels(provider=provider)} {self.latency_count[provider]}")
        return "\n".join(out) + "\n"
