"""A provider account's alerts (low balance, bill difference) as each webhook format renders
them: named as the account's, with its amounts, and a budget alert's payload unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.alerts import FORMATS, payload
from meterline.alerts.payloads import facts, headline
from meterline.domain.alerts import Alert
from meterline.errors import InvalidInput

D = Decimal
AT = datetime(2026, 11, 3, 6, 0, 1, tzinfo=UTC)


def account_alert(kind: str) -> Alert:
    low = kind == "low_balance"
    return Alert(id="alr_1", scope="aliyun account 'main' (qwen)", budget_id=None,
                 level="warning", kind=kind, percentage=D("50"),
                 amount=D("10000.25") if low else D("12.5"),
                 limit=D("20000") if low else D("10"), currency="CNY",
                 period="2026-11-03" if low else "2026-10", message="the message",
                 created_at=AT, source="aliyun:main")


@pytest.mark.parametrize("format", FORMATS)
def test_every_format_names_the_account_and_its_amounts(format: str) -> None:
    for kind, title, amounts in (
            ("low_balance", "meterline low balance", ("10,000.25 CNY", "20,000.00 CNY")),
            ("bill_difference", "meterline bill differs from metered", ("12.50 CNY",
                                                                        "10.00 CNY"))):
        alert = account_alert(kind)
        text = str(payload(alert, format))
        assert headline(alert) == f"[WARNING] {title}: aliyun account 'main' (qwen)"
        assert "the message" in text and "meterline budget" not in text
        shown = dict(facts(alert))
        assert shown["Source"] == "aliyun:main" and shown["Period"] == alert.period
        if format == "json":  # exact amounts, below
            continue
        for amount in amounts:
            assert amount.replace(",", "") in text.replace(",", ""), (format, amount)


def test_the_json_payload_is_an_account_event_and_a_budgets_is_unchanged() -> None:
    body = payload(account_alert("low_balance"), "json")
    assert (body["event"], body["kind"], body["source"], body["amount"], body["limit"]) == (
        "account.alert", "low_balance", "aliyun:main", "10000.25", "20000")
    budget = Alert(id="a", scope="tenant acme", budget_id="bu_1", level="warning",
                   kind="threshold", percentage=D(80), amount=D(8), limit=D(10),
                   currency="USD", period="2026-11", message="m", created_at=AT)
    assert payload(budget, "json")["event"] == "budget.alert"
    assert "source" not in payload(budget, "json")


def test_an_unknown_kind_is_still_refused() -> None:
    with pytest.raises(InvalidInput, match="kind"):
        Alert(id="a", scope="s", budget_id=None, level="warning", kind="balance",
              percentage=D(1), amount=D(1), limit=D(1), currency="USD", period="p",
              message="m", created_at=AT)
