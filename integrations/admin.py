"""Connections in the operations console, scoped to the user's tenants; secrets never shown."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Sum
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from integrations.common.connection_settings import SettingsInvalid
from integrations.models import Connection, RejectedDeliveryCount
from integrations.registry import provider_get, setup_steps_for
from integrations.virtuous.services import connection_webhook_url
from tenants.admin import TenantFilter, TenantScopedAdminMixin, actor_for
from tenants.services import audit_record


class ConnectionForm(forms.ModelForm):
    """Settings are checked against the provider's declared schema, one message per bad key."""

    class Meta:
        model = Connection
        fields = ("settings",)  # the admin adds the rest of its editable fields

    def clean_settings(self):
        raw = self.cleaned_data.get("settings")
        try:
            return provider_get(self.instance.provider).settings_schema.validate(raw)
        except SettingsInvalid as exc:
            raise forms.ValidationError(
                [forms.ValidationError(f"{name}: {message}") for name, message in exc.errors.items()]
            ) from exc


@admin.register(Connection)
class ConnectionAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ConnectionForm
    list_display = (
        "tenant",
        "provider",
        "name",
        "capture_mode",
        "is_active",
        "last_success_at",
        "last_error",
    )
    list_filter = (TenantFilter, "provider", "capture_mode", "is_active")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("name", "=public_id")
    readonly_fields = (
        "public_id",
        "tenant",
        "provider",
        "webhook_url",
        "setup_steps",
        "settings_reference",
        "rejected_last_day",
        "consecutive_failures",
        "paused_until",
        "last_poll_at",
        "last_success_at",
        "last_error",
        "created_at",
    )
    fields = (
        *readonly_fields[:5],
        "name",
        "is_active",
        "capture_mode",
        "polling_role",
        "poll_interval_minutes",
        "backstop_interval_minutes",
        "source_name",
        "default_project_code",
        "project_code_map",
        "field_map",
        "settings",
        "settings_reference",
        *readonly_fields[6:],
    )

    def has_add_permission(self, request):
        return False  # connections are added by the onboarding flow, which also takes their secrets

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: Connection):
        url = connection_webhook_url(connection=obj, base_url=settings.PUBLIC_BASE_URL)
        return format_html(
            '<code id="webhook-url" style="user-select:all">{}</code> '
            '<button type="button" onclick="navigator.clipboard.writeText(document.getElementById(\'webhook-url\')'
            ".textContent);this.textContent='Copied'\">Copy</button>",
            url,
        )

    @admin.display(description="Steps on the provider's side")
    def setup_steps(self, obj: Connection):
        return format_html('<div style="white-space:pre-wrap">{}</div>', setup_steps_for(obj))

    @admin.display(description="Settings this provider takes")
    def settings_reference(self, obj: Connection):
        lines = provider_get(obj.provider).settings_schema.describe()
        if not lines:
            return "None."
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li><code>{}</code></li>", ((line,) for line in lines))
        )

    @admin.display(description="Rejected deliveries, last 24 h")
    def rejected_last_day(self, obj: Connection):
        totals = RejectedDeliveryCount.objects.filter(
            connection=obj, minute__gte=timezone.now() - timedelta(days=1)
        ).aggregate(received=Sum("received"), stored=Sum("stored"))
        received, stored = totals["received"] or 0, totals["stored"] or 0
        return f"{received} rejected, {stored} recorded as events, {received - stored} only counted (over the cap)"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.changed_data:
            audit_record(
                actor=actor_for(request),
                action="connection.updated",
                tenant=obj.tenant,
                target=obj,
                details={"fields": sorted(form.changed_data)},
            )


@admin.register(RejectedDeliveryCount)
class RejectedDeliveryCountAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Every rejected delivery is counted here per connection and minute, stored or not."""

    list_display = ("minute", "tenant", "connection", "received", "stored", "not_stored", "last_reason")
    list_filter = (TenantFilter,)
    list_select_related = ("tenant", "connection")
    date_hierarchy = "minute"
    ordering = ("-minute",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Only counted")
    def not_stored(self, obj: RejectedDeliveryCount) -> int:
        return obj.not_stored
