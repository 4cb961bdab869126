"""The providers called with an API key: DeepSeek (balance only), OpenAI and Anthropic (the
organizations' cost reports, with an admin key).

- DeepSeek: ``GET /user/balance`` → ``balance_infos[{currency, total_balance}]``; it has no bill
  API (its usage comes from the console's export, ``--format deepseek``).
- OpenAI: ``GET /v1/organization/costs`` by day (``bucket_width=1d``) and ``line_item``, 31 days
  a page through ``next_page``; ``amount.value`` in ``amount.currency``; the model is the line
  item's name up to its comma (``gpt-4o-2024-08-06, input``). Needs an admin key (sk-admin-…)
  with the ``api.usage.read`` scope.
- Anthropic: ``GET /v1/organizations/cost_report`` by day and ``description``, 31 days a page;
  ``amount`` is in cents (a decimal string) of ``currency``; the model is the result's ``model``,
  else its ``cost_type``. Needs an Admin API key (sk-ant-admin…).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx

from meterline.billing.connectors.base import Base, Period, items, mapping, secret
from meterline.billing.http import Problem
from meterline.billing.lines import Balance, BilledLine, amount, billed, currency, first
from meterline.billing.signing.common import canonical_query
from meterline.errors import InvalidInput

OPENAI_SCOPE = "an admin key (sk-admin-…) with the api.usage.read scope"
ANTHROPIC_KEY = "an Admin API key (sk-ant-admin…)"
PAGE_DAYS = 31


def _classify(permission: str) -> Callable[[int, Any], Problem | None]:
    """The OpenAI-style error shape the three share: ``{"error": {"message", "type", "code"}}``
    (Anthropic: ``{"type": "error", "error": {"type", "message"}}``)."""
    def classify(status: int, body: Any) -> Problem | None:
        if status == 200:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or error.get("type") or status)
        message = str(error.get("message") or "")
        if status == 429:
            return Problem("throttled", code, message)
        if status == 401:
            return Problem("auth", code, message)
        if status == 403:
            return Problem("permission", code, message, permission)
        if status >= 500:
            return Problem("server", code, message)
        return Problem("refused", code, message)
    return classify


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _utc_day(value: object, where: str, column: str) -> date:
    try:
        if isinstance(value, int):
            return datetime.fromtimestamp(value, UTC).date()
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).date()
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(f"{where}: {column} {value!r} is not a time", field=column) from None


class KeyedBase(Base):
    default_currency = "USD"

    def _get(self, action: str, path: str, query: list[tuple[str, str]],
             headers: Callable[[], dict[str, str]], permission: str) -> dict[str, Any]:
        url = f"{self.endpoint}{path}" + (f"?{canonical_query(query)}" if query else "")
        answer = self.client.send(action, lambda: httpx.Request("GET", url, headers=headers()),
                                  _classify(permission))
        return mapping(answer, f"{self.source.provider} {action}")


class DeepSeek(KeyedBase):
    default_endpoint = "https://api.deepseek.com"
    default_name = "deepseek"
    default_currency = "CNY"
    has_bills = False

    def lines(self, period: Period) -> list[BilledLine]:
        return []

    def balances(self) -> list[Balance]:
        answer = self._get("GET /user/balance", "/user/balance", [], lambda: {
            "Authorization": f"Bearer {secret(self.source.api_key)}"}, "a valid API key")
        out = []
        for info in items(answer.get("balance_infos"), "deepseek balance"):
            code = currency(info.get("currency"), "deepseek balance", "currency")
            out.append(self.balance(info.get("total_balance"), code))
        return out


class OpenAI(KeyedBase):
    default_endpoint = "https://api.openai.com"
    default_name = "openai"

    def balances(self) -> list[Balance]:
        return []  # OpenAI publishes no balance API

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        page = ""
        while True:
            query = [("start_time", str(_unix(period.first))),
                     ("end_time", str(_unix(period.until))), ("bucket_width", "1d"),
                     ("group_by", "line_item"), ("limit", str(PAGE_DAYS))]
            if page:
                query.append(("page", page))
            answer = self._get("GET /v1/organization/costs", "/v1/organization/costs", query,
                               lambda: {"Authorization": f"Bearer {secret(self.source.api_key)}"},
                               OPENAI_SCOPE)
            for bucket in items(answer.get("data"), "openai costs"):
                where = self.where("costs", len(out))
                start = _utc_day(bucket.get("start_time"), where, "start_time")
                for result in items(bucket.get("results"), "openai costs"):
                    money = mapping(result.get("amount"), "openai costs")
                    model = str(result.get("line_item") or "unattributed").split(",")[0]
                    out.append(billed(self.name, model, start,
                                      amount(money.get("value"), where, "amount.value"),
                                      currency(money.get("currency"), where, "amount.currency"),
                                      {**result, "start_time": bucket.get("start_time"),
                                       "end_time": bucket.get("end_time")}))
            page = str(answer.get("next_page") or "")
            if not answer.get("has_more") or not page:
                return [line for line in out if period.covers(line.period.start)]


class Anthropic(KeyedBase):
    default_endpoint = "https://api.anthropic.com"
    default_name = "anthropic"

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": secret(self.source.api_key), "anthropic-version": "2023-06-01"}

    def lines(self, period: Period) -> list[BilledLine]:
        out: list[BilledLine] = []
        page = ""
        while True:
            query = [("starting_at", f"{period.first.isoformat()}T00:00:00Z"),
                     ("ending_at", f"{period.until.isoformat()}T00:00:00Z"),
                     ("bucket_width", "1d"), ("group_by[]", "description"),
                     ("limit", str(PAGE_DAYS))]
            if page:
                query.append(("page", page))
            answer = self._get("GET /v1/organizations/cost_report",
                               "/v1/organizations/cost_report", query, self._headers,
                               ANTHROPIC_KEY)
            for bucket in items(answer.get("data"), "anthropic cost report"):
                where = self.where("cost_report", len(out))
                start = _utc_day(bucket.get("starting_at"), where, "starting_at")
                for result in items(bucket.get("results"), "anthropic cost report"):
                    cents = amount(result.get("amount"), where, "amount")
                    out.append(billed(
                        self.name, first(result, "model", "cost_type") or "unattributed",
                        start, cents.scaleb(-2),
                        currency(result.get("currency") or "USD", where, "currency"),
                        {**result, "starting_at": bucket.get("starting_at"),
                         "ending_at": bucket.get("ending_at")}))
            page = str(answer.get("next_page") or "")
            if not answer.get("has_more") or not page:
                return [line for line in out if period.covers(line.period.start)]

    def balances(self) -> list[Balance]:
        return []  # Anthropic publishes no balance API

