"""What every connector shares: the days a sync asks for, and the interface."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from meterline.billing.errors import ProviderUnavailable
from meterline.billing.http import BillingClient
from meterline.billing.lines import Balance, BilledLine, amount
from meterline.config import BillSourceConfig
from meterline.domain.bills import Cycle
from meterline.errors import InvalidInput

#: The Chinese clouds' bills are in Beijing days.
CHINA = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Period:
    """The days of a cycle a provider has billed: from its first day until ``until``
    (exclusive): the cycle's end, or the provider's today for the current month (a day is
    billed once it is over)."""

    cycle: Cycle
    first: date
    until: date

    def days(self) -> Iterator[date]:
        day = self.first
        while day < self.until:
            yield day
            day += timedelta(days=1)

    def covers(self, day: date) -> bool:
        return self.first <= day < self.until


def period_of(cycle: Cycle, today: date) -> Period:
    first = date(cycle.year, cycle.month, 1)
    following = cycle.next()
    until = min(date(following.year, following.month, 1), today)
    if until <= first:
        raise InvalidInput(f"cycle: {cycle} has no finished day yet (the provider's today is "
                           f"{today.isoformat()})", field="cycle")
    return Period(cycle, first, until)


class Connector(Protocol):
    #: The timezone of the provider's bill days.
    timezone: ZoneInfo

    def lines(self, period: Period) -> list[BilledLine]: ...

    def balances(self) -> list[Balance]: ...


#: ``(source, client, now) -> Connector``
Factory = Callable[[BillSourceConfig, BillingClient, Callable[[], datetime]], Connector]


class Base:
    """Fields every connector keeps: its account, client, clock, endpoint and the name its
    lines are filed under."""

    timezone: ZoneInfo = ZoneInfo("UTC")
    default_endpoint = ""
    default_name = ""
    default_currency = "CNY"
    #: Whether the provider has a bill API (DeepSeek has a balance only).
    has_bills = True

    def __init__(self, source: BillSourceConfig, client: BillingClient,
                 now: Callable[[], datetime]) -> None:
        self.source = source
        self.client = client
        self.now = now
        self.endpoint = source.endpoint or self.default_endpoint
        self.host = urlsplit(self.endpoint).netloc
        self.name = source.name or self.default_name
        self.currency = source.currency or self.default_currency

    def lines(self, period: Period) -> list[BilledLine]:
        raise NotImplementedError

    def balances(self) -> list[Balance]:
        raise NotImplementedError

    def where(self, action: str, index: int) -> str:
        return f"{self.source.provider} {action} line {index + 1}"

    def balance(self, value: Any, code: str) -> Balance:
        return Balance(self.source.provider, self.source.account,
                       amount(value, f"{self.source.provider} balance", "balance"), code,
                       self.now())


def secret(value: object) -> str:
    """A credential's text (checked present before any connector is built)."""
    reveal = getattr(value, "reveal", None)
    if reveal is None:
        raise InvalidInput("a credential is missing", field="credentials")
    text: str = reveal()
    return text


def mapping(value: object, what: str) -> dict[str, Any]:
    """``value`` as the JSON object the provider documents, or ProviderUnavailable."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProviderUnavailable(f"{what}: the answer is not the documented shape (an object "
                                  f"was expected, got {type(value).__name__})")
    return value


def items(value: object, what: str) -> list[dict[str, Any]]:
    """A JSON array of objects, or ProviderUnavailable."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProviderUnavailable(f"{what}: the answer is not the documented shape (a list "
                                  f"was expected, got {type(value).__name__})")
    return [mapping(item, what) for item in value]
