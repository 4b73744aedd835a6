"""Connections in the operations console, scoped to the user's tenants; secrets never shown."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from integrations.common.connection_settings import SettingsInvalid
from integrations.models import Connection, RejectedDeliveryCount
from integrations.project_maps import ProjectMapInvalid, connection_project_map_update, project_map_clean
from integrations.registry import provider_get, setup_steps_for
from integrations.virtuous.services import connection_webhook_url
from tenants.admin import TenantFilter, TenantScopedAdminMixin, actor_for
from tenants.services import audit_record

BLANK_MAP_ROWS = 3


class MapRowsWidget(forms.Widget):
    """A map edited as rows of two text boxes and a Remove box; a button adds rows in the browser."""

    template_name = "admin/integrations/connection/map_rows_widget.html"

    def __init__(self, key_label: str, value_label: str, attrs=None):
        super().__init__(attrs)
        self.key_label, self.value_label = key_label, value_label

    def format_value(self, value):
        # A dict from the database, or the rows as typed when the form comes back with errors.
        rows = sorted(value.items()) if isinstance(value, dict) else list(value or [])
        return [*rows, *[("", "")] * BLANK_MAP_ROWS]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"].update(key_label=self.key_label, value_label=self.value_label)
        return context

    def render(self, name, value, attrs=None, renderer=None):
        # The project's template directory, not the form renderer's (which sees only app templates).
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))

    def value_from_datadict(self, data, files, name):
        keys, values = data.getlist(f"{name}-key"), data.getlist(f"{name}-value")
        removed = set(data.getlist(f"{name}-remove"))
        return [(k, v) for i, (k, v) in enumerate(zip(keys, values, strict=False)) if str(i) not in removed]

    def value_omitted_from_data(self, data, files, name):
        return f"{name}-key" not in data


class ProjectMapField(forms.Field):
    """The rows, checked by the same rules as the ``connection_maps`` command, become the map."""

    def __init__(self, *, help_text: str = "", **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(
            widget=MapRowsWidget("Source campaign or form id", "Virtuous project code"),
            help_text=help_text,
            **kwargs,
        )

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        try:
            return project_map_clean(value or [])
        except ProjectMapInvalid as exc:
            raise forms.ValidationError([forms.ValidationError(e) for e in exc.errors]) from exc


class ConnectionForm(forms.ModelForm):
    """Settings are checked against the provider's declared schema, one message per bad key."""

    class Meta:
        model = Connection
        fields = ("settings",)  # the admin adds the rest of its editable fields

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "project_code_map" in self.fields:
            help_text = provider_get(self.instance.provider).project_key_help
            self.fields["project_code_map"] = ProjectMapField(
                label="Project map",
                help_text=f"Left: {help_text} Right: the Virtuous project code its donations go to. "
                "Tick Remove to delete a row; a donation matching no row goes to the default project.",
            )

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
        "settings",
        "settings_reference",
        *readonly_fields[6:],
    )

    def has_add_permission(self, request):
        return False  # connections are added by the onboarding flow, which also takes their secrets

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not provider_get(obj.provider).project_key_help:
            # Contacts-only platforms (and Virtuous itself) send no donations: nothing to map.
            fields = [f for f in fields if f not in ("default_project_code", "project_code_map")]
        return fields

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
        # The project map and default project change through their service (validated, audited
        # with the diff); the form's other fields are saved here.
        map_fields = {"project_code_map", "default_project_code"} & set(form.changed_data)
        if map_fields:
            obj.project_code_map = form.initial.get("project_code_map") or {}
            obj.default_project_code = form.initial.get("default_project_code") or ""
        super().save_model(request, obj, form, change)
        if map_fields:
            connection_project_map_update(
                connection=obj,
                actor=actor_for(request),
                rows=form.cleaned_data.get("project_code_map", obj.project_code_map),
                default_project_code=form.cleaned_data.get("default_project_code", obj.default_project_code),
            )
        other = sorted(set(form.changed_data) - map_fields)
        if other:
            audit_record(
                actor=actor_for(request),
                action="connection.updated",
                tenant=obj.tenant,
                target=obj,
                details={"fields": other},
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
