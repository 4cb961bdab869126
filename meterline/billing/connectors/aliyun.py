"""Alibaba Cloud's BSS OpenAPI 2017-12-14 (business.aliyuncs.com), signed ACS3-HMAC-SHA256.

Lines: ``DescribeInstanceBill`` per billing item (``IsBillingItem``) and per day
(``Granularity=DAILY``, one ``BillingDate`` after the other), 300 a page through ``NextToken``;
the amount is ``PretaxAmount`` (what is payable, before vouchers), the model the item's
``InstanceSpec``, else its ``BillingItem``, else its product. Balance: ``QueryAccountBalance``'s
``AvailableAmount``. RAM actions to grant: ``bssapi:DescribeInstanceBill`` and
``bssapi:QueryAccountBalance`` (or the policy AliyunBSSReadOnlyAccess). The API allows an
account 10 requests a second.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from meterline.billing.connectors.base import CHINA, Base, Period, items, mapping, secret
from meterline.billing.http import Problem
from meterline.billing.lines import Balance, BilledLine, amount, billed, currency, day, first
from meterline.billing.signing import aliyun
from meterline.billing.signing.common import canonical_query

VERSION = "2017-12-14"
PAGE = 300
_AUTH = frozenset({"SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId",
                   "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive",
                   "InvalidTimeStamp.Expired"})
_DENIED = frozenset({"Forbidden", "Forbidden.RAM", "NoPermission", "NotAuthorized",
                     "Forbidden.NoPermission"})


def classify_for(action: str) -> Any:
    def classify(status: int, body: Any) -> Problem | None:
        data = body if isinstance(body, dict) else {}
        code = str(data.get("Code") or status)
        message = str(data.get("Message") or "")
        if status == 200 and (data.get("Success") is True or code in ("Success", "200")):
            return None
        if status == 429 or code.startswith("Throttling"):
            return Problem("throttled", code, message)
        if code in _AUTH:
            return Problem("auth", code, message)
        if code in _DENIED or status == 403:
            return Problem("permission", code, message,
                           f"the RAM action bssapi:{action} (or the policy "
                           "AliyunBSSReadOnlyAccess)")
        if status >= 500 or code in ("InternalError", "ServiceUnavailable"):
            return Problem("server", code, message)
        return Problem("refused", code, message)
    return classify


class Aliyun(Base):
    timezone = CHINA
    default_endpoint = "https://business.aliyuncs.com"
    default_name = "qwen"  # meterline's provider of Alibaba's models (DashScope / Model Studio)

    def _call(self, action: str, params: list[tuple[str, str]]) -> Any:
        def build() -> httpx.Request:
            headers = aliyun.sign(
                key_id=secret(self.source.access_key_id),
                secret=secret(self.source.access_key_secret), method="POST", host=self.host,
                action=action, version=VERSION, date=aliyun.timestamp(self.now()),
                nonce=uuid.uuid4().hex, query=params)
            return httpx.Request("POST", f"{self.endpoint}/?{canonical_query(params)}",
                                 headers=headers)
        return self.client.send(action, build, classify_for(action))

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        for billing_day in period.days():
            token = ""
            while True:
                params = [("BillingCycle", str(period.cycle)), ("Granularity", "DAILY"),
                          ("BillingDate", billing_day.isoformat()), ("IsBillingItem", "true"),
                          ("MaxResults", str(PAGE))]
                if token:
                    params.append(("NextToken", token))
                what = "aliyun DescribeInstanceBill"
                data = mapping(mapping(self._call("DescribeInstanceBill", params), what)
                               .get("Data"), what)
                page = items(data.get("Items"), what)
                for item in page:
                    out.append(self._line(item, len(out)))
                token = str(data.get("NextToken") or "")
                if not token or not page:
                    break
        return out

    def _line(self, item: dict[str, Any], index: int) -> BilledLine:
        where = self.where("DescribeInstanceBill", index)
        return billed(self.name, first(item, "InstanceSpec", "BillingItem", "ProductCode"),
                      day(item.get("BillingDate"), where, "BillingDate"),
                      amount(item.get("PretaxAmount"), where, "PretaxAmount"),
                      currency(item.get("Currency") or self.currency, where, "Currency"), item)

    def balances(self) -> list[Balance]:
        what = "aliyun QueryAccountBalance"
        data = mapping(mapping(self._call("QueryAccountBalance", []), what).get("Data"), what)
        code = currency(data.get("Currency") or self.currency, "aliyun balance", "Currency")
        return [self.balance(data.get("AvailableAmount"), code)]
