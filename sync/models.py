"""The outbound queue and the state store.

Our tables are the queues: django-q2 only triggers and schedules the drains that read them.
Retry state (attempts, next attempt time, leases) lives here, never in the broker.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.types import Operation
from integrations.virtuous.errors import ErrorClass
from tenants.models import Tenant

__all__ = ["Operation"]  # re-exported: the operations the queue knows are defined with the mappers


class Origin(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    POLL = "poll", "Poll"
    BULK = "bulk", "Bulk import"
    REPLAY = "replay", "Replay"
    MANUAL = "manual", "Manual"


# Live donations go before bulk work within a tenant (lower sorts first).
PRIORITY_LIVE = 0
PRIORITY_BULK = 10


class Direction(models.TextChoices):
    OUTBOUND = "outbound", "Outbound (to Virtuous)"
    INBOUND = "inbound", "Inbound (Virtuous change to a partner)"


class OutboundItem(models.Model):
    """One write we owe Virtuous (direction ``outbound``) or, in two-way sync, a partner platform
    (direction ``inbound``). Its external ids come from the source record and never change."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        WAITING = "waiting", "Waiting on a dependency"
        IN_FLIGHT = "in_flight", "In flight (claimed)"
        SUBMITTED = "submitted", "Submitted (accepted, awaiting confirmation)"
        CONFIRMED = "confirmed", "Confirmed"
        NEEDS_REVIEW = "needs_review", "Needs review"
        DEAD = "dead", "Dead-lettered"
        DISCARDED = "discarded", "Discarded"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Every index below that starts with the tenant serves its lookups: a separate one would be
    # one more entry written by each of an item's several state changes (docs/decisions.md, ninth round).
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="outbound_items", db_index=False
    )
    operation = models.CharField(max_length=32, choices=Operation.choices)
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.OUTBOUND)
    idempotency_key = models.CharField(max_length=255)
    external_source = models.CharField(max_length=100, help_text="transactionSource / referenceSource sent")
    external_id = models.CharField(max_length=200, help_text="transactionId / referenceId sent")
    payload = models.JSONField(encoder=DjangoJSONEncoder, help_text="The exact Virtuous payload")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    priority = models.SmallIntegerField(default=PRIORITY_LIVE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    virtuous_id = models.CharField(max_length=32, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error_class = models.CharField(max_length=24, choices=ErrorClass.choices, blank=True)
    last_error = models.TextField(blank=True)
    note = models.CharField(max_length=200, blank=True)
    # A non-idempotent write (direct create) records that its request was sent, committed before
    # the call; while set, the outcome of the last send is unknown and the next attempt looks the
    # record up in Virtuous before sending again. The evidence is what the lookups saw.
    write_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="A direct create was sent and its outcome is not known yet"
    )
    write_evidence = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="What the duplicate check saw"
    )
    # A write that must not go out before another one (a new donor's gift after its Contact
    # Transaction): while ``state`` is ``waiting`` no drain claims it; the dependency reaching
    # ``release_on`` puts it back to ``pending``. Kept after release, so the admin can show why
    # it waited.
    depends_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="dependents"
    )
    release_on = models.CharField(
        max_length=16,
        blank=True,
        choices=[("submitted", "Dependency submitted"), ("confirmed", "Dependency confirmed")],
    )
    waiting_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="outbound_unique_key_per_tenant"
            ),
        ]
        indexes = [
            # The drain's claim: due items of one tenant in priority order.
            models.Index(
                fields=["tenant", "state", "priority", "next_attempt_at"], name="outbound_claim_idx"
            ),
            models.Index(fields=["tenant", "external_source", "external_id"], name="outbound_external_idx"),
            # No index holds lease_expires_at, so the heartbeat's renewal can be a HOT update (no
            # index entries). Expired leases are found among the items in flight (a few per drain
            # thread): per tenant by a tenant-led index, across tenants by outbound_direction_idx.
            models.Index(fields=["tenant", "state", "submitted_at"], name="outbound_submitted_idx"),
            # A tenant's next wake (its earliest due item), read at every release: without it
            # PostgreSQL took the partner drain's index below in time order and passed over every
            # other tenant's due items to find this one's.
            models.Index(
                fields=["tenant", "direction", "state", "next_attempt_at"], name="outbound_wake_idx"
            ),
            # The partner drain's scan for tenants with due two-way writes.
            models.Index(fields=["direction", "state", "next_attempt_at"], name="outbound_direction_idx"),
            # Waiting items by age, for the dependency timeout and the health counts. Partial: no
            # other state's rows, so no statement about items in flight can take it for a short
            # cut when statistics taken at a quiet moment say nothing is in flight
            # (tests/sync/test_in_flight_plans.py), and no entry to write as an item moves on.
            models.Index(fields=["waiting_since"], condition=Q(state="waiting"), name="outbound_waiting_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.external_source}/{self.external_id} ({self.state})"


class TenantQueue(models.Model):
    """Per-tenant drain bookkeeping: when the queue next needs a drain, and who holds it.

    ``wake_at`` lets dispatchers find tenants with due work without scanning the item table;
    the lease makes sure one tenant is drained by one thread at a time across all workers.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="queue")
    wake_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When live work made a queue with nothing due due again (cleared by a release that leaves
    # nothing due): for OUTBOUND_FRESH_SECONDS its tenant is claimed before tenants with backlogs.
    due_since = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_drain_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    budget_blocked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"queue of {self.tenant_id}"


class Attempt(models.Model):
    """One HTTP call to Virtuous: the audit trail behind every state change of an item."""

    # attempt_tenant_time_idx leads with the tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    operation = models.CharField(max_length=32, choices=Operation.choices, blank=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=24, choices=ErrorClass.choices, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=100, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    items = models.ManyToManyField(OutboundItem, through="AttemptItem", related_name="attempt_set")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="attempt_tenant_time_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status_code or self.error_class}"


class AttemptItem(models.Model):
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, db_index=False)  # attempt_item_unique
    item = models.ForeignKey(OutboundItem, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attempt", "item"], name="attempt_item_unique")]

    def __str__(self) -> str:
        return f"attempt {self.attempt_id} → item {self.item_id}"


class DeadLetter(models.Model):
    """An item that exhausted its retries or failed permanently, kept for a person to resolve."""

    class Resolution(models.TextChoices):
        OPEN = "open", "Open"
        REPLAYED = "replayed", "Replayed as-is"
        FIXED_AND_REPLAYED = "fixed_and_replayed", "Fixed and replayed"
        DISCARDED = "discarded", "Discarded"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="dead_letters")
    item = models.ForeignKey(
        OutboundItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="dead_letters"
    )
    operation_type = models.CharField(max_length=32, choices=Operation.choices)
    original_payload = models.JSONField(encoder=DjangoJSONEncoder)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=24, choices=ErrorClass.choices, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    error_details = models.JSONField(default=list, blank=True)
    resolution = models.CharField(max_length=24, choices=Resolution.choices, default=Resolution.OPEN)
    resolution_note = models.CharField(max_length=500, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        permissions = [("view_donor_pii", "Can see donor personal data in payloads")]
        indexes = [models.Index(fields=["tenant", "resolution", "-created_at"], name="deadletter_open_idx")]
        constraints = [
            # One open dead letter per item: a replay that fails again reopens, not duplicates.
            models.UniqueConstraint(
                fields=["item"], condition=Q(resolution="open"), name="deadletter_one_open_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation_type} {self.status_code or self.error_class} ({self.resolution})"


class SyncRecord(models.Model):
    """Per-record sync state (the seed's sync_records), scoped by tenant."""

    class ResourceType(models.TextChoices):
        CONTACT = "contact", "Contact"
        GIFT = "gift", "Gift"
        RECURRING_GIFT = "recurring_gift", "Recurring gift"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTED = "submitted", "Submitted"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"
        NEEDS_REVIEW = "needs_review", "Needs review"

    class SyncState(models.TextChoices):
        IN_SYNC = "in_sync", "In sync"
        PARTNER_PENDING = "partner_pending", "Partner change pending"
        VIRTUOUS_PENDING = "virtuous_pending", "Virtuous change pending"
        CONFLICT = "conflict", "Conflict"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sync_records", db_index=False)
    resource_type = models.CharField(max_length=16, choices=ResourceType.choices)
    partner_source = models.CharField(max_length=100)
    partner_id = models.CharField(max_length=200)
    virtuous_id = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    sync_state = models.CharField(max_length=16, choices=SyncState.choices, default=SyncState.PARTNER_PENDING)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    partner_modified_at = models.DateTimeField(null=True, blank=True)
    virtuous_modified_at = models.DateTimeField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, help_text="Hash of the content we last wrote")
    virtuous_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the shared fields as Virtuous last had them"
    )
    partner_snapshot = models.JSONField(
        default=dict, blank=True, help_text="The shared fields as the partner last had them (two-way)"
    )
    cooldown_until = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, help_text="Why the state last changed")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "resource_type", "partner_source", "partner_id"], name="syncrecord_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "resource_type", "virtuous_id"], name="syncrecord_virtuous_idx"),
            models.Index(fields=["tenant", "status"], name="syncrecord_status_idx"),
            models.Index(fields=["sync_state", "cooldown_until"], name="syncrecord_cooldown_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.resource_type} {self.partner_source}/{self.partner_id} ({self.status}, {self.sync_state})"
        )


class SyncCheckpoint(models.Model):
    """High-water mark of one independent sync: tenant × scope × resource type × direction."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound (Virtuous → us)"
        OUTBOUND = "outbound", "Outbound (source → Virtuous)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="checkpoints")
    scope = models.CharField(
        max_length=64, blank=True, help_text="Connection public id, or blank for Virtuous"
    )
    resource_type = models.CharField(max_length=32)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    last_processed_timestamp = models.DateTimeField(null=True, blank=True)
    last_processed_id = models.CharField(max_length=200, blank=True)
    last_run_at = models.DateTimeField(
        null=True, blank=True, help_text="When a poll of this resource last started (at most one a minute)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "scope", "resource_type", "direction"], name="checkpoint_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.resource_type} @ {self.last_processed_timestamp}"


class Alert(models.Model):
    """An alert raised for one tenant. Repeats inside the quiet window are counted, not sent."""

    class Kind(models.TextChoices):
        DEAD_LETTER = "dead_letter", "Dead letters created"
        TENANT_PAUSED = "tenant_paused", "Tenant paused"
        QUEUE_STALE = "queue_stale", "Queue older than threshold"
        NEEDS_REVIEW = "needs_review", "Writes need review"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    suppressed_count = models.PositiveIntegerField(default=0, help_text="Repeats folded into this alert")
    throttle_slot = models.BigIntegerField(
        help_text="Quiet-window number; one alert per tenant, kind and window"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind", "-created_at"], name="alert_recent_idx")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "throttle_slot"], name="alert_one_per_window"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"


class TenantHealth(Tenant):
    """The admin's per-tenant operations console (dashboard, onboarding, offboarding): no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "tenant health"
        verbose_name_plural = "tenant health"


class ImportRun(models.Model):
    """One bulk run (historical gift import or initial reconciliation), resumable from its counters.

    A run is identified by what it reads (``fingerprint``: the file's content with the project map,
    source name and batch label): running the same input again resumes the unfinished run, and a
    finished input enqueues nothing new because the queue is idempotent by key.
    """

    class Kind(models.TextChoices):
        HISTORICAL_GIFTS = "historical_gifts", "Historical gift import"
        INITIAL_RECONCILIATION = "initial_reconciliation", "Initial reconciliation (two-way)"

    class Phase(models.TextChoices):
        VALIDATING = "validating", "Validating"
        VALIDATED = "validated", "Validated (report ready, nothing enqueued)"
        BLOCKED = "blocked", "Blocked by validation errors"
        ENQUEUING = "enqueuing", "Enqueuing"
        MATCHING = "matching", "Cross-matching"
        PAUSED = "paused", "Paused (rate budget; resume later)"
        COMPLETED = "completed", "Completed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="import_runs")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.VALIDATING)
    source_label = models.CharField(max_length=300, help_text="File name, or connection and date window")
    fingerprint = models.CharField(max_length=64, help_text="Hash of the input, map, source and batch")
    transaction_source = models.CharField(max_length=100, blank=True)
    batch_label = models.CharField(max_length=100, blank=True)
    validated_through_row = models.PositiveIntegerField(default=0)
    last_row_committed = models.PositiveBigIntegerField(
        default=0, help_text="Enqueue phase: last data row (or Virtuous contact id) committed"
    )
    counters = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    project_totals = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="Valid rows per project: count, sum"
    )
    errors_sample = models.JSONField(default=list, blank=True, help_text="The first validation errors")
    signoff = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    signoff_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind", "fingerprint"], name="importrun_input_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.source_label} ({self.phase})"


class ImportDonor(models.Model):
    """One donor of a historical import run, as contact resolution found them during validation.

    The enqueue pass reads it back, so the real run does exactly what the dry run reported: a
    donor resolved ``will_create`` (or not checked) gets a Contact Transaction ahead of their gifts.
    """

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="donors")
    donor_id = models.CharField(max_length=200)
    category = models.CharField(max_length=24)
    virtuous_id = models.CharField(max_length=32, blank=True)
    contact_item = models.ForeignKey(
        OutboundItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enqueued = models.BooleanField(default=False, help_text="The enqueue pass has reached this donor")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "donor_id"], name="importdonor_unique")]

    def __str__(self) -> str:
        return f"{self.donor_id} ({self.category})"


class ReconciliationLog(models.Model):
    """Append-only record of every reconciliation finding and what was done about it."""

    class Category(models.TextChoices):
        STUCK = "stuck", "Stuck transaction"
        NEEDS_UPDATE = "needs_update", "Needs-update suspect"
        MISSED_WEBHOOK = "missed_webhook", "Missed webhook"
        DRIFT = "drift", "Drift"
        MATCHED_BY_REFERENCE = "matched_by_reference", "Matched by reference"
        MATCHED_BY_EMAIL = "matched_by_email", "Matched by e-mail"
        VIRTUOUS_ONLY = "virtuous_only", "Virtuous-only record"
        PARTNER_ONLY = "partner_only", "Partner-only record"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reconciliation_logs")
    run = models.ForeignKey(
        ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="log_entries"
    )
    category = models.CharField(max_length=24, choices=Category.choices)
    resource_type = models.CharField(max_length=16, blank=True)
    partner_source = models.CharField(max_length=100, blank=True)
    partner_id = models.CharField(max_length=200, blank=True)
    virtuous_id = models.CharField(max_length=32, blank=True)
    resolution = models.CharField(max_length=120)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "category", "-created_at"], name="reconlog_category_idx")]

    def __str__(self) -> str:
        return f"{self.category} {self.partner_source}/{self.partner_id} → {self.resolution}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("The reconciliation log is append-only.")
        super().save(*args, **kwargs)


class VirtuousMirror(models.Model):
    """A tenant's copy of one Virtuous record (Pattern 3, one-way pull), kept by the inbound handler."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    virtuous_id = models.BigIntegerField()
    record = models.JSONField(encoder=DjangoJSONEncoder, help_text="The record as Virtuous last sent it")
    modified_at = models.DateTimeField(null=True, blank=True, help_text="Virtuous modifiedDateTimeUtc")
    deleted = models.BooleanField(default=False)
    mirrored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.virtuous_id}"


class VirtuousContactMirror(VirtuousMirror):
    name = models.CharField(max_length=300, blank=True)
    email = models.CharField(max_length=254, blank=True)
    merged_into_id = models.BigIntegerField(null=True, blank=True)
    archived = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "virtuous_id"], name="contactmirror_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "email"], name="contactmirror_email_idx")]


class VirtuousGiftMirror(VirtuousMirror):
    contact_id = models.BigIntegerField(null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    gift_date = models.DateField(null=True, blank=True)
    transaction_source = models.CharField(max_length=100, blank=True)
    transaction_id = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "virtuous_id"], name="giftmirror_unique"),
        ]
        indexes = [
            models.Index(fields=["tenant", "gift_date"], name="giftmirror_date_idx"),
            models.Index(fields=["tenant", "contact_id"], name="giftmirror_contact_idx"),
        ]


class VirtuousRecurringGiftMirror(VirtuousMirror):
    contact_id = models.BigIntegerField(null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    frequency = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "virtuous_id"], name="recurringmirror_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "contact_id"], name="recurringmirror_contact_idx")]
