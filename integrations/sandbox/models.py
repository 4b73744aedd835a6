"""The sandbox's own data: a fake Virtuous organisation and everything it holds.

Every row belongs to one ``SandboxOrganization``; views reach rows only through the
organisation that the request's token authenticated, so one token never sees another
organisation's data. Counters and rate windows live in their own rows and are only ever
changed with single atomic UPDATE/UPSERT statements, so several web processes keep them exact.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

WEBHOOK_TOGGLES = (
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

COUNTER_FIELDS = (
    "requests_total",
    "writes_total",
    "transactions_received",
    "duplicate_submissions",
    "contacts_created",
    "gifts_created",
    "webhooks_sent",
    "webhooks_failed",
    "rate_limited_responses",
    "faults_injected",
)


class SandboxOrganization(models.Model):
    """One fake Virtuous organisation: its token, rate limit, fault knobs and webhook style."""

    class SignatureEncoding(models.TextChoices):
        HEX = "hex", "Hex digest"
        BASE64 = "base64", "Base64 digest"

    class PayloadStyle(models.TextChoices):
        OBSERVED = "observed", 'Observed: {"event": "GiftCreate", "gift": {...}}'
        ENVELOPE = "envelope", 'Envelope: {"eventType": "gift.created", "data": {...}}'

    name = models.CharField(max_length=200, help_text='Always ends with "(Sandbox)".')
    time_zone = models.CharField(max_length=64, default="America/Chicago")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_last4 = models.CharField(max_length=4, editable=False)

    rate_limit = models.PositiveIntegerField(default=5000, help_text="Requests allowed per window.")
    window_seconds = models.PositiveIntegerField(
        default=3600,
        validators=[MinValueValidator(1)],
        help_text="Rate-limit window. Benchmarks shorten it (a compressed clock).",
    )

    error_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of requests answered with one of the error statuses, before any processing.",
    )
    error_statuses = models.CharField(max_length=64, default="500,502,503")
    added_latency_ms = models.PositiveIntegerField(default=0)
    timeout_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of writes that are processed, then answered only after timeout_seconds.",
    )
    timeout_seconds = models.PositiveIntegerField(default=35)
    error_after_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of writes that are processed, then answered with one of the error statuses.",
    )
    storm_until = models.DateTimeField(null=True, blank=True, help_text="Every request gets 429 until then.")
    storm_retry_after = models.PositiveIntegerField(default=60)

    webhook_signature_header = models.CharField(max_length=64, default="X-Virtuous-Signature")
    webhook_signature_encoding = models.CharField(
        max_length=8, choices=SignatureEncoding.choices, default=SignatureEncoding.HEX
    )
    webhook_payload_style = models.CharField(
        max_length=16, choices=PayloadStyle.choices, default=PayloadStyle.OBSERVED
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def error_status_list(self) -> list[int]:
        return [int(s) for s in self.error_statuses.replace(" ", "").split(",") if s]


class SandboxCounters(models.Model):
    """What the organisation received, so tests and benchmarks can prove "exactly once"."""

    organization = models.OneToOneField(
        SandboxOrganization, on_delete=models.CASCADE, primary_key=True, related_name="counters"
    )
    requests_total = models.PositiveBigIntegerField(default=0)
    writes_total = models.PositiveBigIntegerField(default=0)
    transactions_received = models.PositiveBigIntegerField(default=0)
    duplicate_submissions = models.PositiveBigIntegerField(default=0)
    contacts_created = models.PositiveBigIntegerField(default=0)
    gifts_created = models.PositiveBigIntegerField(default=0)
    webhooks_sent = models.PositiveBigIntegerField(default=0)
    webhooks_failed = models.PositiveBigIntegerField(default=0)
    rate_limited_responses = models.PositiveBigIntegerField(default=0)
    faults_injected = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "sandbox counters"

    def __str__(self) -> str:
        return f"Counters of organisation #{self.organization_id}"

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_FIELDS}


class SandboxRateWindow(models.Model):
    """Requests counted in one fixed window (epoch-aligned start, in Unix seconds)."""

    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    window_start = models.BigIntegerField()
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "window_start"], name="sandbox_one_window_row")
        ]

    def __str__(self) -> str:
        return f"{self.hits} hits from {self.window_start}"


class SandboxTransaction(models.Model):
    """A payload in the holding state ("Imports"), one per organisation+kind+source+external id."""

    class Kind(models.TextChoices):
        CONTACT = "contact", "Contact"
        GIFT = "gift", "Gift"

    class State(models.TextChoices):
        HELD = "held", "Held (waiting for the nightly batch)"
        PROCESSED = "processed", "Processed"
        NEEDS_UPDATE = "needs_update", "Needs update (no contact matched)"

    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=200)
    external_id = models.CharField(max_length=200)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    submit_count = models.PositiveIntegerField(default=1)
    result_id = models.BigIntegerField(null=True, blank=True, help_text="The contact or gift it produced.")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "source", "external_id"], name="sandbox_one_transaction"
            )
        ]
        indexes = [models.Index(fields=["organization", "state", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.source}/{self.external_id} ({self.state})"


class SandboxContact(models.Model):
    """A Contact (household/organisation); people are ``individuals`` with contact methods."""

    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    contact_type = models.CharField(max_length=64, default="Household")
    name = models.CharField(max_length=300)
    individuals = models.JSONField(default=list, blank=True)
    email = models.CharField(max_length=254, blank=True, help_text="Primary e-mail, lower case (matching).")
    address = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "email"]),
            models.Index(fields=["organization", "modified_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class SandboxContactReference(models.Model):
    """A ``(source, id)`` pair pointing at one contact of the organisation."""

    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(SandboxContact, on_delete=models.CASCADE, related_name="references")
    source = models.CharField(max_length=200)
    reference_id = models.CharField(max_length=200)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source", "reference_id"], name="sandbox_one_reference"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}/{self.reference_id}"


class SandboxGift(models.Model):
    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    transaction_source = models.CharField(max_length=200, blank=True)
    transaction_id = models.CharField(max_length=200, blank=True)
    contact = models.ForeignKey(SandboxContact, on_delete=models.PROTECT, related_name="gifts")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    gift_date = models.DateField()
    gift_type = models.CharField(max_length=64, default="Cash")
    currency = models.CharField(max_length=3, default="USD")
    batch = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    designations = models.JSONField(default=list, blank=True)
    recurring_gift_transaction_id = models.CharField(max_length=200, blank=True)
    reversed_gift = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "transaction_source", "transaction_id"],
                condition=~Q(transaction_id=""),
                name="sandbox_one_gift_per_transaction",
            )
        ]
        indexes = [models.Index(fields=["organization", "modified_at"])]

    def __str__(self) -> str:
        return f"Gift #{self.pk} {self.amount} {self.currency}"


class SandboxRecurringGift(models.Model):
    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(SandboxContact, on_delete=models.PROTECT, related_name="+")
    transaction_source = models.CharField(max_length=200, blank=True)
    transaction_id = models.CharField(max_length=200, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    frequency = models.CharField(max_length=32, default="Monthly")
    start_date = models.DateField()
    next_expected_payment_date = models.DateField(null=True, blank=True)
    designations = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, default="Active")
    cancel_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Recurring gift #{self.pk} {self.amount} {self.frequency}"


class SandboxWebhook(models.Model):
    """A webhook subscription: where to POST which events, signed with ``secret``."""

    organization = models.ForeignKey(SandboxOrganization, on_delete=models.CASCADE, related_name="+")
    payload_url = models.URLField(max_length=500)
    secret = models.CharField(max_length=500)
    active = models.BooleanField(default=True)
    toggles = models.JSONField(default=dict, help_text="The 15 event toggles, e.g. {'giftCreate': true}.")
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Webhook #{self.pk} → {self.payload_url}"
