"""Tenants (nonprofit customer organisations), their encrypted credentials, and the audit log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


def _default_budget() -> int:
    return settings.VIRTUOUS_DEFAULT_HOURLY_BUDGET


def _default_headroom() -> int:
    return settings.VIRTUOUS_DEFAULT_BUDGET_HEADROOM_PERCENT


class Tenant(models.Model):
    """A nonprofit whose data Giftline keeps flowing into its Virtuous organisation."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    class InboundMode(models.TextChoices):
        OFF = "off", "Off"
        OBSERVE = "observe", "Observe (record only, change nothing)"
        FROM_ELSEWHERE = "from_elsewhere", "Apply changes made elsewhere only"
        FULL = "full", "Full two-way"

    class ConflictPolicy(models.TextChoices):
        VIRTUOUS_CANONICAL = "virtuous_canonical", "Virtuous is canonical"
        MOST_RECENT = "most_recent", "Most recent change wins"
        FIELD_OWNERSHIP = "field_ownership", "Per-field ownership"

    class SignatureEncoding(models.TextChoices):
        AUTO = "auto", "Hex or Base64"
        HEX = "hex", "Hex"
        BASE64 = "base64", "Base64"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    paused_reason = models.CharField(max_length=500, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    virtuous_base_url = models.URLField(
        blank=True, help_text="Leave blank for the production Virtuous API (settings.VIRTUOUS_BASE_URL)."
    )
    virtuous_org_name = models.CharField(max_length=200, blank=True)
    virtuous_time_zone = models.CharField(
        max_length=64, default="UTC", help_text="IANA name; Virtuous dates are in the organisation's zone."
    )
    source_name = models.CharField(
        max_length=64,
        default="Giftline",
        help_text="Marks every write we make (transactionSource/referenceSource) so inbound events "
        "from our own writes are recognised.",
    )
    virtuous_webhook_id = models.CharField(max_length=32, blank=True)
    # Virtuous has not published its webhook signature scheme, so how to read it is a setting.
    virtuous_signature_header = models.CharField(
        max_length=64,
        default="X-Virtuous-Signature",
        help_text="Header carrying the HMAC-SHA256 of the raw body on Virtuous webhook deliveries.",
    )
    virtuous_signature_encoding = models.CharField(
        max_length=8, choices=SignatureEncoding.choices, default=SignatureEncoding.AUTO
    )

    hourly_request_budget = models.PositiveIntegerField(
        default=_default_budget, help_text="Virtuous allows 5,000 requests/hour per organisation."
    )
    budget_headroom_percent = models.PositiveSmallIntegerField(
        default=_default_headroom,
        help_text="Share of the hourly budget left unused for the organisation's other integrations.",
    )
    bulk_reserve_percent = models.PositiveSmallIntegerField(
        default=20, help_text="Share of the usable budget that bulk imports never take (kept for live gifts)."
    )

    # Per-tenant feature flags and policies (real fields, changed in the admin, audited).
    batching_enabled = models.BooleanField(default=True)
    batch_size = models.PositiveSmallIntegerField(default=100)
    retry_base_seconds = models.PositiveIntegerField(default=1)
    retry_cap_seconds = models.PositiveIntegerField(default=3600)
    retry_max_attempts = models.PositiveSmallIntegerField(default=8)
    inbound_mode = models.CharField(max_length=16, choices=InboundMode.choices, default=InboundMode.OFF)
    conflict_policy = models.CharField(
        max_length=24, choices=ConflictPolicy.choices, default=ConflictPolicy.VIRTUOUS_CANONICAL
    )
    inbound_cooldown_seconds = models.PositiveIntegerField(default=300)

    # Retention overrides (blank = the platform default in settings, RETENTION_*_DAYS).
    retention_webhook_body_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days to keep webhook bodies of handled events and rejected deliveries. "
        "Blank: the platform default (30).",
    )
    retention_attempt_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days to keep Virtuous call attempts of finished items. Blank: the platform default (30).",
    )
    retention_dead_letter_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days to keep resolved dead letters (open ones are never purged). "
        "Blank: the platform default (90).",
    )

    alert_emails = models.TextField(blank=True, help_text="One address per line or comma-separated.")
    alert_webhook_url = models.URLField(blank=True, help_text="Optional Slack-style incoming webhook.")

    assigned_staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="assigned_tenants"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("view_all_tenants", "Can see every tenant, not only assigned ones")]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        super().clean()
        from tenants.virtuous_hosts import virtuous_base_url_validate

        virtuous_base_url_validate(self.virtuous_base_url)

    @property
    def usable_hourly_budget(self) -> int:
        """Requests/hour we allow ourselves after the safety headroom."""
        return self.hourly_request_budget * (100 - min(self.budget_headroom_percent, 100)) // 100

    @property
    def retention(self) -> dict[str, int]:
        """Days each purgeable kind of data is kept for this tenant (override, else default)."""
        return {
            "webhook_body_days": self.retention_webhook_body_days or settings.RETENTION_WEBHOOK_BODY_DAYS,
            "attempt_days": self.retention_attempt_days or settings.RETENTION_ATTEMPT_DAYS,
            "dead_letter_days": self.retention_dead_letter_days or settings.RETENTION_DEAD_LETTER_DAYS,
        }

    @property
    def alert_email_list(self) -> list[str]:
        return [a.strip() for a in self.alert_emails.replace("\n", ",").split(",") if a.strip()]


class Credential(models.Model):
    """One secret of a tenant, encrypted at rest with the MultiFernet keys in settings.

    The plaintext never leaves ``tenants.crypto``/``tenants.selectors``: the admin shows only
    that it is set, when, and its last four characters. States let a rotation overlap: the new
    secret is added as ``pending`` (accepted for verification), then activated, retiring the old.
    """

    class Platform:
        """Platforms are the providers' and are validated against the provider registry
        (``tenants.platforms``); only Virtuous, whose token onboarding stores, is named here."""

        VIRTUOUS = "virtuous"

    class Purpose(models.TextChoices):
        API_TOKEN = "api_token", "API token / key"
        WEBHOOK_SECRET = "webhook_secret", "Webhook signing secret"
        OAUTH_CLIENT_SECRET = "oauth_client_secret", "OAuth client secret"
        OAUTH_ACCESS_TOKEN = "oauth_access_token", "OAuth access token"
        OAUTH_REFRESH_TOKEN = "oauth_refresh_token", "OAuth refresh token"

    class State(models.TextChoices):
        PENDING = "pending", "Pending (accepted, not yet primary)"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="credentials")
    platform = models.CharField(
        max_length=32,
        help_text="A provider's credential platform (settings.CREDENTIAL_PLATFORMS lists them).",
    )
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    scope = models.CharField(
        max_length=64, blank=True, help_text="Narrows a credential to one connection (its public id)."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    ciphertext = models.TextField(editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "platform", "purpose", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "platform", "purpose", "scope"],
                condition=Q(state="active"),
                name="credential_one_active",
            ),
            models.UniqueConstraint(
                fields=["tenant", "platform", "purpose", "scope"],
                condition=Q(state="pending"),
                name="credential_one_pending",
            ),
        ]

    def __str__(self) -> str:
        scope = f"/{self.scope}" if self.scope else ""
        return f"{self.platform}:{self.purpose}{scope} ({self.state}, …{self.last4})"

    def __repr__(self) -> str:  # never include the ciphertext or the value
        return f"<Credential {self.public_id} {self}>"


class AuditEvent(models.Model):
    """Append-only record of a state change someone may ask about later. Never holds secrets."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    tenant_slug = models.CharField(max_length=63, blank=True, help_text="Kept if the tenant is deleted.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=32, default="system", help_text="admin, cli, system, …")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target_type}:{self.target_id}"
