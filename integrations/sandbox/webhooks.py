"""Outbound webhooks of the sandbox: build the body, sign the raw bytes, POST, count.

The signing is written here on purpose (not shared with our Virtuous client code), so the
sandbox checks our verifier independently: HMAC-SHA256 over the exact body bytes with the
subscription's secret, as a hex or Base64 digest in a configurable header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from typing import Any

import requests
from django.utils import timezone

from integrations.common.http import UnsafeURLError, http_session
from integrations.sandbox.limits import counters_add
from integrations.sandbox.models import SandboxOrganization, SandboxWebhook
from integrations.sandbox.payloads import iso_utc

logger = logging.getLogger("giftline.sandbox")

DELIVERY_TIMEOUT = (5.0, 10.0)

# toggle → (observed event name, envelope event type, resource key)
EVENTS = {
    "contactCreate": ("ContactCreate", "contact.created", "contact"),
    "contactUpdate": ("ContactUpdate", "contact.updated", "contact"),
    "giftCreate": ("GiftCreate", "gift.created", "gift"),
    "giftUpdate": ("GiftUpdate", "gift.updated", "gift"),
    "giftDelete": ("GiftDelete", "gift.deleted", "gift"),
}

Event = tuple[str, dict[str, Any]]  # (toggle name, resource as the API shows it)


def webhook_sign(*, secret: str, body: bytes, encoding: str) -> str:
    """HMAC-SHA256 of the raw body, hex (default) or Base64."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256)
    if encoding == SandboxOrganization.SignatureEncoding.BASE64:
        return base64.b64encode(digest.digest()).decode()
    return digest.hexdigest()


def webhook_body(*, organization: SandboxOrganization, event: str, resource: dict[str, Any]) -> bytes:
    """The delivery body in the organisation's payload style."""
    observed_name, envelope_type, key = EVENTS[event]
    if organization.webhook_payload_style == SandboxOrganization.PayloadStyle.ENVELOPE:
        payload: dict[str, Any] = {
            "eventType": envelope_type,
            "eventId": str(uuid.uuid4()),
            "timestamp": iso_utc(timezone.now()),
            "organizationId": organization.pk,
            "data": resource,
        }
    else:
        payload = {"event": observed_name, key: resource}
    return json.dumps(payload, separators=(",", ":")).encode()


def webhooks_deliver(*, organization: SandboxOrganization, events: list[Event]) -> dict[str, int]:
    """POST each event to every active subscription that wants it; failures are counted only."""
    if not events:
        return {"sent": 0, "failed": 0}
    hooks = list(SandboxWebhook.objects.filter(organization=organization, active=True))
    session = http_session(log_context={"sandbox_org": organization.pk}, guard_urls=True)
    sent = failed = 0
    for event, resource in events:
        for hook in hooks:
            if not hook.toggles.get(event):
                continue
            body = webhook_body(organization=organization, event=event, resource=resource)
            signature = webhook_sign(
                secret=hook.secret, body=body, encoding=organization.webhook_signature_encoding
            )
            headers = {"Content-Type": "application/json", organization.webhook_signature_header: signature}
            try:
                response = session.post(
                    hook.payload_url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT
                )
                ok = 200 <= response.status_code < 300
            except (requests.RequestException, UnsafeURLError) as exc:
                logger.warning("sandbox.webhook_failed hook=%s error=%s", hook.pk, type(exc).__name__)
                ok = False
            if ok:
                sent += 1
            else:
                failed += 1
    counters_add(organization_id=organization.pk, webhooks_sent=sent, webhooks_failed=failed)
    return {"sent": sent, "failed": failed}
