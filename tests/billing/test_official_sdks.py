"""The providers' official Python SDKs against the fake billing servers (issue 14).

The fakes in ``fakes.py`` verify signatures with meterline's own signing functions, which are
tested against the providers' documented examples; here each provider's own SDK, pointed at
its fake over loopback http, calls the actions meterline's connector calls. With the account's
secret the fake must accept the SDK's signature and the SDK must parse its answer; with a wrong
secret the fake must refuse it as a bad signature, and the SDK must raise its own error
carrying the code the fake sent. A fake that checked a signature some other way than the
provider (and so the SDK) computes it would fail the first half; one that checked nothing would
fail the second.

Each SDK is told its endpoint, its scheme, its credentials and (where it has them) to make no
retries, so none resolves an endpoint, reads a credential chain or reaches past loopback; the
proxy variables are cleared, as the SDKs read them on their own.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any

import pytest
import volcenginesdkbilling
import volcenginesdkcore
from alibabacloud_bssopenapi20171214 import models as aliyun_models
from alibabacloud_bssopenapi20171214.client import Client as AliyunClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from baidubce import utils
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_base_client import BceBaseClient
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError, BceServerError
from baidubce.http import bce_http_client, handler, http_headers
from baidubce.retry.retry_policy import NoRetryPolicy
from tencentcloud.billing.v20180709 import billing_client
from tencentcloud.billing.v20180709 import models as tencent_models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from volcenginesdkcore.rest import ApiException

from tests.billing.conftest import serving
from tests.billing.data import BY_PROVIDER, KEY_ID, SECRET
from tests.billing.fakes import Account

WRONG = "not-the-secret-of-the-account"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to loopback go straight to the fake, whatever proxy the environment names."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def account_of(provider: str) -> Account:
    """The provider's account as the connector tests serve it, without the throttling answer
    to each action's first call (the connector tests prove meterline retries it; an SDK's own
    retries are switched off here)."""
    return dataclasses.replace(BY_PROVIDER[provider].account(), throttle_first=False)


def host_of(url: str) -> str:
    """``127.0.0.1:PORT`` of ``http://127.0.0.1:PORT``."""
    return url.removeprefix("http://")


# -- Tencent Cloud: tencentcloud-sdk-python-billing ----------------------------------------------

def tencent_client(url: str, secret: str) -> Any:
    # The SDK sends ``Host: <endpoint>`` and signs it (with content-type) as it sends it. The
    # region breaker, which would switch to a backup domain after failures, stays off.
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=host_of(url),
                                                    reqTimeout=30),
                            disable_region_breaker=True)
    return billing_client.BillingClient(credential.Credential(KEY_ID, secret), "", profile)


# meterline's connector sends PeriodType=byUsedTime, which this SDK's model marks deprecated
# (and warns of when it is set); it is sent here as the connector sends it.
@pytest.mark.filterwarnings("ignore:parameter `PeriodType` is deprecated:DeprecationWarning")
def test_tencent_sdk() -> None:
    def bill_request() -> Any:
        request = tencent_models.DescribeBillDetailRequest()
        request.Offset, request.Limit, request.Month = 0, 100, "2026-10"
        request.PeriodType, request.NeedRecordNum = "byUsedTime", 1
        return request

    with serving(BY_PROVIDER["tencent"], account_of("tencent")) as (url, account):
        client = tencent_client(url, SECRET)
        bills = client.DescribeBillDetail(bill_request())
        balance = client.DescribeAccountBalance(tencent_models.DescribeAccountBalanceRequest())
        with pytest.raises(TencentCloudSDKException) as refused:
            tencent_client(url, WRONG).DescribeBillDetail(bill_request())

    assert bills.Total == 3
    component = bills.DetailSet[0].ComponentSet[0]
    assert (component.ItemCodeName, component.RealCost) == ("hunyuan-turbo",
                                                            "0.000123456789012345678")
    assert balance.RealBalance == 1234567.5
    assert refused.value.get_code() == "AuthFailure.SignatureFailure"
    assert account.seen == [("DescribeBillDetail", "ok"), ("DescribeAccountBalance", "ok"),
                            ("DescribeBillDetail", "bad-signature")]


# -- Alibaba Cloud: alibabacloud_bssopenapi20171214 ---------------------------------------------

def aliyun_client(url: str, secret: str) -> Any:
    # Explicit AccessKey: the SDK's static credential, never its default chain. Its default
    # signature is ACS3-HMAC-SHA256, as meterline's connector signs.
    return AliyunClient(open_api_models.Config(access_key_id=KEY_ID, access_key_secret=secret,
                                              endpoint=host_of(url), protocol="http",
                                              region_id="cn-hangzhou"))


def test_aliyun_sdk() -> None:
    def bill_request() -> Any:
        return aliyun_models.DescribeInstanceBillRequest(
            billing_cycle="2026-10", granularity="DAILY", billing_date="2026-10-01",
            is_billing_item=True, max_results=300)

    with serving(BY_PROVIDER["aliyun"], account_of("aliyun")) as (url, account):
        client = aliyun_client(url, SECRET)
        bills = client.describe_instance_bill(bill_request()).body
        balance = client.query_account_balance().body
        with pytest.raises(ClientException) as refused:
            aliyun_client(url, WRONG).describe_instance_bill(bill_request())

    assert (bills.success, bills.data.total_count, bills.data.next_token) == (True, 3, "2")
    item = bills.data.items[0]
    assert (item.instance_spec, item.billing_item) == ("qwen-max", "input")
    # The SDK reads amounts through a float (a reason meterline parses them itself).
    assert item.pretax_amount == float("1234567.890123456789")
    assert (balance.data.available_amount, balance.data.currency) == ("10,000.25", "CNY")
    assert (refused.value.status_code, refused.value.code) == (400, "SignatureDoesNotMatch")
    assert account.seen == [("DescribeInstanceBill", "ok"), ("QueryAccountBalance", "ok"),
                            ("DescribeInstanceBill", "bad-signature")]


# -- Volcano Engine: volcenginesdk-billing -----------------------------------------------------

def volcano_client(url: str, secret: str) -> Any:
    configuration = volcenginesdkcore.Configuration()
    # A host of its own: the SDK resolves no endpoint. ak/sk set: it reads no credential chain.
    configuration.host, configuration.scheme = host_of(url), "http"
    configuration.ak, configuration.sk, configuration.region = KEY_ID, secret, "cn-beijing"
    configuration.auto_retry = False
    return volcenginesdkbilling.BILLINGApi(volcenginesdkcore.ApiClient(configuration))


def test_volcano_sdk() -> None:
    def bill_request() -> Any:
        return volcenginesdkbilling.ListBillDetailRequest(
            bill_period="2026-10", limit=300, offset=0, group_term=0, group_period=1,
            need_record_num=1)

    with serving(BY_PROVIDER["volcano"], account_of("volcano")) as (url, account):
        client = volcano_client(url, SECRET)
        bills = client.list_bill_detail(bill_request())
        # The SDK posts QueryBalanceAcct as JSON ({}); the connector GETs it. Both are signed.
        balance = client.query_balance_acct(volcenginesdkbilling.QueryBalanceAcctRequest())
        with pytest.raises(ApiException) as refused:
            volcano_client(url, WRONG).list_bill_detail(bill_request())

    assert bills.total == 3
    row = bills.list[0]
    assert (row.config_name, row.payable_amount) == ("doubao-pro-32k", "12.3456789012345678901")
    assert (balance.available_balance, balance.account_id) == ("888.88", 2100000001)
    # The SDK keeps the refusal's status and body; the code is the provider's, in the body.
    assert refused.value.status == 401
    error = json.loads(refused.value.body)["ResponseMetadata"]["Error"]
    assert error["Code"] == "SignatureDoesNotMatch"
    assert account.seen == [("ListBillDetail", "ok"), ("QueryBalanceAcct", "ok"),
                            ("ListBillDetail", "bad-signature")]


# -- Baidu AI Cloud: bce-python-sdk -----------------------------------------------------------

BILLS = "/v1/bill/resource/month"
BALANCE = "/v1/finance/cash/balance"


class Finance(BceBaseClient):
    """The SDK has no finance client: its base client, sending as its own service clients do
    (``bce_http_client.send_request`` with its bce-auth-v1 signer, its HTTP client and its
    error parsing)."""

    def _compute_service_id(self) -> str:
        return "billing"

    def call(self, method: bytes, path: str, params: dict[str, str] | None = None) -> Any:
        # Left to itself the SDK reads the clock twice, for x-bce-date and for the timestamp
        # of the authentication string, which the fake wants equal (meterline sends them
        # equal): a second boundary between the two readings would fail the call. One time
        # is given to both here, through the signer's own ``timestamp`` parameter.
        when = int(time.time())
        # The SDK leaves a kept-alive connection's socket open once it has read the answer
        # (a ResourceWarning when it is collected); asking the server to close it lets the
        # SDK's own reading of the answer close the socket. The header is not signed.
        headers = {http_headers.BCE_DATE: utils.get_canonical_time(when),
                   b"Connection": b"close"}
        return bce_http_client.send_request(
            self.config, functools.partial(bce_v1_signer.sign, timestamp=when),
            [handler.parse_error, handler.parse_json], method, path.encode(), None, headers,
            params)


def baidu_client(url: str, secret: str) -> Finance:
    return Finance(BceClientConfiguration(credentials=BceCredentials(KEY_ID, secret),
                                          endpoint=url, retry_policy=NoRetryPolicy()))


def test_baidu_sdk() -> None:
    query = {"month": "2026-10", "beginTime": "2026-10-01", "endTime": "2026-10-31",
             "granularity": "day", "productType": "postpay", "pageNo": "1", "pageSize": "100"}

    with serving(BY_PROVIDER["baidu"], account_of("baidu")) as (url, account):
        client = baidu_client(url, SECRET)
        bills = client.call(b"GET", BILLS, query)
        balance = client.call(b"POST", BALANCE)
        with pytest.raises(BceHttpClientError) as refused:
            baidu_client(url, WRONG).call(b"GET", BILLS, query)

    assert bills.total_count == 3
    bill = bills.bills[0]
    assert (bill.charge_item, bill.finance_price) == ("ernie-4.0-8k",
                                                      float("3.1415926535897932384"))
    assert balance.cash_balance == 850.0
    assert (refused.value.status_code, refused.value.code) == (400, "SignatureDoesNotMatch")
    assert isinstance(refused.value.last_error, BceServerError)
    assert account.seen == [(BILLS, "ok"), (BALANCE, "ok"), (BILLS, "bad-signature")]
