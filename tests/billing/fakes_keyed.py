"""Fake DeepSeek, OpenAI and Anthropic APIs on loopback: the balance, the organization costs
and the cost report, each checking its key as the provider does (refused in its error shape,
which echoes the key it was sent, as real ones partly do), throttling the first call, and paging
through daily buckets."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.billing.fakes import Account, answer, cap


def deepseek_app(account: Account) -> Starlette:
    async def balance(request: Request) -> Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != account.secret:
            account.seen.append(("balance", "bad-key"))
            return answer(401, {"error": {
                "message": f"Authentication Fails, Your api key: {sent} is invalid",
                "type": "authentication_error", "param": None, "code": "invalid_request_error"}})
        if account.throttle("balance"):
            return answer(429, {"error": {"message": "Rate Limit Reached", "type": "rate_limit"}})
        account.seen.append(("balance", "ok"))
        return answer(200, account.balance)

    return Starlette(routes=[Route("/user/balance", balance)])


def _pages(buckets: list[dict[str, Any]], limit: int, page: str) -> tuple[list[Any], str | None]:
    start = int(page.removeprefix("page_")) if page else 0
    following = start + limit
    return buckets[start:following], f"page_{following}" if following < len(buckets) else None


def openai_app(account: Account) -> Starlette:
    async def costs(request: Request) -> Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != account.secret:
            account.seen.append(("costs", "bad-key"))
            return answer(401, {"error": {"message": f"Incorrect API key provided: {sent}.",
                                           "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
        if account.server_errors:
            account.server_errors -= 1
            account.seen.append(("costs", "failed"))
            return answer(500, {"error": {"message": "The server had an error",
                                          "type": "server_error"}})
        if account.throttle("costs"):
            return answer(429, {"error": {"message": "Rate limit reached",
                                           "type": "requests", "code": "rate_limit_exceeded"}})
        if "costs" in account.denied:
            account.seen.append(("costs", "denied"))
            return answer(403, {"error": {
                "message": "You have insufficient permissions for this operation. Missing "
                           "scopes: api.usage.read.", "type": "invalid_request_error"}})
        account.seen.append(("costs", "ok"))
        query = request.query_params
        start, end = int(query["start_time"]), int(query["end_time"])
        buckets = [b for b in account.rows if start <= b["start_time"] < end]
        data, following = _pages(buckets, cap(account, query["limit"]), query.get("page", ""))
        return answer(200, {"object": "page", "data": data, "has_more": following is not None,
                             "next_page": following})

    return Starlette(routes=[Route("/v1/organization/costs", costs)])


def anthropic_app(account: Account) -> Starlette:
    async def report(request: Request) -> Response:
        sent = request.headers.get("x-api-key", "")
        if sent != account.secret or not request.headers.get("anthropic-version"):
            account.seen.append(("cost_report", "bad-key"))
            return answer(401, {"type": "error", "error": {"type": "authentication_error",
                                                            "message": "invalid x-api-key"}})
        if account.throttle("cost_report"):
            return answer(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                            "message": "Rate limited"}})
        if "cost_report" in account.denied:
            account.seen.append(("cost_report", "denied"))
            return answer(403, {"type": "error", "error": {
                "type": "permission_error",
                "message": "This endpoint requires an Admin API key."}})
        account.seen.append(("cost_report", "ok"))
        query = request.query_params
        buckets = [b for b in account.rows
                   if query["starting_at"] <= b["starting_at"] < query["ending_at"]]
        data, following = _pages(buckets, cap(account, query["limit"]), query.get("page", ""))
        return answer(200, {"data": data, "has_more": following is not None,
                             "next_page": following})

    return Starlette(routes=[Route("/v1/organizations/cost_report", report)])
