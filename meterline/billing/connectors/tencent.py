"""Tencent Cloud's billing API 2018-07-09 (billing.tencentcloudapi.com), signed TC3-HMAC-SHA256.

Lines: ``DescribeBillDetail`` for the month by usage time (``PeriodType=byUsedTime``), 100 a
page by ``Offset``; a line per component of each detail, its amount ``RealCost`` (after
discounts, before vouchers), its days ``FeeBeginTime`` to ``FeeEndTime``, its model the
component's ``ItemCodeName``, else its ``ComponentCodeName``, else the product. Balance:
``DescribeAccountBalance``'s ``RealBalance`` (in fen, cents of a yuan). CAM actions to grant:
``finance:DescribeBillDetail`` and ``finance:DescribeAccountBalance``. ``DescribeBillDetail``
allows 5 requests a second.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import orjson

from meterline.billing.connectors.base import CHINA, Base, Period, items, mapping, secret
from meterline.billing.http import Problem
from meterline.billing.lines import Balance, BilledLine, amount, billed, day, first
from meterline.billing.signing import tencent

VERSION = "2018-07-09"
PAGE = 100


def classify_for(action: str) -> Any:
    def classify(status: int, body: Any) -> Problem | None:
        answer = body.get("Response") if isinstance(body, dict) else None
        error = answer.get("Error") if isinstance(answer, dict) else None
        if status == 200 and isinstance(answer, dict) and not error:
            return None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("Code") or status)
        message = str(error.get("Message") or "")
        if code.startswith("RequestLimitExceeded") or status == 429:
            return Problem("throttled", code, message)
        if code in ("AuthFailure.UnauthorizedOperation", "AuthFailure.MFAFailure") or (
                code.startswith("UnauthorizedOperation")):
            return Problem("permission", code, message, f"the CAM action finance:{action}")
        if code.startswith("AuthFailure"):
            return Problem("auth", code, message)
        if status >= 500 or code.startswith(("InternalError", "ServiceUnavailable")):
            return Problem("server", code, message)
        return Problem("refused", code, message)
    return classify


class Tencent(Base):
    timezone = CHINA
    default_endpoint = "https://billing.tencentcloudapi.com"
    default_name = "tencent"

    def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(payload)

        def build() -> httpx.Request:
            headers = tencent.sign(
                secret_id=secret(self.source.access_key_id),
                secret=secret(self.source.access_key_secret), host=self.host, action=action,
                version=VERSION, timestamp=int(self.now().timestamp()), payload=body,
                region=self.source.region, service="billing")
            return httpx.Request("POST", f"{self.endpoint}/", headers=headers, content=body)
        answer = self.client.send(action, build, classify_for(action))
        return mapping(mapping(answer, f"tencent {action}").get("Response"),
                       f"tencent {action}")

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        offset = 0
        while True:
            answer = self._call("DescribeBillDetail", {
                "Offset": offset, "Limit": PAGE, "Month": str(period.cycle),
                "PeriodType": "byUsedTime", "NeedRecordNum": 1})
            details = items(answer.get("DetailSet"), "tencent DescribeBillDetail")
            for detail in details:
                out.extend(line for line in self._lines(detail, len(out))
                           if period.covers(line.period.start))
            offset += len(details)
            total = answer.get("Total")
            if not details or (isinstance(total, int) and offset >= total):
                return out

    def _lines(self, detail: dict[str, Any], index: int) -> list[BilledLine]:
        where = self.where("DescribeBillDetail", index)
        start = day(detail.get("FeeBeginTime"), where, "FeeBeginTime")
        end_text = detail.get("FeeEndTime")
        until = day(end_text, where, "FeeEndTime") + timedelta(days=1) if end_text else None
        out = []
        for component in items(detail.get("ComponentSet"), "tencent DescribeBillDetail"):
            model = first(component, "ItemCodeName", "ComponentCodeName") or first(
                detail, "ProductCodeName", "BusinessCodeName")
            out.append(billed(self.name, model, start,
                              amount(component.get("RealCost"), where, "RealCost"),
                              self.currency, {**detail, "ComponentSet": [component]}, until))
        return out

    def balances(self) -> list[Balance]:
        answer = self._call("DescribeAccountBalance", {})
        fen = answer.get("RealBalance", answer.get("Balance"))
        value = amount(fen, "tencent balance", "RealBalance").scaleb(-2)
        return [self.balance(value, self.currency)]

