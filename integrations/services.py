"""Capture: storing what platforms send us, before anything else happens to it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from integrations.common.http import redact_headers
from integrations.models import Connection, InboundEvent
from integrations.registry import ProviderSpec, event_parse, provider_get
from integrations.types import MalformedPayload, ParsedEvent, PolledRecord, WebhookRequest
from tenants import selectors
from tenants.models import Credential

logger = logging.getLogger("giftline.capture")
# What a provider's verify could raise on a value it did not expect (it should return a verdict).
_VERIFY_ERRORS = (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError)


@dataclass(frozen=True)
class Receipt:
    """The receive view's answer: what happened, and the HTTP status to return."""

    event: InboundEvent
    http_status: int
    message: str


def connection_secrets(connection: Connection) -> list[str]:
    """Signing secrets a delivery may use: active and pending (rotation overlap)."""
    return selectors.credential_secrets_for_verification(
        tenant=connection.tenant,
        platform=provider_get(connection.provider).credential_platform,
        purpose=Credential.Purpose.WEBHOOK_SECRET,
        scope=connection.credential_scope,
    )


def inbound_event_receive(
    *, connection: Connection, request: WebhookRequest, remote_addr: str | None, max_bytes: int
) -> Receipt:
    """Check, record and dedupe one webhook delivery. Never calls any other system.

    Every delivery leaves a row: rejected ones (signature, size, content type) and malformed
    ones are kept for inspection with their reason; unsupported event types are recorded as
    ignored and acknowledged; a repeat of an event already recorded is acknowledged as a duplicate.
    """
    spec = provider_get(connection.provider)
    row = InboundEvent(
        tenant_id=connection.tenant_id,
        connection=connection,
        provider=connection.provider,
        capture=InboundEvent.Capture.WEBHOOK,
        headers=redact_headers(request.headers),
        content_type=request.content_type[:100],
        remote_addr=remote_addr,
    )
    problem = _precheck(spec, request, max_bytes)
    if problem:
        row.body = request.body[:max_bytes]
        return _store(row, InboundEvent.Status.REJECTED, problem, status=problem_status(problem))
    row.body = request.body
    try:
        verdict = spec.verify(request, connection, connection_secrets(connection))
    except _VERIFY_ERRORS as exc:
        # Settings are read with defaults and clamping, so this is a bug, not a bad setting. The
        # delivery is still recorded, and 503 asks the sender to retry once it is fixed.
        logger.exception(
            "capture.verify_failed tenant=%s connection=%s", connection.tenant.slug, connection.public_id
        )
        return _store(
            row,
            InboundEvent.Status.REJECTED,
            f"Could not check the signature: {type(exc).__name__}: {exc}",
            status=503,
        )
    row.signature_valid = verdict.ok
    if not verdict.ok:
        logger.warning(
            "capture.bad_signature tenant=%s connection=%s reason=%s",
            connection.tenant.slug,
            connection.public_id,
            verdict.reason,
        )
        return _store(
            row, InboundEvent.Status.REJECTED, f"Signature check failed: {verdict.reason}", status=400
        )
    try:
        parsed = event_parse(spec, request)
    except MalformedPayload as exc:
        return _store(row, InboundEvent.Status.MALFORMED, str(exc), status=400)
    row.event_type = parsed.event_type
    row.occurred_at = parsed.occurred_at
    if parsed.event_type not in spec.handlers:
        return _store(
            row, InboundEvent.Status.IGNORED, f"Unsupported event type {parsed.event_type!r}", status=200
        )
    return _store_deduped(row, parsed)


def problem_status(problem: str) -> int:
    return 413 if problem.startswith("Body") else 415


def _precheck(spec: ProviderSpec, request: WebhookRequest, max_bytes: int) -> str:
    if len(request.body) > max_bytes:
        return f"Body of {len(request.body)} bytes is over the {max_bytes}-byte limit"
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type not in spec.content_types:
        return f"Content type {media_type or '(none)'!r} is not accepted; expected {', '.join(spec.content_types)}"
    return ""


def _store(row: InboundEvent, outcome: str, reason: str, *, status: int) -> Receipt:
    row.status = outcome
    row.status_reason = reason[:500]
    row.save(force_insert=True)
    return Receipt(event=row, http_status=status, message=reason or outcome)


def _store_deduped(row: InboundEvent, parsed: ParsedEvent) -> Receipt:
    """Insert the event with its dedupe key; a conflict means we already have it."""
    row.dedupe_key = parsed.dedupe_key[:255]
    row.status = InboundEvent.Status.PENDING
    try:
        _insert(row)
    except IntegrityError:
        row.pk = None
        row.dedupe_key = None
        return _store(row, InboundEvent.Status.DUPLICATE, f"Already received {parsed.dedupe_key}", status=200)
    return Receipt(event=row, http_status=200, message="accepted")


def _insert(row: InboundEvent) -> None:
    """One INSERT that may hit the dedupe constraint. In autocommit (a webhook request) it commits
    by itself: wrapping it in a transaction would add BEGIN and COMMIT round trips to every
    delivery. Inside a caller's transaction a savepoint keeps a duplicate from breaking it."""
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            row.save(force_insert=True)
    else:
        row.save(force_insert=True)


def inbound_event_record_polled(*, connection: Connection, record: PolledRecord) -> bool:
    """Store one polled change like a webhook delivery; returns False when already recorded."""
    row = InboundEvent(
        tenant_id=connection.tenant_id,
        connection=connection,
        provider=connection.provider,
        capture=InboundEvent.Capture.POLL,
        event_type=record.event_type,
        dedupe_key=record.dedupe_key[:255],
        body=json.dumps(record.payload, default=str).encode(),
        content_type="application/json",
        occurred_at=record.modified_at,
        status=InboundEvent.Status.PENDING,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def connection_create(
    *,
    tenant,
    provider: str,
    capture_mode: str = Connection.CaptureMode.WEBHOOK,
    name: str = "",
    source_name: str = "",
    default_project_code: str = "",
    settings: dict | None = None,
    actor=None,
) -> Connection:
    """Create a connection for a tenant; its webhook URL is fixed by an unguessable token."""
    from tenants.services import SYSTEM, audit_record

    spec = provider_get(provider)
    if capture_mode not in spec.capture_modes:
        raise ValueError(f"{spec.label} supports capture modes: {', '.join(spec.capture_modes)}")
    settings = spec.settings_schema.validate(settings)  # SettingsInvalid (a ValueError) names each bad key
    connection = Connection.objects.create(
        tenant=tenant,
        provider=provider,
        name=name,
        capture_mode=capture_mode,
        source_name=source_name or spec.default_source_name,
        default_project_code=default_project_code,
        settings=settings,
    )
    audit_record(
        actor=actor or SYSTEM,
        action="connection.created",
        tenant=tenant,
        target=connection,
        details={"provider": provider, "capture_mode": capture_mode},
    )
    return connection


def connection_onboard(
    *,
    tenant,
    provider: str,
    capture_mode: str,
    name: str = "",
    settings: dict | None = None,
    secrets: dict[str, str] | None = None,
    actor=None,
) -> Connection:
    """Create a connection and store the secrets the customer pasted, scoped to it, in one go."""
    from tenants.services import SYSTEM, credential_set

    spec = provider_get(provider)
    unknown = set(secrets or {}) - set(spec.secret_purposes)
    if unknown:
        raise ValueError(f"{spec.label} takes no secret(s) {', '.join(sorted(unknown))}")
    with transaction.atomic():
        connection = connection_create(
            tenant=tenant,
            provider=provider,
            capture_mode=capture_mode,
            name=name,
            settings={k: v for k, v in (settings or {}).items() if k in spec.settings_fields and v},
            actor=actor,
        )
        for purpose, value in (secrets or {}).items():
            if value.strip():
                credential_set(
                    tenant=tenant,
                    platform=spec.credential_platform,
                    purpose=purpose,
                    scope=connection.credential_scope,
                    secret=value,
                    actor=actor or SYSTEM,
                )
    return connection


def connection_settings_update(
    *, connection: Connection, changes: dict[str, Any], unset: tuple[str, ...] = (), actor=None
) -> dict[str, Any]:
    """Set (and unset) settings of a connection after validating the result as a whole; audited
    with the keys changed, not their values (a base URL or an audience name is not a secret, but
    the audit log is no place for configuration dumps)."""
    from tenants.services import SYSTEM, audit_record

    spec = provider_get(connection.provider)
    merged = {k: v for k, v in (connection.settings or {}).items() if k not in unset}
    merged.update(changes)
    cleaned = spec.settings_schema.validate(merged)
    Connection.objects.filter(pk=connection.pk).update(settings=cleaned)
    connection.settings = cleaned
    audit_record(
        actor=actor or SYSTEM,
        action="connection.settings_changed",
        tenant=connection.tenant,
        target=connection,
        details={"set": sorted(changes), "unset": sorted(unset)},
    )
    return cleaned
