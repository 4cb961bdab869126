"""Volcano Engine's billing OpenAPI 2022-01-01 (billing.volcengineapi.com, service ``billing``),
signed HMAC-SHA256.

Lines: ``ListBillDetail`` (POST, JSON) for the bill period by billing item (``GroupTerm=0``) and
day (``GroupPeriod=1``), 300 a page by ``Offset``; the amount is ``PayableAmount``, the day
``ExpenseDate``, the model the item's ``ConfigName``, else its ``InstanceName``, else its
``Element``, else the product. Balance: ``QueryBalanceAcct``'s ``AvailableBalance``. IAM actions
to grant: ``billing:ListBillDetail`` and ``billing:QueryBalanceAcct``. The billing API allows an
account 5 requests a second.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from meterline.billing.connectors.base import CHINA, Base, Period, items, mapping, secret
from meterline.billing.http import Problem
from meterline.billing.lines import Balance, BilledLine, amount, billed, currency, day, first
from meterline.billing.signing import volcano
from meterline.billing.signing.common import canonical_query

VERSION = "2022-01-01"
SERVICE = "billing"
PAGE = 300
_AUTH = frozenset({"SignatureDoesNotMatch", "InvalidAccessKey", "InvalidCredential",
                   "InvalidAuthorization", "MissingSignature", "MissingAuthenticationToken",
                   "InvalidTimestamp", "InvalidSecretToken"})


def classify_for(action: str) -> Any:
    def classify(status: int, body: Any) -> Problem | None:
        meta = body.get("ResponseMetadata") if isinstance(body, dict) else None
        error = meta.get("Error") if isinstance(meta, dict) else None
        if status == 200 and isinstance(body, dict) and not error:
            return None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("Code") or status)
        message = str(error.get("Message") or "")
        if status == 429 or "FlowLimitExceeded" in code:
            return Problem("throttled", code, message)
        if code in _AUTH:
            return Problem("auth", code, message)
        if code in ("AccessDenied", "NoPermission") or status == 403:
            return Problem("permission", code, message, f"the IAM action {SERVICE}:{action}")
        if status >= 500 or code in ("InternalError", "InternalServiceError",
                                     "ServiceUnavailable"):
            return Problem("server", code, message)
        return Problem("refused", code, message)
    return classify


class Volcano(Base):
    timezone = CHINA
    default_endpoint = "https://billing.volcengineapi.com"
    default_name = "volcano"

    def _call(self, action: str, method: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        query = [("Action", action), ("Version", VERSION)]
        body = orjson.dumps(payload) if payload is not None else b""

        def build() -> httpx.Request:
            headers = volcano.sign(
                key_id=secret(self.source.access_key_id),
                secret=secret(self.source.access_key_secret), method=method, host=self.host,
                region=self.source.region or "cn-beijing", service=SERVICE,
                when=volcano.x_date(self.now()), query=query, body=body,
                content_type="application/json" if payload is not None else None)
            return httpx.Request(method, f"{self.endpoint}/?{canonical_query(query)}",
                                 headers=headers, content=body)
        answer = self.client.send(action, build, classify_for(action))
        return mapping(mapping(answer, f"volcano {action}").get("Result"), f"volcano {action}")

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        offset = 0
        while True:
            result = self._call("ListBillDetail", "POST", {
                "BillPeriod": str(period.cycle), "Limit": PAGE, "Offset": offset,
                "GroupTerm": 0, "GroupPeriod": 1, "NeedRecordNum": 1})
            page = items(result.get("List"), "volcano ListBillDetail")
            for row in page:
                line = self._line(row, len(out))
                if period.covers(line.period.start):
                    out.append(line)
            offset += len(page)
            total = result.get("Total")
            if not page or (isinstance(total, int) and offset >= total):
                return out

    def _line(self, row: dict[str, Any], index: int) -> BilledLine:
        where = self.where("ListBillDetail", index)
        return billed(self.name, first(row, "ConfigName", "InstanceName", "Element", "Product"),
                      day(row.get("ExpenseDate"), where, "ExpenseDate"),
                      amount(row.get("PayableAmount"), where, "PayableAmount"),
                      currency(row.get("Currency") or self.currency, where, "Currency"), row)

    def balances(self) -> list[Balance]:
        result = self._call("QueryBalanceAcct", "GET", None)
        return [self.balance(result.get("AvailableBalance"), self.currency)]
