"""Budget alerts to webhooks: one payload per format, signed where the receiver asks for it, and
delivered with retries in the background so that no API call ever waits for a chat service.

Formats (``WebhookConfig.format``):

``json``
    Every alert field; money as exact decimal strings, times in ISO 8601. With a secret, two
    headers let the receiver check the sender: ``X-Meterline-Timestamp`` (Unix seconds) and
    ``X-Meterline-Signature: sha256=<hex>``, the HMAC-SHA256 keyed by the secret over
    ``f"{timestamp}.{body}"`` (the exact body bytes sent).
``slack``
    Incoming webhook: ``text`` (the notification fallback) and Block Kit ``blocks``.
``dingtalk``
    Custom robot, ``msgtype: markdown``. Signing (加签), as DingTalk documents it: ``timestamp``
    in milliseconds, ``sign`` = Base64(HMAC-SHA256(key=secret, message=f"{timestamp}\\n{secret}")),
    both added URL-encoded to the webhook URL's query (next to ``access_token``).
``feishu``
    Feishu/Lark custom bot, ``msg_type: interactive`` (a card). Signing, as Feishu documents it:
    ``timestamp`` in seconds (a string) and ``sign`` = Base64(HMAC-SHA256(
    key=f"{timestamp}\\n{secret}", message=b"")), both in the JSON body.
``wecom``
    WeCom group robot, ``msgtype: markdown``. Not signed: the ``key`` in the URL is the credential.

A secret is refused for ``slack`` and ``wecom``, which have no signing to use it for.

Delivery (:class:`Notifier`): each hook gets up to ``attempts`` tries. 2xx is delivered; 408,
429, 5xx, timeouts and network errors are retried after an exponential, jittered backoff
(``base_delay`` · 2ⁿ, at most ``max_delay``) or after ``Retry-After`` (seconds or an HTTP date,
also capped by ``max_delay``); any other status (3xx and 4xx) gives up at once — a redirect is
not followed, since a chat service redirects when it throttles or the URL is wrong. DingTalk,
Feishu and WeCom answer HTTP 200 with an error code in the body (``errcode`` / ``code`` /
legacy ``StatusCode``); a non-zero code is a failure. Only their rate-limit codes are retried
(:data:`RATE_LIMIT_CODES`); every other code means a wrong token, signature, keyword or payload,
which no retry can fix. A network error after the request went out is retried too, so a
receiver may see one alert twice; its ``id`` tells them apart.

Webhook URLs carry credentials (DingTalk's ``access_token``, WeCom's ``key``, the last path
segment of Slack and Feishu hooks): only :func:`redacted_url` forms of them are ever logged or
returned, and :class:`WebhookConfig` hides its URL and secret in ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import httpx
import orjson

from meterline import __version__
from meterline.alerts.payloads import check_format, clip, payload
from meterline.config import Secret
from meterline.domain.alerts import Alert
from meterline.errors import InvalidInput

log = logging.getLogger("meterline.alerts")

SIGNED_FORMATS: Final = ("json", "dingtalk", "feishu")
#: Body error codes that mean "slow down" rather than "misconfigured": DingTalk 130101 (more
#: than 20 messages a minute), Feishu 9499 and 11232 (frequency control), WeCom 45009.
RATE_LIMIT_CODES: Final[Mapping[str, frozenset[int]]] = {
    "dingtalk": frozenset({130101}),
    "feishu": frozenset({9499, 11232}),
    "wecom": frozenset({45009}),
}
RETRY_STATUSES: Final = frozenset({408, 429})
DEFAULT_TIMEOUT: Final = 5.0
#: A receiver's answer is read up to this size: enough for any error code, and a misbehaving
#: endpoint cannot make the notifier buffer an unbounded body.
MAX_ANSWER_BYTES: Final = 64 * 1024
ERROR_TEXT_LIMIT: Final = 200
#: Path segments at least this long are taken for tokens and hidden by redacted_url.
TOKEN_SEGMENT_LENGTH: Final = 16
#: Shorter URL parts are not scrubbed from error texts: no credential is that short, and
#: replacing every "t" of an answer would make it unreadable.
MIN_SCRUBBED_LENGTH: Final = 6
MASK: Final = "***"


def redacted_url(url: str) -> str:
    """``url`` fit for a log: no user info or fragment, every query value and every token-like
    path segment (the last one unless the query holds the credential, and any of 16+ characters)
    replaced by ``***``. ``https://oapi.dingtalk.com/robot/send?access_token=***``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if len(segment) >= TOKEN_SEGMENT_LENGTH or (last and segment and not parts.query):
            segments[index] = MASK
    query = "&".join(f"{name}={MASK}" for name, _ in parse_qsl(parts.query,
                                                               keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def _url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that redacted_url hides, to scrub them from error texts too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.query]
    if parts.password:
        found.append(parts.password)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if len(segment) >= TOKEN_SEGMENT_LENGTH or (last and segment and not parts.query):
            found += [segment, unquote(segment)]
    for _, value in parse_qsl(parts.query, keep_blank_values=True):
        found += [value, quote(value, safe="")]
    found = [s for s in found if len(s) >= MIN_SCRUBBED_LENGTH]
    return sorted({url, *found}, key=len, reverse=True)


def _scrub(text: str, hook: WebhookConfig) -> str:
    """``text`` (an answer, an exception) without the hook's credentials in it."""
    secrets = _url_secrets(hook.url)
    if hook.secret is not None and hook.secret.reveal():
        secrets.insert(0, hook.secret.reveal())
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    extra = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# --- configuration ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One webhook: where, in which format, and the signing secret if the receiver wants one."""

    url: str
    format: str = "json"
    secret: Secret | None = None

    def __post_init__(self) -> None:
        check_format(self.format)
        try:
            parts = urlsplit(self.url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError:
            valid = False
        if not valid:
            raise InvalidInput(f"url: must be an http or https URL, got {redacted_url(self.url)}",
                               field="url")
        if self.secret is not None and self.format not in SIGNED_FORMATS:
            raise InvalidInput(f"secret: {self.format} webhooks are not signed; a secret is used "
                               f"by {', '.join(SIGNED_FORMATS)} only", field="secret")

    def __repr__(self) -> str:
        return (f"WebhookConfig(url={redacted_url(self.url)!r}, format={self.format!r}, "
                f"secret={self.secret!r})")


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    #: redacted_url() of the hook: never the credentials it carries.
    url: str
    format: str
    delivered: bool
    attempts: int
    #: The last HTTP status received; None when no answer came.
    status: int | None
    error: str | None


# --- signing ------------------------------------------------------------------------------------

def dingtalk_sign(secret: str, timestamp: str) -> str:
    """Base64 HMAC-SHA256 keyed by the secret over ``f"{timestamp}\\n{secret}"`` (milliseconds);
    URL-encoded when it is put into the query."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp: str) -> str:
    """Base64 HMAC-SHA256 keyed by ``f"{timestamp}\\n{secret}"`` (seconds) over an empty message."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def json_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 keyed by the secret over ``timestamp + "." + body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _prepare(hook: WebhookConfig, body: dict[str, Any], now: float
             ) -> tuple[str, bytes, dict[str, str]]:
    """URL, body bytes and headers of one attempt; signed afresh each time, since DingTalk and
    Feishu refuse a timestamp more than an hour old and retries may span a long outage."""
    url, headers = hook.url, {"content-type": "application/json; charset=utf-8"}
    secret = hook.secret.reveal() if hook.secret is not None else None
    if secret is not None and hook.format == "dingtalk":
        stamp = str(int(now * 1000))
        url = _with_query(url, {"timestamp": stamp, "sign": dingtalk_sign(secret, stamp)})
    elif secret is not None and hook.format == "feishu":
        stamp = str(int(now))
        body = {"timestamp": stamp, "sign": feishu_sign(secret, stamp), **body}
    content = orjson.dumps(body)
    if secret is not None and hook.format == "json":
        stamp = str(int(now))
        headers["x-meterline-timestamp"] = stamp
        headers["x-meterline-signature"] = "sha256=" + json_signature(secret, stamp, content)
    return url, content, headers


# --- delivery -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Outcome:
    delivered: bool
    retryable: bool
    status: int | None
    error: str | None
    retry_after: float | None = None


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from now; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone takes "²", which float refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.fromtimestamp(now, UTC)).total_seconds())


def _answer_text(raw: bytes, hook: WebhookConfig) -> str:
    text = " ".join(raw.decode(errors="replace").split())
    return clip(_scrub(text, hook), ERROR_TEXT_LIMIT)


def _body_code(format: str, raw: bytes) -> tuple[int, str] | None:
    """The non-zero error code a chat service put in a 200 answer, with its message."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    keys = (("errcode", "errmsg"),) if format != "feishu" else (("code", "msg"),
                                                                 ("StatusCode", "StatusMessage"))
    for code_key, message_key in keys:
        code = data.get(code_key)
        if code is None or isinstance(code, bool):
            continue
        try:
            number = int(code)
        except (TypeError, ValueError):
            return -1, f"unreadable {code_key} {code!r}"
        if number != 0:
            return number, str(data.get(message_key, ""))
        return None
    return None


def _judge(hook: WebhookConfig, status: int, raw: bytes, retry_after: str | None,
           now: float) -> _Outcome:
    if 200 <= status < 300:
        found = _body_code(hook.format, raw) if hook.format in RATE_LIMIT_CODES else None
        if found is None:
            return _Outcome(True, False, status, None)
        code, message = found
        limited = code in RATE_LIMIT_CODES[hook.format]
        text = clip(_scrub(" ".join(message.split()), hook), ERROR_TEXT_LIMIT)
        error = f"{hook.format} refused the message: code {code}"
        return _Outcome(False, limited, status, f"{error}: {text}" if text else error)
    retryable = status in RETRY_STATUSES or status >= 500
    answer = _answer_text(raw, hook)
    error = f"HTTP {status}: {answer}" if answer else f"HTTP {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    return _Outcome(False, retryable, status, error,
                    _retry_after(retry_after, now) if retryable else None)


class Notifier:
    """Delivers alerts to webhooks over one shared HTTP client.

    ``send`` delivers and reports; ``start`` does the same in a background task and returns at
    once, for callers that must not wait (a request being metered). ``aclose`` waits up to
    ``drain_timeout`` seconds for started deliveries, cancels what is left, then closes the
    client. Deliveries awaited through ``send`` are the caller's to finish before ``aclose``.

    Requests are built by the client but sent through its transport: httpx's client logs every
    request URL at INFO, and a DingTalk or WeCom URL carries its credential in the query. For
    the same reason proxy variables of the environment are not read; ``proxy`` names one.
    """

    def __init__(self, *, attempts: int = 5, base_delay: float = 0.5, max_delay: float = 30.0,
                 timeout: float = DEFAULT_TIMEOUT, drain_timeout: float = 10.0,
                 proxy: str | None = None) -> None:
        if attempts < 1:
            raise InvalidInput(f"attempts: must be at least 1, got {attempts}", field="attempts")
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay),
                            ("timeout", timeout), ("drain_timeout", drain_timeout)):
            if not value >= 0:
                raise InvalidInput(f"{name}: must not be negative, got {value}", field=name)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.drain_timeout = drain_timeout
        self._transport = httpx.AsyncHTTPTransport(proxy=proxy)
        self._client = httpx.AsyncClient(transport=self._transport, timeout=timeout,
                                         follow_redirects=False, trust_env=False,
                                         headers={"user-agent": f"meterline/{__version__}"})
        self._tasks: set[asyncio.Task[list[DeliveryResult]]] = set()
        self._closed = False

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def in_flight(self) -> int:
        """Deliveries started with ``start`` and not finished yet."""
        return len(self._tasks)

    async def send(self, alert: Alert, hooks: Sequence[WebhookConfig]) -> list[DeliveryResult]:
        """Deliver ``alert`` to every hook at once; one result per hook, in the same order.
        Never raises for a failed delivery: the result says what went wrong."""
        if self._closed:
            raise RuntimeError("the notifier is closed")
        return await self._send(alert, hooks)

    async def _send(self, alert: Alert, hooks: Sequence[WebhookConfig]) -> list[DeliveryResult]:
        return list(await asyncio.gather(*(self._deliver(alert, hook) for hook in hooks)))

    def start(self, alert: Alert, hooks: Sequence[WebhookConfig]
              ) -> asyncio.Task[list[DeliveryResult]]:
        """``send`` in a background task on the running loop; returns without waiting."""
        if self._closed:
            raise RuntimeError("the notifier is closed")
        task = asyncio.get_running_loop().create_task(self._send(alert, hooks),
                                                      name=f"meterline-alert-{alert.id}")
        # The loop keeps only a weak reference to tasks: this set keeps each one alive.
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[list[DeliveryResult]]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("alert delivery task failed", exc_info=exc)

    async def aclose(self) -> None:
        """Let started deliveries finish (at most ``drain_timeout`` s), then close the client."""
        self._closed = True
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.drain_timeout)
            if late:
                log.warning("%d alert deliveries unfinished after %g s; cancelled",
                            len(late), self.drain_timeout)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        await self._client.aclose()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 32))
        # Jitter, so that notifiers retrying after one outage do not all return at once.
        return backoff / 2 + random.uniform(0, backoff / 2)

    async def _deliver(self, alert: Alert, hook: WebhookConfig) -> DeliveryResult:
        shown = redacted_url(hook.url)
        body = payload(alert, hook.format)
        attempt, outcome = 0, _Outcome(False, False, None, "not attempted")
        while attempt < self.attempts:
            attempt += 1
            outcome = await self._attempt(hook, body)
            if outcome.delivered:
                log.debug("alert %s delivered to %s (%s), attempt %d",
                          alert.id, shown, hook.format, attempt)
                return DeliveryResult(shown, hook.format, True, attempt, outcome.status, None)
            if not outcome.retryable or attempt == self.attempts:
                break
            delay = self._delay(attempt, outcome.retry_after)
            log.info("alert %s to %s (%s): attempt %d failed (%s); retrying in %.2f s",
                     alert.id, shown, hook.format, attempt, outcome.error, delay)
            await asyncio.sleep(delay)
        log.warning("alert %s not delivered to %s (%s) after %d attempt(s): %s",
                    alert.id, shown, hook.format, attempt, outcome.error)
        return DeliveryResult(shown, hook.format, False, attempt, outcome.status, outcome.error)

    async def _attempt(self, hook: WebhookConfig, body: dict[str, Any]) -> _Outcome:
        url, content, headers = _prepare(hook, body, time.time())
        request = self._client.build_request("POST", url, content=content, headers=headers)
        try:
            response = await self._transport.handle_async_request(request)
            try:
                raw = b""
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) >= MAX_ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
            return _judge(hook, response.status_code, raw[:MAX_ANSWER_BYTES],
                          response.headers.get("retry-after"), time.time())
        except httpx.TimeoutException:
            return _Outcome(False, True, None, f"no answer within {self.timeout:g} s")
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            return _Outcome(False, True, None, "cannot reach the webhook: "
                                               f"{_scrub(_describe(exc), hook)}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Outcome(False, False, None, _scrub(_describe(exc), hook))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
