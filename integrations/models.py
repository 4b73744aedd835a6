"""Connections to source platforms, the raw capture log of what they (and Virtuous) send, and the
per-tenant rate buckets shared by every worker process."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.registry import provider_get
from tenants.models import Tenant


class Connection(models.Model):
    """One tenant's link to one platform: its capture mode, cadence, mappings and webhook URL.

    The webhook URL carries ``webhook_token``, an unguessable UUID: the tenant comes from the
    URL's connection, never from the payload. Secrets live in tenants.Credential, scoped to the
    connection's public id.
    """

    class CaptureMode(models.TextChoices):
        WEBHOOK = "webhook", "Webhooks"
        POLLING = "polling", "Polling"
        HYBRID = "hybrid", "Webhooks and polling"

    class PollingRole(models.TextChoices):
        PRIMARY = "primary", "Primary (normal cadence)"
        BACKSTOP = "backstop", "Backstop (reduced cadence)"
        OFF = "off", "Off"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook_token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connections")
    provider = models.CharField(max_length=32)
    name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    capture_mode = models.CharField(max_length=16, choices=CaptureMode.choices, default=CaptureMode.WEBHOOK)
    polling_role = models.CharField(max_length=16, choices=PollingRole.choices, default=PollingRole.PRIMARY)
    poll_interval_minutes = models.PositiveIntegerField(default=15)
    backstop_interval_minutes = models.PositiveIntegerField(default=1440)
    source_name = models.CharField(
        max_length=100, help_text="transactionSource / referenceSource written to Virtuous for this source"
    )
    default_project_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Used when a donation names no project; blank = unmapped is an error",
    )
    project_code_map = models.JSONField(
        default=dict, blank=True, help_text="Source campaign/form id → Virtuous project code"
    )
    settings = models.JSONField(default=dict, blank=True, help_text="Provider-specific options")
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    paused_until = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "provider"], name="connection_tenant_provider_idx")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.provider}{' ' + self.name if self.name else ''}"

    @property
    def credential_scope(self) -> str:
        # A tenant has one Virtuous subscription, so its webhook secret is tenant-wide.
        return "" if self.provider == "virtuous" else str(self.public_id)

    @property
    def credential_platform(self) -> str:
        """The platform its credentials are stored under (the provider's, from the registry)."""
        return provider_get(self.provider).credential_platform

    @property
    def polls(self) -> bool:
        return self.capture_mode != self.CaptureMode.WEBHOOK and self.polling_role != self.PollingRole.OFF

    def poll_due(self, now=None) -> bool:
        now = now or timezone.now()
        if not self.is_active or not self.polls or (self.paused_until and self.paused_until > now):
            return False
        minutes = (
            self.backstop_interval_minutes
            if self.polling_role == self.PollingRole.BACKSTOP
            else self.poll_interval_minutes
        )
        return self.last_poll_at is None or (now - self.last_poll_at).total_seconds() >= minutes * 60


class InboundEvent(models.Model):
    """The raw capture log, and the inbound queue: every webhook delivery and polled change.

    Rows are written before anything else happens to a request (bad ones too, so they can be
    inspected), then drained in batches by the sync room.
    """

    class Capture(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        POLL = "poll", "Poll"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending processing"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (unsupported event type)"
        DUPLICATE = "duplicate", "Duplicate delivery"
        REJECTED = "rejected", "Rejected (signature, size or content type)"
        MALFORMED = "malformed", "Malformed payload"
        FAILED = "failed", "Failed processing"
        NEEDS_REVIEW = "needs_review", "Needs review"
        DISMISSED = "dismissed", "Dismissed by a person"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No single-column indexes on the two keys: inbound_tenant_time_idx and inbound_conn_status_idx
    # lead with them, and every index is paid for by every webhook's INSERT.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="inbound_events", db_index=False
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    provider = models.CharField(max_length=32)
    capture = models.CharField(max_length=8, choices=Capture.choices, default=Capture.WEBHOOK)
    event_type = models.CharField(max_length=100, blank=True)
    # NULL, not "", for rows with no key (rejected, duplicate): the partial unique index skips them.
    dedupe_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    headers = models.JSONField(default=dict, blank=True, help_text="Request headers, secrets redacted")
    body = models.BinaryField(
        blank=True, help_text="The raw bytes as received (or the polled record as JSON)"
    )
    content_type = models.CharField(max_length=100, blank=True)
    body_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the body as received (kept after the body is purged)"
    )
    body_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bytes received, or declared when too large to read"
    )
    body_purged_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed the body")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    signature_valid = models.BooleanField(null=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="inbound_dedupe",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="inbound_queue_idx"),
            models.Index(fields=["tenant", "-received_at"], name="inbound_tenant_time_idx"),
            models.Index(fields=["connection", "status", "-received_at"], name="inbound_conn_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type or '?'} ({self.status})"


class RejectedDeliveryCount(models.Model):
    """Rejected deliveries to one connection in one minute: every one is counted here; only the
    first ``REJECTED_STORED_PER_CONNECTION_PER_MINUTE`` also get an InboundEvent row, so a flood
    from one address cannot grow storage faster than that."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="rejected_counts")
    minute = models.DateTimeField(help_text="Start of the minute (UTC)")
    received = models.PositiveIntegerField(default=0, help_text="Rejected deliveries in this minute")
    stored = models.PositiveIntegerField(default=0, help_text="Of those, recorded as InboundEvent rows")
    last_reason = models.CharField(max_length=500, blank=True)
    last_remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "minute"], name="rejectedcount_one_per_minute"),
        ]
        indexes = [models.Index(fields=["tenant", "-minute"], name="rejectedcount_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.connection_id} @ {self.minute:%Y-%m-%d %H:%M}: {self.received} rejected"

    @property
    def not_stored(self) -> int:
        return self.received - self.stored


class RateBucket(models.Model):
    """One tenant's Virtuous token bucket when ``RATE_LIMIT_BACKEND`` is the database.

    Capacity and refill rate are not stored: they come from the tenant's settings on every call,
    so a budget change applies at once. Only the moving parts live here, as Unix times because
    every worker does arithmetic on them under the row lock.
    """

    key = models.CharField(max_length=64, unique=True, help_text="The tenant's public id.")
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="Unix time of the last refill.")
    paused_until = models.FloatField(default=0.0, help_text="Unix time; no calls before it.")
    window_left = models.FloatField(
        default=0.0,
        help_text="Calls Virtuous's current window still holds, as last announced, less those sent since.",
    )
    window_until = models.FloatField(
        default=0.0,
        help_text="Unix time the announced window ends (its reset plus the margin); 0 when unknown.",
    )

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.1f} tokens"
