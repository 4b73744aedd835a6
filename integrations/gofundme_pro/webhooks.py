"""GoFundMe Pro (formerly Classy) webhooks, delivered by Svix.

Headers ``svix-id`` (the same across retries of one message: our dedupe key), ``svix-timestamp``
(unix seconds) and ``svix-signature`` (space-separated ``v1,<base64>`` entries, several during a
secret rotation); Svix may white-label them as ``webhook-*``, and both are accepted. The official
``svix`` library checks the signature and its 5-minute tolerance; we try every configured secret
(active and pending) and turn its errors into reasons a person can act on.

The payload schemas are only shown inside the authenticated GoFundMe Pro admin (Event Catalog),
so the envelope read here is the Svix convention, ``{"type": ..., "timestamp": ..., "data": {...}}``
with ``data`` the REST resource (Transaction, Supporter, Recurring Donation Plan). The event name
is also accepted under ``event_type``/``event`` and the object under ``payload``; confirm with the
endpoint's Testing tab before launch (spec 4.2, 6).
"""

from __future__ import annotations

import binascii
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError  # svix's own dependency, raised by Webhook()
from svix.webhooks import Webhook, WebhookVerificationError

from integrations.common.parsing import to_datetime
from integrations.common.webhooks import NO_SECRET, VERIFIED, VerifyResult, load_json_object
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

HEADER_PREFIXES = ("svix-", "webhook-")
NAME_KEYS = ("type", "event_type", "event")
OBJECT_KEYS = ("data", "payload")
TOLERANCE_SECONDS = 300  # enforced by the svix library; stated here for the docs and messages

_LIBRARY_REASONS = {
    "Message timestamp too old": "timestamp older than the 5-minute tolerance",
    "Message timestamp too new": "timestamp more than 5 minutes in the future",
    "Invalid Signature Headers": "malformed svix-timestamp header",
}


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    """Check the Svix signature of the raw body against each configured secret."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name in ("id", "timestamp", "signature"):
        if not any(headers.get(prefix + name) for prefix in HEADER_PREFIXES):
            return VerifyResult(False, f"missing svix-{name} header")
    if not secrets:
        return NO_SECRET
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        return VerifyResult(False, "body is not UTF-8 text, so it cannot carry a Svix signature")
    unusable = 0
    for secret in secrets:
        try:
            hook = Webhook(secret)
        except (binascii.Error, ValueError, RuntimeError, EmptyWebhookSecretError):
            unusable += 1
            continue
        try:
            hook.verify(request.body, headers)
        except WebhookVerificationError as exc:
            reason = _LIBRARY_REASONS.get(str(exc))
            if reason:  # about the timestamp, so the same for every secret
                return VerifyResult(False, reason)
            continue
        except ValueError:  # an entry without "," or with bad base64 (binascii.Error is a ValueError)
            return VerifyResult(False, "malformed svix-signature header")
        return VERIFIED
    if unusable == len(secrets):
        return VerifyResult(False, "no configured secret is a valid whsec_ secret")
    return VerifyResult(False, "signature does not match any configured secret")


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """Normalise a delivery (or a polled record) to ``{"type", "data", "timestamp"}``."""
    envelope = load_json_object(body)
    name = next((envelope[k] for k in NAME_KEYS if isinstance(envelope.get(k), str) and envelope[k]), None)
    if name is None:
        raise MalformedPayload("No event type (type/event_type/event) in the payload")
    data = next((envelope[k] for k in OBJECT_KEYS if k in envelope), None)
    if not isinstance(data, dict):
        raise MalformedPayload(f"{name} without a data object")
    return {"type": name, "data": data, "timestamp": envelope.get("timestamp")}


def parse(request: WebhookRequest) -> ParsedEvent:
    """Event type from the body, dedupe key from ``svix-id`` (stable across Svix retries)."""
    payload = load(request.body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    message_id = next((headers[p + "id"] for p in HEADER_PREFIXES if headers.get(p + "id")), "")
    if not message_id:
        raise MalformedPayload("No svix-id header")
    data = payload["data"]
    try:
        occurred = to_datetime(payload["timestamp"]) or to_datetime(data.get("updated_at"))
    except ValueError:
        occurred = None
    return ParsedEvent(event_type=payload["type"], dedupe_key=f"svix:{message_id}", occurred_at=occurred)
