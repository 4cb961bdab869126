"""Alert payloads: the JSON body of each webhook format (generic JSON, Slack, DingTalk,
Feishu/Lark, WeCom), rendered from an :class:`~meterline.domain.alerts.Alert`, unsigned.

Signing and delivery are in :mod:`meterline.alerts.webhooks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from meterline.domain.alerts import ACCOUNT_KINDS, Alert, display_money, display_percentage
from meterline.domain.money import format_decimal
from meterline.errors import InvalidInput

FORMATS: Final = ("json", "slack", "dingtalk", "feishu", "wecom")

#: WeCom refuses markdown content over 4096 bytes; Slack header text over 150 characters.
WECOM_CONTENT_BYTES: Final = 4096
SLACK_HEADER_CHARS: Final = 150
SLACK_TEXT_CHARS: Final = 3000
FEISHU_TEMPLATES: Final = {"info": "blue", "warning": "orange", "critical": "red"}
WECOM_COLOURS: Final = {"info": "info", "warning": "warning", "critical": "warning"}


def check_format(format: str) -> str:
    if format not in FORMATS:
        raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}; got {format!r}",
                           field="format", allowed=FORMATS)
    return format


# --- URLs ---------------------------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_bytes(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - len("…".encode())].decode(errors="ignore") + "…"


def headline(alert: Alert) -> str:
    """One line naming the state, the level and the budget (or provider account)."""
    state = "RESOLVED" if alert.resolved else alert.level.upper()
    if alert.kind == "low_balance":
        return f"[{state}] meterline low balance: {alert.scope}"
    if alert.kind == "bill_difference":
        return f"[{state}] meterline bill differs from metered: {alert.scope}"
    if alert.kind == "sync_failed":
        return f"[{state}] meterline bill sync failed: {alert.scope}"
    percent = display_percentage(alert.percentage)
    what = f"at {percent}%" if alert.kind == "threshold" else f"projected to reach {percent}%"
    return f"[{state}] meterline budget {what}: {alert.scope}"


def _account_facts(alert: Alert) -> list[tuple[str, str]]:
    def money(value: Decimal) -> str:
        return f"{display_money(value, alert.currency)} {alert.currency}"

    if alert.kind == "low_balance":
        amounts = [("Balance", money(alert.amount)), ("Low balance", money(alert.limit))]
    elif alert.kind == "sync_failed":
        amounts = [("Attempts", format_decimal(alert.amount))]
    else:
        amounts = [("Billed", money(alert.amount)), ("Metered", money(alert.limit))]
    return [("Account", alert.scope), *amounts, ("Period", alert.period),
            ("Level", alert.level), ("Kind", alert.kind.replace("_", " ")),
            ("Source", alert.source or "—"), ("Alert", alert.id),
            ("Created", alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))]


def facts(alert: Alert) -> list[tuple[str, str]]:
    """Label and value pairs for formats that lay them out."""
    if alert.kind in ACCOUNT_KINDS:
        return _account_facts(alert)
    spent = (f"{display_money(alert.amount, alert.currency)} of "
             f"{display_money(alert.limit, alert.currency)} {alert.currency}")
    return [
        ("Scope", alert.scope),
        ("Spent", spent),
        ("Period", alert.period),
        ("Level", alert.level),
        ("Kind", "projected overrun" if alert.kind == "projected_overrun" else "threshold"),
        ("Budget", alert.budget_id or "—"),
        ("Alert", alert.id),
        ("Created", alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]


def _json(alert: Alert) -> dict[str, Any]:
    return {
        "event": "account.alert" if alert.kind in ACCOUNT_KINDS else "budget.alert",
        "id": alert.id,
        "scope": alert.scope,
        "budget_id": alert.budget_id,
        "level": alert.level,
        "kind": alert.kind,
        "percentage": format_decimal(alert.percentage),
        "amount": format_decimal(alert.amount),
        "limit": format_decimal(alert.limit),
        "currency": alert.currency,
        "period": alert.period,
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
        "resolved": alert.resolved,
        # A budget's payload is as it always was; an account's names the account.
        **({"source": alert.source} if alert.kind in ACCOUNT_KINDS else {}),
    }


def _slack_escape(text: str) -> str:
    # Slack reads <…> as links and mentions; a tenant name must not ping a channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(alert: Alert) -> dict[str, Any]:
    title = headline(alert)
    return {
        "text": clip(_slack_escape(f"{title}\n{alert.message}"), SLACK_TEXT_CHARS),
        "blocks": [
            {"type": "header",
             "text": {"type": "plain_text", "text": clip(title, SLACK_HEADER_CHARS)}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": clip(_slack_escape(alert.message),
                                                      SLACK_TEXT_CHARS)}},
            {"type": "section",
             "fields": [{"type": "mrkdwn",
                         "text": clip(f"*{label}*\n{_slack_escape(value)}", 2000)}
                        for label, value in facts(alert)]},
        ],
    }


def _markdown_lines(alert: Alert) -> str:
    return "\n\n".join(f"**{label}:** {value}" for label, value in facts(alert))


def _dingtalk(alert: Alert) -> dict[str, Any]:
    title = headline(alert)
    return {"msgtype": "markdown",
            "markdown": {"title": title,
                         "text": f"### {title}\n\n{alert.message}\n\n{_markdown_lines(alert)}"}}


def _feishu(alert: Alert) -> dict[str, Any]:
    template = "green" if alert.resolved else FEISHU_TEMPLATES[alert.level]
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": headline(alert)},
                       "template": template},
            "elements": [
                {"tag": "div", "text": {"tag": "plain_text", "content": alert.message}},
                {"tag": "div",
                 "fields": [{"is_short": True,
                             "text": {"tag": "lark_md", "content": f"**{label}**\n{value}"}}
                            for label, value in facts(alert)]},
            ],
        },
    }


def _wecom(alert: Alert) -> dict[str, Any]:
    colour = "info" if alert.resolved else WECOM_COLOURS[alert.level]
    lines = [f'**<font color="{colour}">{headline(alert)}</font>**', alert.message]
    lines += [f'> {label}: <font color="comment">{value}</font>' for label, value in facts(alert)]
    return {"msgtype": "markdown",
            "markdown": {"content": _clip_bytes("\n".join(lines), WECOM_CONTENT_BYTES)}}


_RENDERERS: Final[Mapping[str, Callable[[Alert], dict[str, Any]]]] = {
    "json": _json, "slack": _slack, "dingtalk": _dingtalk, "feishu": _feishu, "wecom": _wecom,
}


def payload(alert: Alert, format: str) -> dict[str, Any]:
    """The JSON body announcing ``alert`` to a ``format`` webhook (unsigned)."""
    return _RENDERERS[check_format(format)](alert)
