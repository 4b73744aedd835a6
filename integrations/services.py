"""Capture: storing what platforms send us, before anything else happens to it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings as django_settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from integrations.common.http import redact_headers
from integrations.common.rows import RowInserter
from integrations.common.secrets import connection_secret_store, connection_secrets
from integrations.common.webhooks import event_parse
from integrations.models import Connection, InboundEvent, RejectedDeliveryCount
from integrations.registry import ProviderSpec, provider_get
from integrations.selectors import reused_connection_check
from integrations.types import MalformedPayload, ParsedEvent, PolledRecord, WebhookRequest
from tenants.services import SYSTEM

logger = logging.getLogger("giftline.capture")
# What a provider's verify could raise on a value it did not expect (it should return a verdict).
_VERIFY_ERRORS = (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError)


class ConnectionChanged(Exception):
    """A connection remembered from an earlier delivery no longer matches the database (a secret
    rotated, the connection switched off or edited): nothing was stored; read it again and retry."""


@dataclass(frozen=True)
class Receipt:
    """The receive view's answer: what happened, and the HTTP status to return. ``event`` is None
    for a rejected delivery over the per-minute cap: counted, not stored."""

    event: InboundEvent | None
    http_status: int
    message: str


def inbound_event_receive(
    *,
    connection: Connection,
    request: WebhookRequest,
    remote_addr: str | None,
    max_bytes: int,
    body_size: int | None = None,
) -> Receipt:
    """Check, record and dedupe one webhook delivery. Never calls any other system.

    Every delivery is recorded: malformed ones are kept whole for inspection; unsupported event
    types are recorded as ignored and acknowledged; a repeat of an event already recorded is
    acknowledged as a duplicate. Rejected ones (signature, size, content type) keep their metadata,
    reason, hash and a short prefix, not the body, and beyond a cap per connection and minute are
    only counted. ``body_size`` is what the sender declared when the body was too large to read
    (``request.body`` is then empty).
    """
    spec = provider_get(connection.provider)
    size = len(request.body) if body_size is None else body_size
    row = InboundEvent(
        tenant_id=connection.tenant_id,
        connection=connection,
        provider=connection.provider,
        capture=InboundEvent.Capture.WEBHOOK,
        headers=redact_headers(request.headers),
        content_type=request.content_type[:100],
        remote_addr=remote_addr,
        body_size=size,
    )
    problem = _precheck(spec, request, max_bytes, size)
    if problem:
        _refuse_reused(connection)
        return _reject(row, request, problem, status=problem_status(problem), oversized=size > max_bytes)
    row.body = request.body
    row.body_sha256 = hashlib.sha256(request.body).hexdigest()
    try:
        verdict = spec.verify(request, connection, connection_secrets(connection))
    except _VERIFY_ERRORS as exc:
        _refuse_reused(connection)
        # Settings are read with defaults and clamping, so this is a bug, not a bad setting. The
        # delivery is still recorded, and 503 asks the sender to retry once it is fixed.
        logger.exception(
            "capture.verify_failed tenant=%s connection=%s", connection.tenant.slug, connection.public_id
        )
        return _reject(
            row, request, f"Could not check the signature: {type(exc).__name__}: {exc}", status=503
        )
    row.signature_valid = verdict.ok
    if not verdict.ok:
        _refuse_reused(connection)  # a secret may have rotated since this process read it
        receipt = _reject(row, request, f"Signature check failed: {verdict.reason}", status=400)
        if receipt.event is not None:  # past the cap, the counter row says it (no log line per request)
            logger.warning(
                "capture.bad_signature tenant=%s connection=%s reason=%s",
                connection.tenant.slug,
                connection.public_id,
                verdict.reason,
            )
        return receipt
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


def _refuse_reused(connection: Connection) -> None:
    """A delivery is refused only on a fresh read of its connection: a remembered one may hold a
    secret, setting or state that has changed since, so the caller reads again and retries."""
    if getattr(connection, "capture_reused", False):
        raise ConnectionChanged(str(connection.public_id))


def problem_status(problem: str) -> int:
    return 413 if problem.startswith("Body") else 415


def _precheck(spec: ProviderSpec, request: WebhookRequest, max_bytes: int, size: int) -> str:
    if size > max_bytes:
        # max_bytes + 1 is all the view reads of a body sent without a length
        shown = f"more than {max_bytes}" if size == max_bytes + 1 else str(size)
        return f"Body of {shown} bytes is over the {max_bytes}-byte limit"
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type not in spec.content_types:
        return f"Content type {media_type or '(none)'!r} is not accepted; expected {', '.join(spec.content_types)}"
    return ""


def _reject(
    row: InboundEvent, request: WebhookRequest, reason: str, *, status: int, oversized: bool = False
) -> Receipt:
    """Record a rejected delivery without its body: the hash and a short prefix identify it (an
    oversized one keeps nothing: it was never read whole). Over the cap it is only counted."""
    if oversized:
        row.body = b""
    else:
        row.body = request.body[: django_settings.REJECTED_BODY_PREFIX_BYTES]
        row.body_sha256 = hashlib.sha256(request.body).hexdigest()
    if not rejected_delivery_count(connection=row.connection, reason=reason, remote_addr=row.remote_addr):
        return Receipt(event=None, http_status=status, message=reason)
    return _store(row, InboundEvent.Status.REJECTED, reason, status=status)


def rejected_delivery_count(
    *, connection: Connection, reason: str, remote_addr: str | None, now: datetime | None = None
) -> bool:
    """Count one rejected delivery in its connection's current minute; True when it may also be
    stored as a row. Claims a storage slot by conditional UPDATE, so concurrent requests never
    store more than the cap."""
    minute = (now or timezone.now()).replace(second=0, microsecond=0)
    cap = django_settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE
    rows = RejectedDeliveryCount.objects.filter(connection=connection, minute=minute)
    seen = {"received": F("received") + 1, "last_reason": reason[:500], "last_remote_addr": remote_addr}
    if rows.filter(stored__lt=cap).update(stored=F("stored") + 1, **seen):
        return True
    if rows.update(**seen):
        return False
    try:
        with transaction.atomic():
            RejectedDeliveryCount.objects.create(
                tenant_id=connection.tenant_id,
                connection=connection,
                minute=minute,
                received=1,
                stored=1 if cap > 0 else 0,
                last_reason=reason[:500],
                last_remote_addr=remote_addr,
            )
    except IntegrityError:  # another request created this minute's row first
        return rejected_delivery_count(
            connection=connection, reason=reason, remote_addr=remote_addr, now=minute
        )
    return cap > 0


def _store(row: InboundEvent, outcome: str, reason: str, *, status: int) -> Receipt:
    row.status = outcome
    row.status_reason = reason[:500]
    _insert(row)
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
    """One INSERT (a fixed, prepared statement) that may hit the dedupe constraint. In autocommit
    (a webhook request) it commits by itself: wrapping it in a transaction would add BEGIN and
    COMMIT round trips to every delivery. Inside a caller's transaction a savepoint keeps a
    duplicate from breaking it.

    For a connection remembered from an earlier delivery (``capture_reused``), the same statement
    stores the row only if the database still holds what capture read of it, so that what is
    stored was decided by the connection as it is now; otherwise nothing is stored and
    ``ConnectionChanged`` is raised.
    """
    db = transaction.get_connection(router.db_for_write(InboundEvent))
    connection = row.connection
    reused = getattr(connection, "capture_reused", False)
    with transaction.atomic(using=db.alias) if db.in_atomic_block else contextlib.nullcontext():
        if not reused:
            _inserter(db.alias).insert(db, row)
            return
        check, params = reused_connection_check(connection, db)
        if not _inserter(db.alias, check).insert(db, row, params):
            raise ConnectionChanged(str(connection.public_id))


@functools.cache
def _inserter(alias: str, where: str = "") -> RowInserter:
    return RowInserter(InboundEvent, connections[alias], where=where)


def inbound_event_record_polled(*, connection: Connection, record: PolledRecord) -> bool:
    """Store one polled change like a webhook delivery; returns False when already recorded."""
    body = json.dumps(record.payload, default=str).encode()
    row = InboundEvent(
        tenant_id=connection.tenant_id,
        connection=connection,
        provider=connection.provider,
        capture=InboundEvent.Capture.POLL,
        event_type=record.event_type,
        dedupe_key=record.dedupe_key[:255],
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_size=len(body),
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
    from tenants.services import audit_record

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
                connection_secret_store(connection, purpose, value, actor=actor or SYSTEM)
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
