"""Notifications: signed webhooks (Standard Webhooks) for the run events people act on."""

from sisu_kodo.notify.dispatch import WebhookDispatcher, webhook_id
from sisu_kodo.notify.signing import new_secret
from sisu_kodo.notify.ssrf import check_url

__all__ = ["WebhookDispatcher", "check_url", "new_secret", "webhook_id"]
