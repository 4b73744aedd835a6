"""Stripe webhooks: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`` over ``f"{t}.{raw_body}"``.

The check itself is the official library's (``stripe.WebhookSignature.verify_header``), run once
per configured secret (active and pending credentials), so a delivery signed during a secret
roll verifies against either. The event id (``evt_...``) is the dedupe key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import stripe

from integrations.common.parsing import from_unix_seconds
from integrations.common.signatures import signature_header
from integrations.common.webhooks import VERIFIED, VerifyResult, load_json_object
from integrations.registry import connection_settings
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

SIGNATURE_HEADER = "Stripe-Signature"
DEFAULT_TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE

# The library says what went wrong only in its message; these prefixes are its wording in
# stripe==16.1.0 (pinned), and tests pin each mapping so an upgrade that rewords them fails loudly.
_LIBRARY_REASONS = (
    ("Timestamp outside the tolerance zone", "stale"),
    ("Unable to extract timestamp", "malformed"),
    ("No signatures found with expected scheme", "no_v1"),
    ("No signatures found matching", "mismatch"),
)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header for ``body``, made by the library (tests and tooling)."""
    return stripe.WebhookSignature.generate_signature_header(body.decode("utf-8"), secret, timestamp)


def tolerance_seconds(connection: Any) -> int:
    """The connection's tolerance, clamped to the safe range: 0 (which the library reads as "no
    check") or a word stored before settings were validated cannot switch the check off or fail."""
    return connection_settings(connection)["tolerance_seconds"]


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    """Accept the delivery when any configured secret verifies it within the tolerance."""
    header, refused = signature_header(request.headers, SIGNATURE_HEADER, secrets)
    if refused:
        return refused
    try:
        payload = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return VerifyResult(False, "body is not UTF-8, so it cannot carry a Stripe signature")
    tolerance = tolerance_seconds(connection)
    kinds = set()
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            kinds.add(_kind(exc))
            continue
        return VERIFIED
    if "stale" in kinds:  # the signature matched a secret; only its age is wrong
        return VerifyResult(False, f"timestamp outside the {tolerance} s tolerance")
    if "malformed" in kinds:
        return VerifyResult(False, f"malformed {SIGNATURE_HEADER} header")
    if "no_v1" in kinds:
        return VerifyResult(False, f"no v1 signature in the {SIGNATURE_HEADER} header")
    if "mismatch" in kinds:
        return VerifyResult(False, "signature does not match any configured secret")
    return VerifyResult(False, "signature check failed: " + "; ".join(sorted(kinds)))


def _kind(exc: stripe.SignatureVerificationError) -> str:
    message = str(exc.user_message or exc)
    return next((kind for prefix, kind in _LIBRARY_REASONS if message.startswith(prefix)), message[:200])


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """The event as a dict: ``{"id", "type", "created", "data": {"object": {...}}, ...}``."""
    event = load_json_object(body, expected="Expected a Stripe event object", parse_float=float)
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise MalformedPayload("Stripe event has no id")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise MalformedPayload("Stripe event has no type")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedPayload(f"Stripe event {event['id']} has no data.object")
    return event


def parse(request: WebhookRequest) -> ParsedEvent:
    event = load(request.body)
    return ParsedEvent(event_type=event["type"], dedupe_key=event["id"], occurred_at=event_time(event))


def event_time(event: dict[str, Any]) -> datetime | None:
    # A missing or impossible time leaves the event undated rather than refusing a signed delivery.
    try:
        return from_unix_seconds(event.get("created"))
    except ValueError:
        return None
