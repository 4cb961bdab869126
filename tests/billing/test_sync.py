"""meterline.billing.sync.fetch against every provider's fake: lines and balances exact, the
provider's throttling retried, bad credentials, tampered requests and missing permissions
reported clearly, and no credential in any error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from meterline.billing.errors import (
    ProviderAuthFailed,
    ProviderPermissionMissing,
    ProviderThrottled,
    ProviderUnavailable,
)
from meterline.billing.http import Backoff
from meterline.billing.sync import fetch
from meterline.config import BillSourceConfig, Secret
from meterline.errors import InvalidInput
from tests.billing.conftest import Clock, options, serving, source
from tests.billing.data import BY_PROVIDER, CASES, SECRET, Case

SIGNED = [c for c in CASES if c.provider in ("aliyun", "tencent", "volcano", "baidu")]
#: What each provider's permission error must tell the user to grant.
PERMISSIONS = {"aliyun": ("DescribeInstanceBill", "bssapi:DescribeInstanceBill"),
               "tencent": ("DescribeBillDetail", "finance:DescribeBillDetail"),
               "volcano": ("ListBillDetail", "billing:ListBillDetail"),
               "baidu": ("/v1/bill/resource/month", "FCFullControlPolicy"),
               "openai": ("costs", "api.usage.read"),
               "anthropic": ("cost_report", "Admin API key")}
#: The header carrying each signature's time (changing it must break the signature).
TIME_HEADERS = {"aliyun": "x-acs-date", "tencent": "x-tc-timestamp", "volcano": "x-date",
                "baidu": "x-bce-date"}


def _ids(case: Case) -> str:
    return case.provider


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_fetches_lines_and_balances_exactly(case: Case, clock: Clock) -> None:
    with serving(case) as (url, account):
        fetched = fetch(source(case.provider, url), "2026-10", **options(clock))
    got = sorted((line.period.model, line.period.start, line.period.end, line.period.amount,
                  line.currency) for line in fetched.lines)
    assert got == sorted(case.lines)
    assert [(b.amount, b.currency) for b in fetched.balances] == case.balances
    assert all(line.raw for line in fetched.lines)  # the provider's row is kept
    # the fake throttled the first call of each action; each was retried after a backoff
    outcomes = [outcome for _, outcome in account.seen]
    assert "throttled" in outcomes and outcomes[-1] == "ok"
    assert Backoff().base in clock.slept
    assert (fetched.period.first.isoformat(), fetched.period.until.isoformat()) == (
        "2026-10-01", "2026-11-01")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_wrong_secret_is_refused_and_reported_without_it(case: Case, clock: Clock) -> None:
    wrong = "wrong-secret-0123456789"
    with serving(case) as (url, account), pytest.raises(ProviderAuthFailed) as raised:
        fetch(source(case.provider, url, secret=wrong), "2026-10", **options(clock))
    message = raised.value.message
    assert f"{case.provider} account 'main'" in message and "refused the credentials" in message
    assert wrong not in message and SECRET not in message
    assert "TEST_" in message  # names the environment variables to check
    assert account.seen[-1][1] in ("bad-signature", "bad-key")


class Tamper(httpx.BaseTransport):
    """Changes a header after the request was signed, as a man in the middle would."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        value = request.headers[self.header]
        request.headers[self.header] = value[:-1] + ("1" if value[-1] != "1" else "2")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("case", SIGNED, ids=_ids)
def test_a_tampered_request_is_refused(case: Case, clock: Clock) -> None:
    with serving(case) as (url, account), pytest.raises(ProviderAuthFailed) as raised:
        fetch(source(case.provider, url), "2026-10", transport=Tamper(
            TIME_HEADERS[case.provider]), **options(clock))
    assert account.seen == [(account.seen[0][0], "bad-signature")]
    assert "Signature" in raised.value.message


@pytest.mark.parametrize("case", [c for c in CASES if c.provider in PERMISSIONS], ids=_ids)
def test_a_missing_permission_is_named(case: Case, clock: Clock) -> None:
    action, permission = PERMISSIONS[case.provider]
    account = case.account()
    account.denied.add(action)
    with serving(case, account) as (url, _), pytest.raises(ProviderPermissionMissing) as raised:
        fetch(source(case.provider, url), "2026-10", **options(clock))
    assert permission in raised.value.message
    assert raised.value.context["permission"] and permission in raised.value.context["permission"]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_throttling_that_lasts_is_reported(case: Case, clock: Clock) -> None:
    with serving(case) as (url, _), pytest.raises(ProviderThrottled) as raised:
        fetch(source(case.provider, url), "2026-10", backoff=Backoff(attempts=1),
              **options(clock))
    assert "still throttled after 1 attempts" in raised.value.message


@pytest.mark.parametrize("provider", ["aliyun", "openai"])
def test_server_errors_are_retried_with_capped_backoff(provider: str, clock: Clock) -> None:
    case = BY_PROVIDER[provider]
    account = case.account()
    account.server_errors = 3
    with serving(case, account) as (url, _):
        fetched = fetch(source(provider, url), "2026-10",
                        backoff=Backoff(attempts=6, base=1, cap=3), **options(clock))
    assert len(fetched.lines) == len(case.lines)
    # three failures then a throttle on the first request, each wait doubling up to the cap
    assert [s for s in clock.slept if s >= 1][:4] == [1, 2, 3, 3]
    account = case.account()
    account.server_errors = 9
    with serving(case, account) as (url, _), pytest.raises(ProviderUnavailable) as raised:
        fetch(source(provider, url), "2026-10", backoff=Backoff(attempts=2), **options(clock))
    assert "after 2 attempts" in raised.value.message


def test_requests_are_throttled_to_the_configured_rate(clock: Clock) -> None:
    case = BY_PROVIDER["aliyun"]
    with serving(case) as (url, account):
        fetch(source("aliyun", url, requests_per_second=4), "2026-10", **options(clock))
    requests = len(account.seen)
    # one request each 0.25 s: the waits of the throttle and the backoffs add up to at least
    # the time the requests needed at 4 a second
    assert requests > 31 and sum(clock.slept) >= (requests - 1) / 4


def test_an_unset_environment_variable_is_named(clock: Clock) -> None:
    missing = BillSourceConfig(provider="aliyun", account="main", endpoint="http://127.0.0.1:9",
                               access_key_id=Secret("id"), access_key_secret=None,
                               credential_env={"access_key_id": "ALI_ID",
                                               "access_key_secret": "ALI_SECRET"})
    with pytest.raises(InvalidInput, match="ALI_SECRET"):
        fetch(missing, "2026-10", **options(clock))


def test_the_default_cycle_is_the_month_of_the_providers_yesterday(clock: Clock) -> None:
    case = BY_PROVIDER["volcano"]
    with serving(case) as (url, _):
        first_of_month: dict[str, Any] = {**options(clock)}
        from datetime import UTC, datetime
        first_of_month["now"] = lambda: datetime(2026, 10, 31, 17, 0, tzinfo=UTC)  # 11-01 CST
        fetched = fetch(source("volcano", url), **first_of_month)
    assert str(fetched.period.cycle) == "2026-10" and len(fetched.lines) == 3
    with pytest.raises(InvalidInput, match="no finished day"):
        fetch(source("volcano", "http://127.0.0.1:9"), "2026-11", **first_of_month)
