"""Constant Contact partner webhooks: billing and account topics only, JSON pointers.

The four partner topics (spec section 3.3) carry ``{"url", "api_key", "event_type"}`` and no
signature. How to authenticate them is not documented, so it is the connection setting
``webhook_auth``:

- ``path_secret`` (default): the callback URL we register ends with a secret
  (``/hooks/<token>/<secret>/``), compared in constant time with the connection's webhook secrets
  (active and pending), exactly as for Mailchimp. We choose the URL, so this always works.
- ``api_key``: the payload's ``api_key`` must equal one of the connection's webhook secrets (store
  the application's API key there). Unverified vendor behaviour; use only if path secrets cannot be.

There is no event id either: the dedupe key hashes the topic and the pointer URL, bucketed by
the UTC hour of receipt, so Constant Contact's retries (every minute for up to an hour) collapse
while a later real event on the same account is still recorded. Contacts are never pushed; they
are polled and stored as JSON in the same ``{"type", "data"}`` envelope with type ``contact``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.utils import timezone

from integrations.common.signatures import matches_any, path_secret_handshake, path_secret_matches
from integrations.common.webhooks import NO_SECRET, VERIFIED, VerifyResult, load_json
from integrations.registry import connection_settings, connection_settings_errors
from integrations.types import MalformedPayload, ParsedEvent, WebhookRequest

AUTH_MODES = ("path_secret", "api_key")


def _object(body: bytes) -> dict[str, Any]:
    data = load_json(body)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise MalformedPayload("Expected a JSON object (or an array holding one)")
    return data


def verify(request: WebhookRequest, connection: Any, secrets: list[str]) -> VerifyResult:
    """Authenticate a partner notification the way the connection's ``webhook_auth`` says."""
    if "webhook_auth" in connection_settings_errors(connection):  # never guess how to authenticate
        return VerifyResult(False, f"webhook_auth must be one of {', '.join(AUTH_MODES)}")
    if connection_settings(connection)["webhook_auth"] == "path_secret":
        return path_secret_matches(request, secrets)
    if not secrets:
        return NO_SECRET
    try:
        given = str(_object(request.body).get("api_key") or "")
    except MalformedPayload:
        return VerifyResult(False, "the body is not a JSON object, so it carries no api_key")
    if given and matches_any(given, secrets):
        return VERIFIED
    return VerifyResult(False, "api_key missing or not one of the configured keys")


def handshake(request: WebhookRequest, connection: Any, secrets: list[str]) -> tuple[int, str]:
    """A GET on the callback URL: 200 for the right path secret, else 403/404."""
    return path_secret_handshake(request, secrets)


def load(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """A partner notification or a polled contact as ``{"type", "data"}``."""
    data = _object(body)
    if "event_type" in data:
        kind = data.get("event_type")
        if not isinstance(kind, str) or not kind:
            raise MalformedPayload("event_type is not a name")
        url = data.get("url")
        if not isinstance(url, str):
            raise MalformedPayload(f"{kind} without a pointer url")
        return {"type": kind, "data": {"url": url}}
    if data.get("type") == "contact" and isinstance(data.get("data"), dict):
        return {"type": "contact", "data": data["data"]}
    raise MalformedPayload("Neither a partner notification nor a polled contact")


def parse(request: WebhookRequest) -> ParsedEvent:
    """A partner notification's topic and derived dedupe key (contacts never arrive this way)."""
    payload = load(request.body)
    if "url" not in payload["data"]:
        raise MalformedPayload("Contacts are polled, never accepted from a webhook")
    hour = timezone.now().strftime("%Y%m%d%H")
    digest = hashlib.sha256(f"{payload['type']}\x1f{payload['data']['url']}".encode()).hexdigest()
    return ParsedEvent(event_type=payload["type"], dedupe_key=f"cc:{digest}:{hour}")
