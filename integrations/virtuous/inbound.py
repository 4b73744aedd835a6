"""Virtuous as a webhook source: verifying, normalising and parsing its deliveries.

Virtuous's payload shape and event names are not published: the one observed production shape
is ``{"event": "GiftCreate", "gift": {...}}``; the docs describe an envelope with ``eventType``,
``eventId`` and ``data``; names appear as ``giftCreate``, ``GiftCreate`` or ``gift.created``. All
are accepted and normalised to the subscription toggle names (``giftCreate``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from integrations.common.mapping import MappingContext
from integrations.common.parsing import to_datetime
from integrations.common.signatures import header_value
from integrations.common.webhooks import VERIFIED, VerifyResult, load_json_object
from integrations.registry import ProviderSpec
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest
from integrations.virtuous.webhooks import DEFAULT_SIGNATURE_HEADER, verify_signature

TOGGLES = (
    "contactCreate",
    "contactUpdate",
    "giftCreate",
    "giftUpdate",
    "giftDelete",
    "projectCreate",
    "projectUpdate",
    "projectDelete",
    "formSubmission",
    "contactNoteCreate",
    "contactNoteUpdate",
    "contactNoteDelete",
    "eventCreate",
    "eventUpdate",
    "eventDelete",
)
_BY_FOLDED = {t.lower(): t for t in TOGGLES}
# The events the platform acts on; the rest are acknowledged and recorded as ignored.
HANDLED = ("contactCreate", "contactUpdate", "giftCreate", "giftUpdate", "giftDelete")


def normalise_event_name(name: str) -> str:
    """``giftCreate`` / ``GiftCreate`` / ``gift.created`` / ``GIFT_CREATED`` → ``giftCreate``."""
    folded = re.sub(r"[^a-z]", "", str(name).lower())
    if folded.endswith(("created", "updated", "deleted")):
        folded = folded[:-1]
    return _BY_FOLDED.get(folded, str(name))


@dataclass(frozen=True)
class VirtuousChange:
    """One change in Virtuous, as the inbound handler sees it."""

    event: str
    resource: str  # "gift" | "contact"
    record: dict[str, Any]


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    data = load_json_object(body)
    raw_name = data.get("event") or data.get("eventType") or data.get("eventName") or data.get("type")
    if not raw_name:
        raise MalformedPayload("No event name (event / eventType)")
    event = normalise_event_name(raw_name)
    resource = "gift" if event.startswith("gift") else "contact" if event.startswith("contact") else ""
    record = (
        data.get("data") if isinstance(data.get("data"), dict) else data.get(resource) if resource else None
    )
    if event in HANDLED and not isinstance(record, dict):
        raise MalformedPayload(f"{event} without a {resource} object")
    return {
        "event": event,
        "event_id": str(data.get("eventId") or data.get("id") or ""),
        "resource": resource,
        "record": record or {},
    }


def parse(request: WebhookRequest) -> ParsedEvent:
    payload = load(request.body)
    record = payload["record"]
    version = (
        record.get("modifiedDateTimeUtc")
        or record.get("createDateTimeUtc")
        or hashlib.sha256(request.body).hexdigest()[:16]
    )
    dedupe = payload["event_id"] or f"{payload['event']}:{record.get('id', '')}:{version}"
    return ParsedEvent(
        event_type=payload["event"],
        dedupe_key=dedupe,
        occurred_at=to_datetime(record.get("modifiedDateTimeUtc")),
    )


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    tenant = connection.tenant
    header = tenant.virtuous_signature_header or DEFAULT_SIGNATURE_HEADER
    value = header_value(request.headers, header)
    if not value:
        return VerifyResult(False, f"missing {header} header")
    if not secrets:
        return VerifyResult(False, "no Virtuous webhook secret is set for this tenant")
    if verify_signature(
        body=request.body, header_value=value, secrets=secrets, encoding=tenant.virtuous_signature_encoding
    ):
        return VERIFIED
    return VerifyResult(False, "signature does not match any configured secret")


def _change(ctx: MappingContext, payload: dict[str, Any]) -> VirtuousChange:
    return VirtuousChange(event=payload["event"], resource=payload["resource"], record=payload["record"])


PROVIDER = ProviderSpec(
    key="virtuous",
    label="Virtuous CRM+ (inbound)",
    credential_platform="virtuous",
    default_source_name="Giftline",
    content_types=("application/json", "text/json"),
    verify=verify,
    parse=parse,
    load=load,
    handlers={event: _change for event in HANDLED},
    kind="crm",
    secret_purposes=(),
    setup_steps="Created automatically by onboarding (POST /api/Webhook with a fresh secret).",
)
