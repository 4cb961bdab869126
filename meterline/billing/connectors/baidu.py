"""Baidu AI Cloud's finance API (billing.baidubce.com), signed bce-auth-v1.

Lines: ``GET /v1/bill/resource/month`` by day (``beginTime``/``endTime``, ``granularity=day``),
postpaid then prepaid (``productType`` is required), 100 a page by ``pageNo``; the amount is
``financePrice`` (应付金额, payable), the day ``startTime`` (a UTC time, read as a Beijing day),
the model the bill's ``chargeItem``, else its ``serviceType``. Balance:
``POST /v1/finance/cash/balance``'s ``cashBalance``. A sub-user needs the IAM policy
FCFullControlPolicy (or IAM administrator rights). The API allows 20 requests a second.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import httpx

from meterline.billing.connectors.base import CHINA, Base, Period, items, mapping, secret
from meterline.billing.http import Problem
from meterline.billing.lines import Balance, BilledLine, amount, billed, first
from meterline.billing.signing import baidu
from meterline.billing.signing.common import canonical_query
from meterline.errors import InvalidInput

PAGE = 100
BILLS = "/v1/bill/resource/month"
BALANCE = "/v1/finance/cash/balance"
PERMISSION = "the IAM policy FCFullControlPolicy (or IAM administrator rights)"


def classify(status: int, body: Any) -> Problem | None:
    if status == 200 and isinstance(body, dict):
        return None
    data = body if isinstance(body, dict) else {}
    code = str(data.get("code") or status)
    message = str(data.get("message") or "")
    if status == 429 or code in ("RequestRateLimitExceeded", "TooManyRequests", "Throttling"):
        return Problem("throttled", code, message)
    if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidHTTPAuthHeader",
                "RequestExpired"):
        return Problem("auth", code, message)
    if code == "AccessDenied" or status == 403:
        return Problem("permission", code, message, PERMISSION)
    if status >= 500:
        return Problem("server", code, message)
    return Problem("refused", code, message)


class Baidu(Base):
    timezone = CHINA
    default_endpoint = "https://billing.baidubce.com"
    default_name = "baidu"

    def _call(self, action: str, method: str, path: str,
              query: list[tuple[str, str]]) -> dict[str, Any]:
        def build() -> httpx.Request:
            headers = baidu.sign(key_id=secret(self.source.access_key_id),
                                 secret=secret(self.source.access_key_secret), method=method,
                                 host=self.host, path=path, query=query,
                                 when=baidu.timestamp(self.now()))
            suffix = f"?{canonical_query(query)}" if query else ""
            return httpx.Request(method, f"{self.endpoint}{path}{suffix}", headers=headers)
        return mapping(self.client.send(action, build, classify), f"baidu {action}")

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        last = period.until - timedelta(days=1)
        for product_type in ("postpay", "prepay"):
            page, seen = 1, 0
            while True:
                answer = self._call("GetResourceMonthBill", "GET", BILLS, [
                    ("month", str(period.cycle)), ("beginTime", period.first.isoformat()),
                    ("endTime", last.isoformat()), ("granularity", "day"),
                    ("productType", product_type), ("pageNo", str(page)),
                    ("pageSize", str(PAGE))])
                bills = items(answer.get("bills"), "baidu GetResourceMonthBill")
                for bill in bills:
                    line = self._line(bill, len(out))
                    if period.covers(line.period.start):
                        out.append(line)
                seen += len(bills)
                total = answer.get("totalCount")
                if not bills or not isinstance(total, int) or seen >= total:
                    break
                page += 1
        return out

    def _line(self, bill: dict[str, Any], index: int) -> BilledLine:
        where = self.where("GetResourceMonthBill", index)
        return billed(self.name, first(bill, "chargeItem", "serviceType"),
                      _beijing_day(bill.get("startTime"), where),
                      amount(bill.get("financePrice"), where, "financePrice"), self.currency,
                      bill)

    def balances(self) -> list[Balance]:
        answer = self._call("GetCashBalance", "POST", BALANCE, [])
        return [self.balance(answer.get("cashBalance"), self.currency)]


def _beijing_day(value: object, where: str) -> date:
    text = str(value or "").strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: startTime {value!r} is not a date-time",
                           field="startTime") from None
    return when.astimezone(CHINA).date() if when.tzinfo else when.date()
