"""meterline.alerts.webhooks: payloads per format, signatures, and delivery with retries against
a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from meterline.alerts import FORMATS, DeliveryResult, Notifier, WebhookConfig, payload, redacted_url
from meterline.alerts.webhooks import dingtalk_sign, feishu_sign, json_signature
from meterline.config import Secret
from meterline.domain.alerts import Alert
from meterline.errors import InvalidInput

T = TypeVar("T")
D = Decimal
FAST = {"base_delay": 0.001, "max_delay": 0.05}


def make_alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": "al_42", "scope": "tenant acme · month", "budget_id": "bu_7", "level": "warning",
        "kind": "threshold", "percentage": D("80"), "amount": D("8.000"), "limit": D("10"),
        "currency": "USD", "period": "2026-11",
        "message": "Budget 'tenant acme · month' reached 80% (8.00 of 10.00 USD) for 2026-11",
        "created_at": datetime(2026, 11, 20, 14, 3, 5, tzinfo=UTC),
    }
    fields.update(changes)
    return Alert(**fields)


ALERT = make_alert()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- the receiver -------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def chat(**fields: Any) -> Reply:
    return Reply(200, json.dumps(fields).encode(), {"content-type": "application/json"})


@dataclass
class Received:
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query)

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering each path from a script (then 200 "ok")."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.received.append(Received(parts.path, parts.query,
                                                      {k.lower(): v for k, v in
                                                       self.headers.items()}, body))
                    script = receiver.scripts.get(parts.path, [])
                    reply = script.pop(0) if script else Reply()
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, *args: Any) -> None:
                pass  # a client that gave up (a cancelled delivery) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll keeps shutdown() quick at teardown.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)

    def script(self, path: str, *replies: Reply) -> str:
        self.scripts[path] = list(replies)
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def deliver(hooks: list[WebhookConfig], alert: Alert = ALERT,
            **options: Any) -> list[DeliveryResult]:
    async def go() -> list[DeliveryResult]:
        async with Notifier(**{**FAST, **options}) as notifier:
            return await notifier.send(alert, hooks)
    return run(go())


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- payloads -----------------------------------------------------------------------------------

def test_json_payload_has_every_field_with_money_as_strings() -> None:
    assert payload(ALERT, "json") == {
        "event": "budget.alert", "id": "al_42", "scope": "tenant acme · month",
        "budget_id": "bu_7", "level": "warning", "kind": "threshold", "percentage": "80",
        "amount": "8", "limit": "10", "currency": "USD", "period": "2026-11",
        "message": ALERT.message, "created_at": "2026-11-20T14:03:05+00:00", "resolved": False,
    }
    exact = payload(make_alert(amount=D("0.000123456789"), budget_id=None), "json")
    assert exact["amount"] == "0.000123456789"
    assert exact["budget_id"] is None


def test_slack_payload() -> None:
    body = payload(make_alert(scope="tenant <!channel> & co"), "slack")
    assert set(body) == {"text", "blocks"}
    assert "<!channel>" not in body["text"]
    assert "&lt;!channel&gt; &amp; co" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    assert body["blocks"][0]["text"] == {
        "type": "plain_text", "text": "[WARNING] meterline budget at 80%: tenant <!channel> & co"}
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1]
              for f in body["blocks"][2]["fields"]}
    assert fields["*Spent*"] == "8.00 of 10.00 USD"
    assert fields["*Period*"] == "2026-11"


def test_dingtalk_payload() -> None:
    body = payload(make_alert(level="critical", percentage=D("104.5")), "dingtalk")
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "[CRITICAL] meterline budget at 104.5%: tenant acme · month"
    assert body["markdown"]["text"].startswith("### [CRITICAL]")
    assert "**Spent:** 8.00 of 10.00 USD" in body["markdown"]["text"]
    assert ALERT.message in body["markdown"]["text"]


def test_feishu_payload() -> None:
    body = payload(make_alert(kind="projected_overrun", percentage=D("125")), "feishu")
    assert set(body) == {"msg_type", "card"}
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"] == {
        "title": {"tag": "plain_text",
                  "content": "[WARNING] meterline budget projected to reach 125%: "
                             "tenant acme · month"},
        "template": "orange"}
    assert card["elements"][0] == {"tag": "div",
                                   "text": {"tag": "plain_text", "content": ALERT.message}}
    contents = [f["text"]["content"] for f in card["elements"][1]["fields"]]
    assert "**Kind**\nprojected overrun" in contents
    assert payload(make_alert(resolved=True), "feishu")["card"]["header"]["template"] == "green"


def test_wecom_payload() -> None:
    body = payload(ALERT, "wecom")
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert content.startswith('**<font color="warning">[WARNING] meterline budget at 80%')
    assert '> Spent: <font color="comment">8.00 of 10.00 USD</font>' in content
    huge = payload(make_alert(message="预算" * 3000), "wecom")["markdown"]["content"]
    assert len(huge.encode()) <= 4096
    assert huge.endswith("…")


def test_unknown_format_names_the_field_and_allowed_values() -> None:
    with pytest.raises(InvalidInput) as info:
        payload(ALERT, "teams")
    assert info.value.field == "format"
    for name in FORMATS:
        assert name in info.value.message
    with pytest.raises(InvalidInput) as info:
        WebhookConfig("https://example.com/hook", "discord")
    assert info.value.field == "format"


# --- configuration and redaction ----------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    ("https://oapi.dingtalk.com/robot/send?access_token=abc123",
     "https://oapi.dingtalk.com/robot/send?access_token=***"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx",
     "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"),
    ("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "https://hooks.slack.com/services/T00000000/B00000000/***"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/2b0b5c1e-4a8e-4f9a-9d2e-3f8e1c2d3a4b",
     "https://open.feishu.cn/open-apis/bot/v2/hook/***"),
    ("https://user:pass@example.com:8443/hooks/short#frag", "https://example.com:8443/hooks/***"),
    ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
])
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_config_hides_url_credentials_and_secret() -> None:
    hook = WebhookConfig("https://oapi.dingtalk.com/robot/send?access_token=tok3n", "dingtalk",
                         Secret("SECsecretvalue"))
    text = repr(hook)
    assert "tok3n" not in text and "SECsecretvalue" not in text
    assert "access_token=***" in text


@pytest.mark.parametrize(("args", "field_name"), [
    (("ftp://example.com/x",), "url"),
    (("not a url",), "url"),
    (("http://example.com:port/x",), "url"),
    (("https://hooks.slack.com/services/x", "slack", Secret("s")), "secret"),
    (("https://qyapi.weixin.qq.com/x?key=k", "wecom", Secret("s")), "secret"),
])
def test_config_refuses(args: tuple[Any, ...], field_name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        WebhookConfig(*args)
    assert info.value.field == field_name


def test_notifier_refuses_bad_options() -> None:
    with pytest.raises(InvalidInput) as info:
        Notifier(attempts=0)
    assert info.value.field == "attempts"
    with pytest.raises(InvalidInput) as info:
        Notifier(base_delay=-1)
    assert info.value.field == "base_delay"


# --- signatures ---------------------------------------------------------------------------------

def test_dingtalk_signature_is_in_the_query_and_verifies(receiver: Receiver) -> None:
    secret = "SEC" + "a1b2c3" * 10
    url = receiver.script("/robot/send", chat(errcode=0, errmsg="ok")) + "?access_token=tok"
    before = int(time.time() * 1000)
    [result] = deliver([WebhookConfig(url, "dingtalk", Secret(secret))])
    after = int(time.time() * 1000)
    assert result.delivered and result.attempts == 1
    [got] = receiver.at("/robot/send")
    query = got.query
    assert query["access_token"] == ["tok"]
    stamp = query["timestamp"][0]
    assert before <= int(stamp) <= after
    expected = base64.b64encode(hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected] == [dingtalk_sign(secret, stamp)]
    # URL-encoded: a raw "+" would reach DingTalk as a space.
    raw_sign = got.raw_query.split("sign=")[1].split("&")[0]
    assert not set(raw_sign) & set("+/=")
    assert got.json()["msgtype"] == "markdown"
    assert got.headers["content-type"] == "application/json; charset=utf-8"


def test_feishu_signature_is_in_the_body_and_verifies(receiver: Receiver) -> None:
    secret = "feishu-secret-42"
    url = receiver.script("/open-apis/bot/v2/hook/x", chat(code=0, msg="success", data={}))
    before = int(time.time())
    [result] = deliver([WebhookConfig(url, "feishu", Secret(secret))])
    assert result.delivered
    [got] = receiver.at("/open-apis/bot/v2/hook/x")
    body = got.json()
    stamp = body["timestamp"]
    assert isinstance(stamp, str) and before <= int(stamp) <= int(time.time())
    expected = base64.b64encode(hmac.new(f"{stamp}\n{secret}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    assert body["sign"] == expected == feishu_sign(secret, stamp)
    assert body["msg_type"] == "interactive" and "card" in body
    assert got.raw_query == ""


def test_json_signature_header_verifies(receiver: Receiver) -> None:
    url = receiver.script("/json")
    [result] = deliver([WebhookConfig(url, "json", Secret("shh"))])
    assert result.delivered
    [got] = receiver.at("/json")
    stamp = got.headers["x-meterline-timestamp"]
    expected = hmac.new(b"shh", stamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-meterline-signature"] == f"sha256={expected}"
    assert expected == json_signature("shh", stamp, got.body)
    assert got.json()["amount"] == "8"
    unsigned = receiver.script("/plain")
    deliver([WebhookConfig(unsigned)])
    assert "x-meterline-signature" not in receiver.at("/plain")[0].headers


# --- delivery -----------------------------------------------------------------------------------

def test_server_errors_are_retried_until_delivered(receiver: Receiver) -> None:
    url = receiver.script("/flaky", Reply(500), Reply(503), Reply(200))
    [result] = deliver([WebhookConfig(url)])
    assert result == DeliveryResult(redacted_url(url), "json", True, 3, 200, None)
    assert len(receiver.at("/flaky")) == 3


def test_client_error_gives_up_at_once(receiver: Receiver) -> None:
    url = receiver.script("/bad", Reply(400, b'{"error": "no such channel"}'), Reply(200))
    [result] = deliver([WebhookConfig(url)])
    assert not result.delivered
    assert result.attempts == 1 and result.status == 400
    assert result.error == 'HTTP 400: {"error": "no such channel"}'
    assert len(receiver.at("/bad")) == 1


@pytest.mark.parametrize("status", [404, 410, 302])
def test_other_statuses_are_not_retried(receiver: Receiver, status: int) -> None:
    url = receiver.script("/gone", Reply(status, b"", {"location": "http://127.0.0.1:9/"}))
    [result] = deliver([WebhookConfig(url)])
    assert (result.delivered, result.attempts, result.status) == (False, 1, status)


def test_rate_limit_with_retry_after_is_retried(receiver: Receiver) -> None:
    url = receiver.script("/limited", Reply(429, b"slow down", {"retry-after": "0"}), Reply(200))
    [result] = deliver([WebhookConfig(url)])
    assert (result.delivered, result.attempts, result.status) == (True, 2, 200)


def test_retry_after_is_capped_by_max_delay(receiver: Receiver) -> None:
    url = receiver.script("/later", Reply(503, b"", {"retry-after": "3600"}),
                          Reply(408, b"", {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}),
                          Reply(200))
    started = time.monotonic()
    [result] = deliver([WebhookConfig(url)], max_delay=0.05)
    assert time.monotonic() - started < 2
    assert (result.delivered, result.attempts) == (True, 3)


def test_attempts_are_bounded(receiver: Receiver) -> None:
    url = receiver.script("/down", *[Reply(500, b"boom")] * 10)
    [result] = deliver([WebhookConfig(url)], attempts=4)
    assert (result.delivered, result.attempts, result.status) == (False, 4, 500)
    assert result.error == "HTTP 500: boom"
    assert len(receiver.at("/down")) == 4


def test_dingtalk_error_code_in_a_200_is_a_failure(receiver: Receiver) -> None:
    url = receiver.script("/robot/send", chat(errcode=310000, errmsg="keywords not in content"),
                          chat(errcode=0, errmsg="ok")) + "?access_token=t"
    [result] = deliver([WebhookConfig(url, "dingtalk")])
    assert (result.delivered, result.attempts, result.status) == (False, 1, 200)
    assert result.error == "dingtalk refused the message: code 310000: keywords not in content"


def test_chat_rate_limit_codes_are_retried(receiver: Receiver) -> None:
    ding = receiver.script("/ding", chat(errcode=130101, errmsg="send too fast"),
                           chat(errcode=0, errmsg="ok"))
    lark = receiver.script("/lark", chat(code=9499, msg="too many request"),
                           chat(code=11232, msg="frequency limited"),
                           chat(StatusCode=0, StatusMessage="success"))
    wecom = receiver.script("/wecom", chat(errcode=45009, errmsg="api freq out of limit"),
                            chat(errcode=0, errmsg="ok"))
    results = deliver([WebhookConfig(ding, "dingtalk"), WebhookConfig(lark, "feishu"),
                       WebhookConfig(wecom, "wecom")])
    assert [(r.format, r.delivered, r.attempts) for r in results] == [
        ("dingtalk", True, 2), ("feishu", True, 3), ("wecom", True, 2)]


def test_feishu_and_wecom_error_codes_are_failures(receiver: Receiver) -> None:
    lark = receiver.script("/lark", chat(code=19021, msg="sign match fail or timestamp is not "
                                                         "within one hour from current time"))
    wecom = receiver.script("/wecom", chat(errcode=93000, errmsg="invalid webhook url"))
    lark_result, wecom_result = deliver([WebhookConfig(lark, "feishu"),
                                         WebhookConfig(wecom, "wecom")])
    assert (lark_result.delivered, lark_result.attempts) == (False, 1)
    assert lark_result.error is not None and "code 19021: sign match fail" in lark_result.error
    assert (wecom_result.delivered, wecom_result.attempts) == (False, 1)
    assert wecom_result.error == "wecom refused the message: code 93000: invalid webhook url"


def test_a_200_without_a_code_is_delivered_for_json_and_slack(receiver: Receiver) -> None:
    url = receiver.script("/any", chat(errcode=1))
    results = deliver([WebhookConfig(url, "json"), WebhookConfig(url, "slack")])
    assert [r.delivered for r in results] == [True, True]


def test_unreachable_port_is_retried_then_fails_clearly() -> None:
    url = f"http://127.0.0.1:{unused_port()}/hook"
    [result] = deliver([WebhookConfig(url)], attempts=3)
    assert (result.delivered, result.attempts, result.status) == (False, 3, None)
    assert result.error is not None
    assert result.error.startswith("cannot reach the webhook: ConnectError")


def test_no_answer_in_time_is_retried_then_fails(receiver: Receiver) -> None:
    url = receiver.script("/slow", Reply(delay=1), Reply(delay=1))
    [result] = deliver([WebhookConfig(url)], attempts=2, timeout=0.2)
    assert (result.delivered, result.attempts, result.status) == (False, 2, None)
    assert result.error == "no answer within 0.2 s"


def test_each_hook_gets_its_own_result_in_order(receiver: Receiver) -> None:
    good = receiver.script("/good")
    bad = receiver.script("/bad", Reply(403, b"forbidden"))
    results = deliver([WebhookConfig(bad, "slack"), WebhookConfig(good, "json")])
    assert [(r.url, r.format, r.delivered) for r in results] == [
        (redacted_url(bad), "slack", False), (redacted_url(good), "json", True)]
    assert deliver([]) == []


def test_credentials_never_reach_logs_or_results(receiver: Receiver,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    token, secret = "TOPSECRETTOKEN", "SECverysecretsigningkey"
    url = receiver.script("/robot/send", Reply(500, f"bad token {token}".encode()),
                          chat(errcode=300001, errmsg=f"token {token} is invalid"))
    caplog.set_level(logging.DEBUG)
    [result] = deliver([WebhookConfig(f"{url}?access_token={token}", "dingtalk",
                                      Secret(secret))])
    assert not result.delivered and result.attempts == 2
    shown = f"{caplog.text} {result}"
    assert token not in shown and secret not in shown
    assert "access_token=***" in shown
    assert result.error == "dingtalk refused the message: code 300001: token *** is invalid"


# --- background delivery ------------------------------------------------------------------------

def test_start_returns_at_once_while_the_receiver_is_slow(receiver: Receiver) -> None:
    url = receiver.script("/slow", Reply(delay=0.5))

    async def go() -> None:
        async with Notifier(**FAST) as notifier:
            started = time.perf_counter()
            task = notifier.start(ALERT, [WebhookConfig(url)])
            assert time.perf_counter() - started < 0.05
            assert not task.done() and notifier.in_flight == 1
            [result] = await task
            assert result.delivered
            assert notifier.in_flight == 0
    run(go())


def test_aclose_waits_for_deliveries_in_flight(receiver: Receiver) -> None:
    url = receiver.script("/slow", Reply(500, delay=0.2), Reply(200, delay=0.2))

    async def go() -> asyncio.Task[list[DeliveryResult]]:
        notifier = Notifier(**FAST)
        task = notifier.start(ALERT, [WebhookConfig(url)])
        await notifier.aclose()
        assert task.done()
        with pytest.raises(RuntimeError):
            notifier.start(ALERT, [WebhookConfig(url)])
        with pytest.raises(RuntimeError):
            await notifier.send(ALERT, [WebhookConfig(url)])
        return task
    task = run(go())
    assert task.result()[0].delivered
    assert len(receiver.at("/slow")) == 2


def test_aclose_is_bounded_and_cancels_what_is_left(receiver: Receiver,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    url = receiver.script("/stuck", Reply(delay=1))

    async def go() -> asyncio.Task[list[DeliveryResult]]:
        notifier = Notifier(**FAST, drain_timeout=0.1)
        task = notifier.start(ALERT, [WebhookConfig(url)])
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await notifier.aclose()
        assert time.monotonic() - started < 0.5
        return task
    task = run(go())
    assert task.cancelled()
    assert "1 alert deliveries unfinished after 0.1 s; cancelled" in caplog.text
