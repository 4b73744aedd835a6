"""Generic auction/event platform webhooks: an HMAC-signed JSON order.

Auction and gala platforms (OneCause, Greater Giving, Givergy…) publish no common webhook, so
this provider accepts one documented shape (README "Auction/event platforms") sent by the
platform or a small relay. The signature scheme is per connection (``Connection.settings``):

``signature_header``      header carrying the signature (default ``X-Signature``)
``signature_algorithm``   ``sha256`` (default), ``sha512`` or ``sha1``
``signature_encoding``    ``hex`` (default) or ``base64``
``signature_prefix``      text before the digest, e.g. ``sha256=`` (default none)
``timestamp_header``      if set, the signed text is ``f"{timestamp}.{raw_body}"`` and the
                          timestamp (unix seconds) must be within ``tolerance_seconds`` (300)

There is no delivery id to dedupe on, so the key is derived: ``event_type:event_id`` when the
payload has an ``event_id``, else ``event_type:order_id`` plus the line numbers for refunds and
voids (two partial refunds of one order are two events).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from integrations.common.parsing import to_datetime
from integrations.common.signatures import (
    ALGORITHMS,
    header_value,
    hmac_digest,
    matches_any,
    signature_header,
    timestamp_outside,
)
from integrations.common.webhooks import VERIFIED, VerifyResult, load_json_object
from integrations.registry import connection_settings, connection_settings_errors
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

ENCODINGS = ("hex", "base64")
DEFAULTS = {
    "signature_header": "X-Signature",
    "signature_algorithm": "sha256",
    "signature_encoding": "hex",
    "signature_prefix": "",
    "timestamp_header": "",
    "tolerance_seconds": 300,
}
HEADER_NAME = r"[A-Za-z0-9-]{1,64}"
SCHEME_CHOICES = ("signature_header", "signature_algorithm", "signature_encoding", "timestamp_header")
MAX_ID = 64
LINE_EVENTS = ("order.refunded", "order.voided")  # they name the lines they undo


def scheme(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The connection's signature settings over the defaults; an unknown choice is a ValueError."""
    merged = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if k in DEFAULTS}}
    merged["signature_algorithm"] = str(merged["signature_algorithm"]).lower()
    merged["signature_encoding"] = str(merged["signature_encoding"]).lower()
    if merged["signature_algorithm"] not in ALGORITHMS:
        raise ValueError(f"signature_algorithm must be one of {', '.join(ALGORITHMS)}")
    if merged["signature_encoding"] not in ENCODINGS:
        raise ValueError(f"signature_encoding must be one of {', '.join(ENCODINGS)}")
    return merged


def sign(
    body: bytes, secret: str, settings: dict[str, Any] | None = None, timestamp: int | None = None
) -> str:
    """The header value a sender computes for ``body`` under these settings."""
    s = scheme(settings)
    message = f"{timestamp}.".encode() + body if s["timestamp_header"] else body
    digest = hmac_digest(secret, message, s["signature_algorithm"])
    text = digest.hex() if s["signature_encoding"] == "hex" else base64.b64encode(digest).decode()
    return f"{s['signature_prefix']}{text}"


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    """Check the HMAC of the raw body against each configured secret (active, then pending)."""
    # A stored scheme choice we cannot honour is refused with its reason, never guessed; a number
    # (the tolerance) is clamped into its safe range instead.
    errors = connection_settings_errors(connection)
    wrong = [f"{name} {message}" for name, message in errors.items() if name in SCHEME_CHOICES]
    if wrong:
        return VerifyResult(False, "connection signature settings: " + "; ".join(wrong))
    settings = connection_settings(connection)
    s = scheme(settings)
    header, refused = signature_header(request.headers, s["signature_header"], secrets)
    if refused:
        return refused
    if s["signature_prefix"] and not header.startswith(s["signature_prefix"]):
        return VerifyResult(False, f"signature does not start with {s['signature_prefix']!r}")
    timestamp = None
    if s["timestamp_header"]:
        ts_text = header_value(request.headers, s["timestamp_header"]).strip()
        if not ts_text:
            return VerifyResult(False, f"missing {s['timestamp_header']} header")
        try:
            timestamp = int(ts_text)
        except ValueError:
            return VerifyResult(False, f"malformed {s['timestamp_header']} header")
        stale = timestamp_outside(timestamp, int(s["tolerance_seconds"]))
        if stale:
            return stale
    if s["signature_encoding"] == "hex":  # hex digests arrive in either case
        header = s["signature_prefix"] + header[len(s["signature_prefix"]) :].lower()
    if matches_any(header, [sign(request.body, secret, settings, timestamp) for secret in secrets]):
        return VERIFIED
    return VerifyResult(False, "signature does not match any configured secret")


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """Read ``{"event_type", "event_id"?, "occurred_at"?, "order": {...}}``; Decimals, never floats."""
    data = load_json_object(body)
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedPayload("No event_type")
    order = data.get("order")
    if not isinstance(order, dict):
        raise MalformedPayload(f"{event_type} without an order object")
    order_id = order.get("id")
    if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not str(order_id).strip():
        raise MalformedPayload("The order has no id")
    if len(str(order_id)) > MAX_ID:
        raise MalformedPayload(f"Order id longer than {MAX_ID} characters")
    lines = order.get("lines")
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise MalformedPayload("order.lines must be a list of objects")
    return data


def dedupe_key(payload: dict[str, Any]) -> str:
    """``event_type:event_id``, or a key derived from the order id (and refunded line numbers)."""
    if payload.get("event_id"):
        return f"{payload['event_type']}:{str(payload['event_id'])[:MAX_ID]}"
    order = payload["order"]
    key = f"{payload['event_type']}:order:{order['id']}"
    if payload["event_type"] in LINE_EVENTS:
        numbers = ",".join(sorted(str(line.get("line_no")) for line in order["lines"]))
        if len(numbers) > 100:  # keep the key inside the stored column without losing uniqueness
            numbers = hashlib.sha256(numbers.encode()).hexdigest()
        key += f":lines:{numbers}"
    return key


def parse(request: WebhookRequest) -> ParsedEvent:
    payload = load(request.body)
    try:
        occurred = to_datetime(payload.get("occurred_at"))
    except ValueError:
        occurred = None
    return ParsedEvent(event_type=payload["event_type"], dedupe_key=dedupe_key(payload), occurred_at=occurred)
