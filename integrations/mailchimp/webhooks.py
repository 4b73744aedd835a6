"""Mailchimp audience webhooks: form-encoded POSTs authenticated by a secret in the URL path.

Mailchimp signs nothing (spec section 2.1), so the connection's webhook URL is
``/hooks/<token>/<secret>/`` and the path secret is compared in constant time with the
connection's webhook secrets (active and pending, for rotation). Mailchimp checks a new
webhook URL with a GET, answered by ``handshake``.

Bodies are ``type``, ``fired_at`` and ``data[...]`` form keys; ``load`` turns the bracketed
keys into nested dicts. Polled members are stored as JSON in the same envelope with type
``member``. There is no event id, so the dedupe key is derived (see ``dedupe_key``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl

from integrations.common.parsing import to_datetime
from integrations.common.signatures import path_secret_handshake, path_secret_matches
from integrations.common.webhooks import VerifyResult, load_json
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

FORM = "application/x-www-form-urlencoded"
# An empty POST is what some sources say Mailchimp sends to check a URL (spec section 6):
# it is recorded under this type, which no handler takes, so it is acknowledged and ignored.
# Such a POST may carry no content type at all, so "" is accepted, for empty bodies only.
VALIDATION_PING = "webhook.validation"
CONTENT_TYPES = (FORM, "")
MAX_FIELDS = 500

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]+\])*)$")
_PART = re.compile(r"\[([^\[\]]+)\]")


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    """Mailchimp deliveries are genuine when the URL carries one of the connection's secrets."""
    return path_secret_matches(request, secrets)


def handshake(request: WebhookRequest, connection: Any, secrets: list[str]) -> tuple[int, str]:
    """Mailchimp's GET when a webhook is saved: 200 only for the right URL secret."""
    return path_secret_handshake(request, secrets)


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``data[merges][FNAME]=Ada`` → ``{"data": {"merges": {"FNAME": "Ada"}}}``.

    A key given twice, or used both as a value and as a group, is ambiguous and refused rather
    than letting one value silently win.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise MalformedPayload(f"Unexpected form key {key[:80]!r}")
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise MalformedPayload(f"Form key {key[:80]!r} uses {part!r} both as a value and a group")
            node = child
        if parts[-1] in node:
            raise MalformedPayload(f"Form key {key[:80]!r} is given twice or clashes with a group")
        node[parts[-1]] = value
    return root


def load(body: bytes, content_type: str = FORM) -> dict[str, Any]:
    """Normalise a delivery (form) or a polled member (JSON) to ``{"type", "fired_at", "data"}``."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        envelope = load_json(body)
    else:
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(
                text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedPayload(f"Body is not a valid form: {exc}") from exc
        envelope = unflatten(pairs)
    if not isinstance(envelope, dict):
        raise MalformedPayload("Expected an object")
    kind = envelope.get("type")
    data = envelope.get("data")
    if not isinstance(kind, str) or not kind:
        raise MalformedPayload("The delivery has no 'type'")
    if not isinstance(data, dict):
        raise MalformedPayload(f"{kind} delivery has no data[...] fields")
    fired_at = envelope.get("fired_at")
    if fired_at is not None and not isinstance(fired_at, str):
        raise MalformedPayload("'fired_at' is not a single value")
    return {"type": kind, "fired_at": fired_at or "", "data": data}


def dedupe_key(payload: dict[str, Any]) -> str:
    """Mailchimp sends no event id: hash type, fired_at, list id and the member's id or email.

    ``upemail`` has no id/email, so its old and new addresses take their place. A retry of one
    delivery repeats all of these; two real changes of one member differ at least in fired_at
    (second resolution).
    """
    data = payload["data"]
    member = data.get("id") or data.get("email") or data.get("old_email") or ""
    parts = [payload["type"], payload["fired_at"], data.get("list_id"), member, data.get("new_email")]
    text = "\x1f".join(str(p or "") for p in parts)
    return "mc:" + hashlib.sha256(text.encode()).hexdigest()


def parse(request: WebhookRequest) -> ParsedEvent:
    """Type, derived dedupe key and fire time of a delivery (``fired_at`` is read as UTC)."""
    if not request.body.strip():
        return ParsedEvent(event_type=VALIDATION_PING, dedupe_key="")
    if not request.content_type:
        raise MalformedPayload(f"A body without a content type; expected {FORM}")
    payload = load(request.body, request.content_type)
    try:
        occurred = to_datetime(payload["fired_at"])
    except ValueError as exc:
        raise MalformedPayload(f"'fired_at' is not a time: {payload['fired_at'][:40]!r}") from exc
    return ParsedEvent(event_type=payload["type"], dedupe_key=dedupe_key(payload), occurred_at=occurred)
