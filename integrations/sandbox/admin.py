"""Admin for the sandbox: organisations with editable fault knobs, read-only counters and the
"Run nightly batch now" button; the records it holds are browsable but read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html_join

from integrations.sandbox import limits, services
from integrations.sandbox.models import (
    COUNTER_FIELDS,
    SandboxContact,
    SandboxCounters,
    SandboxGift,
    SandboxOrganization,
    SandboxTransaction,
    SandboxWebhook,
)

FAULT_FIELDSET = (
    ("error_rate", "error_statuses"),
    "added_latency_ms",
    ("timeout_rate", "timeout_seconds"),
    "error_after_rate",
    ("storm_until", "storm_retry_after"),
)


@admin.register(SandboxOrganization)
class SandboxOrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "pk", "rate_limit", "window_seconds", "error_rate", "storm_until", "requests")
    list_select_related = ("counters",)
    readonly_fields = ("token_last4", "counters_table", "created_at")
    actions = ("run_batch", "reset_counters", "regenerate_token")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": ("name", "time_zone", "rate_limit", "window_seconds")}),)
        return (
            (None, {"fields": ("name", "time_zone", "token_last4", "created_at")}),
            ("Rate limit", {"fields": ("rate_limit", "window_seconds")}),
            ("Fault injection", {"fields": FAULT_FIELDSET}),
            (
                "Webhooks",
                {
                    "fields": (
                        "webhook_signature_header",
                        "webhook_signature_encoding",
                        "webhook_payload_style",
                    )
                },
            ),
            ("Counters", {"fields": ("counters_table",)}),
        )

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        organization, token = services.sandbox_org_create(
            name=obj.name,
            time_zone=obj.time_zone,
            rate_limit=obj.rate_limit,
            window_seconds=obj.window_seconds,
        )
        obj.pk = organization.pk
        self.message_user(request, f"Token for {organization.name} (shown once): {token}", messages.WARNING)

    @admin.display(description="Requests")
    def requests(self, obj: SandboxOrganization) -> int:
        return obj.counters.requests_total

    @admin.display(description="Counters")
    def counters_table(self, obj: SandboxOrganization):
        counters = SandboxCounters.objects.get(pk=obj.pk)
        return format_html_join(
            "", "<div>{}: <b>{}</b></div>", ((n, getattr(counters, n)) for n in COUNTER_FIELDS)
        )

    @admin.action(description="Run nightly batch now")
    def run_batch(self, request, queryset):
        for organization in queryset:
            result = services.sandbox_batch_run(organization=organization)
            summary = ", ".join(f"{k}={v}" for k, v in result.items())
            self.message_user(request, f"{organization.name}: {summary}", messages.SUCCESS)

    @admin.action(description="Reset counters")
    def reset_counters(self, request, queryset):
        for organization in queryset:
            limits.counters_reset(organization=organization)
        self.message_user(
            request, f"Reset the counters of {queryset.count()} organisation(s).", messages.SUCCESS
        )

    @admin.action(description="Regenerate token (shown once)")
    def regenerate_token(self, request, queryset):
        for organization in queryset:
            token = services.sandbox_org_token_regenerate(organization=organization)
            self.message_user(request, f"New token for {organization.name}: {token}", messages.WARNING)


class ReadOnlyAdmin(admin.ModelAdmin):
    list_filter = ("organization",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SandboxTransaction)
class SandboxTransactionAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "organization",
        "kind",
        "source",
        "external_id",
        "state",
        "submit_count",
        "received_at",
    )
    list_filter = ("organization", "kind", "state")
    search_fields = ("external_id", "source")


@admin.register(SandboxContact)
class SandboxContactAdmin(ReadOnlyAdmin):
    list_display = ("pk", "organization", "name", "email", "archived", "merged_into", "modified_at")
    search_fields = ("name", "email")


@admin.register(SandboxGift)
class SandboxGiftAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "organization",
        "transaction_source",
        "transaction_id",
        "contact",
        "amount",
        "gift_date",
    )
    search_fields = ("transaction_id",)


@admin.register(SandboxWebhook)
class SandboxWebhookAdmin(ReadOnlyAdmin):
    list_display = ("pk", "organization", "payload_url", "active", "modified_at")
    exclude = ("secret",)
