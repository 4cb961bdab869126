"""One provider account's HTTP client for its billing API: a throttle to the account's
requests per second, retries with capped exponential backoff when the provider throttles or
fails (5xx, a broken connection, a timeout), and the provider's error answers translated into
meterline's errors at this boundary.

A connector builds each request (signed anew for every attempt: signatures carry a time and a
nonce) and says how to read the provider's error shape (``Classify``); this module does the
rest. Clocks and sleeps are injected, so tests neither wait nor depend on the wall clock. No
credential is ever put in an error: a provider's own message is scrubbed of them first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import httpx

from meterline.billing.errors import (
    ProviderAuthFailed,
    ProviderPermissionMissing,
    ProviderThrottled,
    ProviderUnavailable,
)

Kind = Literal["throttled", "auth", "permission", "server", "refused"]


class Problem(NamedTuple):
    """A provider's error answer, read from its own shape by a connector."""

    kind: Kind
    code: str
    message: str
    #: For ``permission``: what to grant (a RAM / CAM / IAM action, a key scope).
    permission: str | None = None


#: ``(HTTP status, the answer's JSON or None) -> Problem``, None for a good answer.
Classify = Callable[[int, Any], Problem | None]


@dataclass
class Throttle:
    """At most ``rate`` requests a second: each waits until ``1 / rate`` after the one before."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _ready: float = field(default=float("-inf"), init=False)

    def wait(self) -> None:
        now = self.clock()
        if now < self._ready:
            self.sleep(self._ready - now)
            now = self._ready
        self._ready = now + 1.0 / self.rate


@dataclass(frozen=True)
class Backoff:
    """Attempts per request and the waits between them: ``base`` doubling up to ``cap``, or the
    provider's ``Retry-After`` where it sends one (never above ``cap``)."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.cap))
        return min(self.base * 2.0 ** attempt, self.cap)


def read_json(text: str) -> Any:
    """A JSON answer with its numbers as Decimal (money never passes through a float); None
    when the answer is not JSON."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


class BillingClient:
    """Requests to one provider account's billing API (``label``, e.g. "aliyun account main",
    names it in every error)."""

    def __init__(self, label: str, *, secrets: Iterable[str], hint: str, rate: float,
                 timeout: float, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 backoff: Backoff | None = None,
                 on_request: Callable[[int], None] | None = None) -> None:
        self.label = label
        self.hint = hint
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.throttle = Throttle(rate, clock, sleep)
        self.sleep = sleep
        self.backoff = backoff or Backoff()
        self.http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        #: Requests sent (every attempt), for the sync's summary.
        self.requests = 0
        #: Told the count after each request: a sync's progress.
        self.on_request = on_request

    def __enter__(self) -> BillingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def send(self, action: str, build: Callable[[], httpx.Request], classify: Classify) -> Any:
        """Send what ``build`` makes (anew for each attempt) and return the answer's JSON."""
        attempts = self.backoff.attempts
        for attempt in range(attempts):
            self.throttle.wait()
            self.requests += 1
            last = attempt == attempts - 1
            try:
                response = self.http.send(build())
            except httpx.TransportError as exc:
                self._sent()
                if last:
                    raise ProviderUnavailable(
                        f"{self.label}: {action} failed after {attempts} attempts: "
                        f"{self.scrub(str(exc)) or type(exc).__name__}", action=action) from exc
                self.sleep(self.backoff.delay(attempt, None))
                continue
            self._sent()
            body = read_json(response.text)
            problem = classify(response.status_code, body)
            if problem is None and body is None:
                problem = Problem("server", str(response.status_code),
                                  "the answer is not JSON")
            if problem is None:
                return body
            if problem.kind in ("throttled", "server") and not last:
                self.sleep(self.backoff.delay(attempt, _retry_after(response)))
                continue
            raise self._error(action, problem, attempts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sent(self) -> None:
        if self.on_request is not None:
            self.on_request(self.requests)

    def _error(self, action: str, problem: Problem, attempts: int) -> Exception:
        said = f"{problem.code}: {self.scrub(problem.message)}".strip(": ")
        context = {"action": action, "provider_code": problem.code}
        if problem.kind == "auth":
            return ProviderAuthFailed(
                f"{self.label}: the provider refused the credentials calling {action} ({said}); "
                f"check {self.hint}", **context)
        if problem.kind == "permission":
            return ProviderPermissionMissing(
                f"{self.label}: the credentials may not call {action}: grant "
                f"{problem.permission} ({said})", permission=problem.permission, **context)
        if problem.kind == "throttled":
            return ProviderThrottled(
                f"{self.label}: {action} still throttled after {attempts} attempts ({said}); "
                "lower requests_per_second or try again later", retry_after=60, **context)
        tries = f" after {attempts} attempts" if problem.kind == "server" else ""
        return ProviderUnavailable(f"{self.label}: {action} failed{tries} ({said})", **context)
