"""meterline.domain.alerts: levels, the alert sentence, and what an Alert refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from meterline.domain.alerts import Alert, alert_message, level_for
from meterline.errors import InvalidInput

D = Decimal
AT = datetime(2026, 11, 20, 14, 3, tzinfo=UTC)


def make(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": "al_1", "scope": "tenant acme · month", "budget_id": "bu_1", "level": "warning",
        "kind": "threshold", "percentage": D("80"), "amount": D("8"), "limit": D("10"),
        "currency": "USD", "period": "2026-11", "message": "m", "created_at": AT,
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fraction", "level"), [
    (D("0"), "info"),
    (D("0.5"), "info"),
    (D("0.7999999999"), "info"),
    (D("0.8"), "warning"),
    (D("0.80"), "warning"),
    (D("0.9999999999"), "warning"),
    (D("1"), "critical"),
    (D("1.0000000001"), "critical"),
    (D("3"), "critical"),
    (D("-1"), "info"),
])
def test_level_for_boundaries(fraction: Decimal, level: str) -> None:
    assert level_for(fraction) == level


def test_level_for_refuses_floats() -> None:
    with pytest.raises(TypeError):
        level_for(0.8)  # type: ignore[arg-type]


def test_threshold_message() -> None:
    text = alert_message("tenant acme · month", kind="threshold", percentage=D("80"),
                         amount=D("8"), limit=D("10"), currency="USD", period="2026-11")
    assert text == "Budget 'tenant acme · month' reached 80% (8.00 of 10.00 USD) for 2026-11"


def test_message_rounds_money_to_minor_unit_and_never_overstates_percentage() -> None:
    text = alert_message("tenant acme", kind="threshold", percentage=D("99.96"),
                         amount=D("9.996"), limit=D("10"), currency="USD", period="2026-11-30")
    assert text == "Budget 'tenant acme' reached 99.9% (10.00 of 10.00 USD) for 2026-11-30"
    yen = alert_message("tenant jp", kind="threshold", percentage=D("100"), amount=D("1500"),
                        limit=D("1500"), currency="JPY", period="total")
    assert yen == "Budget 'tenant jp' reached 100% (1500 of 1500 JPY) in total"


def test_projected_message() -> None:
    text = alert_message("tenant acme · model openai/gpt-4o", kind="projected_overrun",
                         percentage=D("130.25"), amount=D("6.5"), limit=D("10"),
                         currency="EUR", period="2026-11")
    assert text == ("Budget 'tenant acme · model openai/gpt-4o' is projected to reach 130.2% of "
                    "its limit (6.50 of 10.00 EUR spent so far) for 2026-11")


def test_message_unknown_kind() -> None:
    with pytest.raises(InvalidInput) as info:
        alert_message("x", kind="other", percentage=D(1), amount=D(1), limit=D(1),
                      currency="USD", period="total")
    assert info.value.field == "kind"


def test_alert_is_frozen_and_defaults_unresolved() -> None:
    alert = make()
    assert alert.resolved is False
    with pytest.raises(AttributeError):
        alert.level = "critical"  # type: ignore[misc]


def test_created_at_is_normalised_to_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    alert = make(created_at=datetime(2026, 11, 20, 22, 3, tzinfo=shanghai))
    assert alert.created_at == AT
    assert alert.created_at.tzinfo is UTC


@pytest.mark.parametrize(("changes", "field"), [
    ({"created_at": datetime(2026, 11, 20, 14, 3)}, "created_at"),
    ({"amount": 8.0}, "amount"),
    ({"limit": D("NaN")}, "limit"),
    ({"percentage": 80}, "percentage"),
    ({"level": "severe"}, "level"),
    ({"kind": "overrun"}, "kind"),
    ({"currency": "XXX"}, "currency"),
])
def test_alert_refuses(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make(**changes)
    assert info.value.field == field
