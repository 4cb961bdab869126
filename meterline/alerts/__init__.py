"""Alert notifications: rendering budget alerts for webhooks and delivering them."""

from meterline.alerts.payloads import FORMATS, payload
from meterline.alerts.webhooks import DeliveryResult, Notifier, WebhookConfig, redacted_url

__all__ = ["FORMATS", "DeliveryResult", "Notifier", "WebhookConfig", "payload", "redacted_url"]
