"""Donorbox webhooks: ``Donorbox-Signature: <unix_ts>,<hex>`` over ``f"{ts}.{raw_body}"``.

Payloads come as v1 (a JSON array holding one donation) or v2 (an envelope with ``event_id``,
``event_name`` and a ``donation`` or ``plan``, sometimes itself wrapped in an array); both are
accepted. v1 carries no event id, so the dedupe key is derived from the donation's state.
"""

from __future__ import annotations

from typing import Any

from integrations.common.parsing import to_datetime
from integrations.common.signatures import hmac_digest, matches_any, signature_header, timestamp_outside
from integrations.common.webhooks import VERIFIED, VerifyResult, load_json
from integrations.registry import connection_settings
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

SIGNATURE_HEADER = "Donorbox-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(body: bytes, secret: str, timestamp: int) -> str:
    return f"{timestamp},{hmac_digest(secret, f'{timestamp}.'.encode() + body).hex()}"


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    header, refused = signature_header(request.headers, SIGNATURE_HEADER, secrets)
    if refused:
        return refused
    ts_text, _, signature = header.partition(",")
    try:
        timestamp = int(ts_text.strip())
    except ValueError:
        return VerifyResult(False, "malformed signature header")
    stale = timestamp_outside(timestamp, connection_settings(connection)["tolerance_seconds"])
    if stale:
        return stale
    expected = [sign(request.body, secret, timestamp).partition(",")[2] for secret in secrets]
    if matches_any(signature.strip(), expected):
        return VERIFIED
    return VerifyResult(False, "signature does not match any configured secret")


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """Normalise both payload versions to ``{"event_type", "event_id", "donation"|"plan", "created_at"}``."""
    data = load_json(body, parse_float=float)
    if isinstance(data, list):
        if len(data) != 1 or not isinstance(data[0], dict):
            raise MalformedPayload("Expected an array holding exactly one object")
        data = data[0]
    if not isinstance(data, dict):
        raise MalformedPayload("Expected a JSON object or an array of one")
    if "event_name" in data:
        kind = "plan" if "plan" in data else "donation"
        record = data.get(kind)
        if not isinstance(record, dict):
            raise MalformedPayload(f"{data.get('event_name')} without a {kind} object")
        return {
            "event_type": str(data["event_name"]),
            "event_id": str(data.get("event_id") or ""),
            kind: record,
            "created_at": data.get("created_at"),
        }
    if "id" in data and "amount" in data:  # v1: the donation itself
        return {
            "event_type": "donation.created",
            "event_id": "",
            "donation": data,
            "created_at": data.get("donation_date"),
        }
    raise MalformedPayload("Neither a v2 envelope nor a v1 donation")


def parse(request: WebhookRequest) -> ParsedEvent:
    payload = load(request.body)
    return ParsedEvent(
        event_type=payload["event_type"],
        dedupe_key=payload["event_id"] or state_key(payload),
        occurred_at=to_datetime(payload.get("created_at")),
    )


def state_key(payload: dict[str, Any]) -> str:
    """A key that changes when the record changes: the same donation in the same state dedupes."""
    if "plan" in payload:
        plan = payload["plan"]
        return f"plan:{plan.get('id')}:{plan.get('status')}:{plan.get('amount')}"
    donation = payload["donation"]
    return f"donation:{donation.get('id')}:{donation.get('status')}:{donation.get('amount_refunded') or '0'}"
