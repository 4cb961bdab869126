"""Alert notifications: rendering budget alerts for webhooks and delivering them."""

from meterline.alerts.webhooks import (
    FORMATS,
    DeliveryResult,
    Notifier,
    WebhookConfig,
    payload,
    redacted_url,
)

__all__ = ["FORMATS", "DeliveryResult", "Notifier", "WebhookConfig", "payload", "redacted_url"]
