"""Fake billing APIs of Alibaba Cloud, Tencent Cloud, Volcano Engine and Baidu AI Cloud, served
on loopback. Each verifies a request's signature the way its provider does (recomputed from the
request as it arrived, with the account's secret) and refuses a bad one in the provider's error
shape; answers its throttling error to the first call of each action; refuses the actions an
account is denied with its permission error; and pages through ``rows``.

Amounts are written as JSON numbers where the provider writes numbers (``Num``), so a client
that read them through a float would lose digits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.billing.signing import aliyun, baidu, tencent, volcano
from meterline.billing.signing.common import same, sha256_hex


def dumps(value: Any) -> bytes:
    """JSON with each Decimal written as a number, digit for digit."""
    text = json.dumps(value, ensure_ascii=False, default=lambda d: f"@@{d}@@")
    return re.sub(r'"@@(-?[0-9.E+-]+)@@"', r"\1", text).encode()


@dataclass
class Account:
    key_id: str
    secret: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    balance: dict[str, Any] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    throttle_first: bool = True
    #: The most rows a page holds, whatever the client asks for (as the providers cap pages).
    page_size: int = 2
    #: Answer this many requests (once signed right) with a 5xx first.
    server_errors: int = 0
    throttled: set[str] = field(default_factory=set)
    #: (action, outcome) of every request: "ok", "throttled", "bad-signature", …
    seen: list[tuple[str, str]] = field(default_factory=list)

    def throttle(self, action: str) -> bool:
        if self.throttle_first and action not in self.throttled:
            self.throttled.add(action)
            self.seen.append((action, "throttled"))
            return True
        return False


def answer(status: int, body: Any) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _pairs(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def _page(rows: list[dict[str, Any]], offset: int, limit: int) -> list[dict[str, Any]]:
    return rows[offset:offset + limit]


def cap(account: Account, limit: object) -> int:
    return min(int(str(limit)), account.page_size)


# -- Alibaba Cloud BSS OpenAPI ----------------------------------------------------------------

def aliyun_app(account: Account) -> Starlette:
    def error(status: int, code: str, message: str) -> Response:
        return answer(status, {"RequestId": "R", "HostId": "business.aliyuncs.com",
                                "Code": code, "Message": message})

    async def handle(request: Request) -> Response:
        body = await request.body()
        action = request.headers.get("x-acs-action", "")
        auth = aliyun.parse_authorization(request.headers.get("authorization", ""))
        if auth is None or auth.key_id != account.key_id:
            account.seen.append((action, "bad-key"))
            return error(404, "InvalidAccessKeyId.NotFound",
                         "Specified access key is not found.")
        payload_hash = request.headers.get("x-acs-content-sha256", "")
        canonical = aliyun.canonical_request(request.method, request.url.path, _pairs(request),
                                             request.headers, auth.names, payload_hash)
        if (payload_hash != sha256_hex(body) or not {"host", "x-acs-action", "x-acs-date",
                                                     "x-acs-signature-nonce"} <= set(auth.names)
                or not same(aliyun.signature(account.secret, canonical), auth.signature)):
            account.seen.append((action, "bad-signature"))
            return error(400, "SignatureDoesNotMatch",
                         "Specified signature is not matched with our calculation.")
        if account.server_errors:
            account.server_errors -= 1
            account.seen.append((action, "failed"))
            return error(503, "ServiceUnavailable", "The request has failed due to a temporary "
                                                    "failure of the server.")
        if account.throttle(action):
            return error(400, "Throttling.User", "Request was denied due to user flow control.")
        if action in account.denied:
            account.seen.append((action, "denied"))
            return error(403, "Forbidden.RAM", "User not authorized to operate on the specified "
                                               "resource, or this API doesn't support RAM.")
        account.seen.append((action, "ok"))
        params = dict(_pairs(request))
        if action == "QueryAccountBalance":
            return answer(200, {"Code": "Success", "Success": True, "Data": account.balance})
        rows = [r for r in account.rows if r["BillingDate"] == params["BillingDate"]]
        offset, limit = int(params.get("NextToken") or 0), cap(account, params["MaxResults"])
        following = offset + limit
        return answer(200, {"Code": "Success", "Message": "Successful!", "Success": True,
                             "Data": {"BillingCycle": params["BillingCycle"],
                                      "Items": _page(rows, offset, limit),
                                      "NextToken": str(following) if following < len(rows)
                                      else "", "TotalCount": len(rows)}})

    return Starlette(routes=[Route("/", handle, methods=["POST", "GET"])])


# -- Tencent Cloud billing --------------------------------------------------------------------

def tencent_app(account: Account) -> Starlette:
    def error(code: str, message: str) -> Response:
        return answer(200, {"Response": {"Error": {"Code": code, "Message": message},
                                          "RequestId": "R"}})

    async def handle(request: Request) -> Response:
        body = await request.body()
        action = request.headers.get("x-tc-action", "")
        auth = tencent.parse_authorization(request.headers.get("authorization", ""))
        if auth is None or auth.secret_id != account.key_id:
            account.seen.append((action, "bad-key"))
            return error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        timestamp = int(request.headers.get("x-tc-timestamp", "0"))
        canonical = tencent.canonical_request(request.method, request.url.query,
                                              request.headers, auth.names, body)
        if (auth.service != "billing" or auth.date != tencent.scope_date(timestamp)
                or not {"content-type", "host"} <= set(auth.names)
                or not same(tencent.signature(account.secret, auth.service, timestamp,
                                              canonical), auth.signature)):
            account.seen.append((action, "bad-signature"))
            return error("AuthFailure.SignatureFailure", "The provided credentials could not be "
                                                         "validated. Please check your signature "
                                                         "is correct.")
        if account.throttle(action):
            return error("RequestLimitExceeded", "Your current request times equals to `5` in "
                                                 "a second, which exceeds the frequency limit.")
        if action in account.denied:
            account.seen.append((action, "denied"))
            return error("AuthFailure.UnauthorizedOperation", "请求未授权。请参考 CAM 文档对鉴权"
                                                              "的说明。")
        account.seen.append((action, "ok"))
        params = json.loads(body or b"{}")
        if action == "DescribeAccountBalance":
            return answer(200, {"Response": {**account.balance, "RequestId": "R"}})
        rows = [r for r in account.rows if r["FeeBeginTime"].startswith(params["Month"])]
        return answer(200, {"Response": {
            "DetailSet": _page(rows, params["Offset"], cap(account, params["Limit"])),
            "Total": len(rows),
            "RequestId": "R"}})

    return Starlette(routes=[Route("/", handle, methods=["POST"])])


# -- Volcano Engine billing -------------------------------------------------------------------

def volcano_app(account: Account) -> Starlette:
    def error(status: int, action: str, code: str, message: str) -> Response:
        return answer(status, {"ResponseMetadata": {
            "RequestId": "R", "Action": action, "Version": "2022-01-01", "Service": "billing",
            "Region": "cn-beijing", "Error": {"Code": code, "Message": message}}})

    async def handle(request: Request) -> Response:
        body = await request.body()
        pairs = _pairs(request)
        action = dict(pairs).get("Action", "")
        auth = volcano.parse_authorization(request.headers.get("authorization", ""))
        if auth is None or auth.key_id != account.key_id:
            account.seen.append((action, "bad-key"))
            return error(401, action, "InvalidAccessKey",
                         "The accesskey included in the request is invalid.")
        sent_hash = request.headers.get("x-content-sha256")
        canonical = volcano.canonical_request(request.method, request.url.path, pairs,
                                              request.headers, auth.names, body)
        if ((sent_hash is not None and sent_hash != sha256_hex(body))
                or auth.service != "billing" or not {"host", "x-date"} <= set(auth.names)
                or not same(volcano.signature(account.secret, request.headers["x-date"],
                                              auth.region, auth.service, canonical),
                            auth.signature)):
            account.seen.append((action, "bad-signature"))
            return error(401, action, "SignatureDoesNotMatch", "The request signature we "
                         "calculated does not match the signature you provided.")
        if account.throttle(action):
            return error(429, action, "FlowLimitExceeded", "Request exceeded the flow limit.")
        if action in account.denied:
            account.seen.append((action, "denied"))
            return error(403, action, "AccessDenied", "User is not authorized to perform: "
                         f"billing:{action}")
        account.seen.append((action, "ok"))
        meta = {"RequestId": "R", "Action": action, "Version": "2022-01-01"}
        if action == "QueryBalanceAcct":
            return answer(200, {"ResponseMetadata": meta, "Result": account.balance})
        params = json.loads(body)
        rows = [r for r in account.rows if r["BillPeriod"] == params["BillPeriod"]]
        return answer(200, {"ResponseMetadata": meta, "Result": {
            "List": _page(rows, params["Offset"], cap(account, params["Limit"])),
            "Total": len(rows),
            "Offset": params["Offset"], "Limit": params["Limit"]}})

    return Starlette(routes=[Route("/", handle, methods=["POST", "GET"])])


# -- Baidu AI Cloud finance -------------------------------------------------------------------

def baidu_app(account: Account) -> Starlette:
    def error(status: int, code: str, message: str) -> Response:
        return answer(status, {"code": code, "message": message, "requestId": "R"})

    async def handle(request: Request) -> Response:
        path = request.url.path
        auth = baidu.parse_authorization(request.headers.get("authorization", ""))
        if auth is None or auth.key_id != account.key_id:
            account.seen.append((path, "bad-key"))
            return error(403, "InvalidAccessKeyId", "The Access Key ID you provided does not "
                                                    "exist in our records.")
        canonical = baidu.canonical_request(request.method, path, _pairs(request),
                                            request.headers, auth.names)
        prefix = f"bce-auth-v1/{auth.key_id}/{auth.when}/{auth.expiration}"
        if (request.headers.get("x-bce-date") != auth.when
                or not same(baidu.signature(account.secret, prefix, canonical),
                            auth.signature)):
            account.seen.append((path, "bad-signature"))
            return error(400, "SignatureDoesNotMatch", "The request signature we calculated "
                         "does not match the signature you provided.")
        if account.throttle(path):
            return error(429, "RequestRateLimitExceeded", "Request rate limit exceeded.")
        if path in account.denied:
            account.seen.append((path, "denied"))
            return error(403, "AccessDenied", "Access denied.")
        account.seen.append((path, "ok"))
        if path == "/v1/finance/cash/balance":
            return answer(200, account.balance)
        params = dict(_pairs(request))
        rows = [r for r in account.rows if r["productType"] == params["productType"]
                and params["beginTime"] <= r["day"] <= params["endTime"]]
        size, page = cap(account, params["pageSize"]), int(params["pageNo"])
        return answer(200, {"billMonth": params["month"], "pageNo": page, "pageSize": size,
                             "totalCount": len(rows),
                             "bills": _page(rows, (page - 1) * size, size)})

    return Starlette(routes=[Route("/v1/bill/resource/month", handle, methods=["GET"]),
                             Route("/v1/finance/cash/balance", handle, methods=["POST"])])


