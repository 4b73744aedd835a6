"""Tenant and credential admin for customer-success staff.

Secrets are write-only: the form takes a new value and hands it to ``credential_set``; pages
show only that a secret is set, when, and its last four characters. Staff see the tenants they
are assigned to; integration admins (``tenants.view_all_tenants``) see all.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import models
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from tenants import selectors, services
from tenants.models import AuditEvent, Credential, Tenant
from tenants.platforms import credential_platforms, credential_scope_check, credential_scope_choices


def actor_for(request: HttpRequest) -> services.Actor:
    return services.Actor(user=request.user, via="admin")


class TenantScopedAdminMixin:
    """Restrict every queryset (and so every change page) to the user's tenants."""

    tenant_field = "tenant"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if selectors.user_sees_all_tenants(request.user):
            return qs
        return qs.filter(**{f"{self.tenant_field}__in": selectors.tenant_list(user=request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            kwargs["queryset"] = selectors.tenant_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyMixin:
    """Log tables: viewable, never added, edited or deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BoundedCountPaginator(Paginator):
    """Counts at most ``LIMIT`` rows (a LIMITed subquery), so a big log never runs COUNT(*) in full.

    Pages past the bound are still reachable with ?p=; the changelist just stops numbering there.
    """

    LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.LIMIT].count()


class TenantFilter(admin.SimpleListFilter):
    """Filter by tenant, offering only the tenants the user may see."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        return [(str(t.public_id), t.name) for t in selectors.tenant_list(user=request.user)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tenant__public_id=self.value())
        return queryset


class AgeFilter(admin.SimpleListFilter):
    """Rows by age of ``age_field`` (set by subclasses): recent ones, or old ones left behind."""

    title = "age"
    parameter_name = "age"
    age_field = "created_at"
    BUCKETS = {
        "1h": (None, timedelta(hours=1)),
        "24h": (None, timedelta(hours=24)),
        "7d": (None, timedelta(days=7)),
        "older7d": (timedelta(days=7), None),
    }

    def lookups(self, request, model_admin):
        return [
            ("1h", "Last hour"),
            ("24h", "Last 24 hours"),
            ("7d", "Last 7 days"),
            ("older7d", "Older than 7 days"),
        ]

    def queryset(self, request, queryset):
        if self.value() not in self.BUCKETS:
            return queryset
        older_than, newer_than = self.BUCKETS[self.value()]
        now = timezone.now()
        if newer_than is not None:
            queryset = queryset.filter(**{f"{self.age_field}__gte": now - newer_than})
        if older_than is not None:
            queryset = queryset.filter(**{f"{self.age_field}__lt": now - older_than})
        return queryset


class TenantAdminForm(forms.ModelForm):
    """The tenant form, with the API token asked again whenever the Virtuous base URL changes."""

    virtuous_api_token = forms.CharField(
        required=False,
        label="Virtuous API token",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Required when you change the Virtuous base URL: the stored token is never sent to a "
        "new host. Write-only; leave blank otherwise.",
    )

    # No Meta: the admin builds the form for Tenant with the fields of its fieldsets.

    def clean(self):
        cleaned = super().clean()
        if (
            self.instance.pk
            and "virtuous_base_url" in self.changed_data
            and not (cleaned.get("virtuous_api_token") or "").strip()
        ):
            self.add_error(
                "virtuous_api_token", "Enter the Virtuous API token for the new base URL to change it."
            )
        return cleaned


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "slug", "status", "hourly_request_budget", "inbound_mode", "created_at")
    list_filter = ("status", "inbound_mode", "batching_enabled")
    search_fields = ("name", "slug", "public_id", "virtuous_org_name")
    readonly_fields = ("public_id", "paused_at", "created_at", "updated_at", "virtuous_webhook_id")
    filter_horizontal = ("assigned_staff",)
    actions = ("pause_tenants", "resume_tenants")
    fieldsets = (
        (None, {"fields": ("name", "slug", "public_id", "status", "paused_reason", "paused_at")}),
        (
            "Virtuous",
            {
                "fields": (
                    "virtuous_base_url",
                    "virtuous_api_token",
                    "virtuous_org_name",
                    "virtuous_time_zone",
                    "source_name",
                    "virtuous_webhook_id",
                    "virtuous_signature_header",
                    "virtuous_signature_encoding",
                )
            },
        ),
        (
            "Rate budget",
            {"fields": ("hourly_request_budget", "budget_headroom_percent", "bulk_reserve_percent")},
        ),
        (
            "Sync behaviour",
            {
                "fields": (
                    "batching_enabled",
                    "batch_size",
                    ("retry_base_seconds", "retry_cap_seconds", "retry_max_attempts"),
                    "inbound_mode",
                    "conflict_policy",
                    "inbound_cooldown_seconds",
                )
            },
        ),
        ("Alerts", {"fields": ("alert_emails", "alert_webhook_url")}),
        (
            "Retention (blank: platform default)",
            {
                "fields": (
                    "retention_webhook_body_days",
                    "retention_attempt_days",
                    "retention_dead_letter_days",
                )
            },
        ),
        ("Access", {"fields": ("assigned_staff",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return selectors.tenant_list(user=request.user)

    def save_model(self, request, obj, form, change):
        actor = actor_for(request)
        if not change:
            obj.save()
            services.audit_record(actor=actor, action="tenant.created", tenant=obj, target=obj)
            if (form.cleaned_data.get("virtuous_api_token") or "").strip():
                services.credential_set(
                    tenant=obj,
                    platform=Credential.Platform.VIRTUOUS,
                    purpose=Credential.Purpose.API_TOKEN,
                    secret=form.cleaned_data["virtuous_api_token"],
                    actor=actor,
                )
            return
        changed = {
            f: form.cleaned_data[f]
            for f in form.changed_data
            if f in form.cleaned_data
            and f not in ("assigned_staff", "virtuous_api_token", "virtuous_base_url")
        }
        if "virtuous_base_url" in form.changed_data:
            services.tenant_virtuous_url_change(
                tenant=Tenant.objects.get(pk=obj.pk),
                base_url=form.cleaned_data["virtuous_base_url"],
                api_token=form.cleaned_data["virtuous_api_token"],
                actor=actor,
            )
        if changed:
            services.tenant_update(tenant=Tenant.objects.get(pk=obj.pk), actor=actor, changes=changed)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if "assigned_staff" in form.changed_data:
            services.audit_record(
                actor=actor_for(request),
                action="tenant.staff_assigned",
                tenant=form.instance,
                target=form.instance,
                details={"staff": sorted(u.get_username() for u in form.instance.assigned_staff.all())},
            )

    @admin.action(description="Pause selected tenants")
    def pause_tenants(self, request, queryset):
        n = sum(
            services.tenant_pause(
                tenant=t,
                reason=f"Paused by {request.user.get_username()} in the admin",
                actor=actor_for(request),
            )
            for t in queryset
        )
        self.message_user(request, f"Paused {n} tenant(s).", messages.SUCCESS)

    @admin.action(description="Resume selected tenants")
    def resume_tenants(self, request, queryset):
        n = sum(services.tenant_resume(tenant=t, actor=actor_for(request)) for t in queryset)
        self.message_user(request, f"Resumed {n} tenant(s).", messages.SUCCESS)


class CredentialForm(forms.ModelForm):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        strip=True,
        help_text="Write-only: it is encrypted on save and never shown again.",
    )
    activate = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Untick to add it as pending (accepted beside the current one during a rotation).",
    )

    class Meta:
        model = Credential
        fields = ("tenant", "platform", "purpose", "scope", "expires_at")

    tenants: list[Tenant] = []  # the user's tenants, set by the admin per request

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The platforms are the providers' (settings.CREDENTIAL_PLATFORMS), not model choices.
        self.platforms = credential_platforms()
        self.fields["platform"] = forms.ChoiceField(
            choices=[("", "---------"), *sorted(self.platforms.items())]
        )
        # A connection's secret is chosen by the connection's name, grouped by tenant, never typed
        # as a UUID; the connections come from settings.CREDENTIAL_SCOPES (tenants knows no provider).
        self.scopes = credential_scope_choices(tenants=self.tenants)
        groups = [
            (tenant.name, [(scope, label) for scope, label, _ in self.scopes[tenant.pk]])
            for tenant in self.tenants
            if self.scopes.get(tenant.pk)
        ]
        self.fields["scope"] = forms.ChoiceField(
            label="Connection",
            required=False,
            choices=[("", "None: a tenant-wide secret (Virtuous)"), *groups],
            help_text="The connection this secret belongs to, listed under its tenant. Virtuous's "
            "secrets belong to the whole tenant.",
        )

    def clean(self):
        data = super().clean()
        tenant, platform, scope = data.get("tenant"), data.get("platform"), data.get("scope") or ""
        if tenant is None or not platform or self.errors:
            return data
        label = self.platforms.get(platform, platform)
        owned = {s: (name, plat) for s, name, plat in self.scopes.get(tenant.pk, [])}
        if scope and scope not in owned:
            self.add_error("scope", f"That connection is not {tenant.name}'s: choose one listed under it.")
        elif scope and owned[scope][1] != platform:
            self.add_error(
                "scope",
                f"{owned[scope][0]} takes {self.platforms.get(owned[scope][1])} secrets: "
                f"choose that platform, or a {label} connection.",
            )
        elif not scope and platform != Credential.Platform.VIRTUOUS:
            names = [name for name, plat in owned.values() if plat == platform]
            self.add_error(
                "scope",
                f"A {label} secret belongs to one connection: choose which ({'; '.join(names)})."
                if names
                else f"{tenant.name} has no {label} connection yet: add it on the onboarding page, "
                "which takes its secrets too.",
            )
        else:
            try:
                credential_scope_check(tenant=tenant, platform=platform, purpose=data["purpose"], scope=scope)
            except ValueError as exc:
                self.add_error("scope", str(exc))
        return data


@admin.register(Credential)
class CredentialAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("tenant", "platform", "purpose", "scope", "state", "masked_value", "created_at", "set_by")
    list_filter = ("platform", "purpose", "state")
    list_select_related = ("tenant", "set_by")
    search_fields = ("tenant__slug", "tenant__name", "scope")
    actions = ("activate_credentials", "retire_credentials")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            tenants = list(selectors.tenant_list(user=request.user))
            kwargs["form"] = type("CredentialForm", (CredentialForm,), {"tenants": tenants})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("tenant", "platform", "purpose", "scope", "secret", "activate", "expires_at")
        return (
            "tenant",
            "platform",
            "purpose",
            "connection",
            "state",
            "masked_value",
            "expires_at",
            "created_at",
            "activated_at",
            "retired_at",
            "set_by",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return self.get_fields(request, obj)

    @admin.display(description="Connection")
    def connection(self, obj: Credential) -> str:
        if not obj.scope:
            return "None (tenant-wide)"
        names = {
            scope: label
            for scope, label, _ in credential_scope_choices(tenants=[obj.tenant]).get(obj.tenant_id, [])
        }
        return names.get(obj.scope, f"{obj.scope} (no such connection any more)")

    @admin.display(description="Value")
    def masked_value(self, obj: Credential) -> str:
        return f"set ••••{obj.last4}" if obj.last4 else "set"

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing is editable on an existing credential; rotate by adding a new one
        credential = services.credential_set(
            tenant=form.cleaned_data["tenant"],
            platform=form.cleaned_data["platform"],
            purpose=form.cleaned_data["purpose"],
            scope=form.cleaned_data.get("scope") or "",
            secret=form.cleaned_data["secret"],
            activate=form.cleaned_data.get("activate", True),
            expires_at=form.cleaned_data.get("expires_at"),
            actor=actor_for(request),
        )
        obj.pk = credential.pk
        obj.public_id = credential.public_id

    @admin.action(description="Activate selected pending credentials")
    def activate_credentials(self, request, queryset):
        n = 0
        for cred in queryset.filter(state=Credential.State.PENDING):
            services.credential_activate(credential=cred, actor=actor_for(request))
            n += 1
        self.message_user(request, f"Activated {n} credential(s).", messages.SUCCESS)

    @admin.action(description="Retire selected credentials")
    def retire_credentials(self, request, queryset):
        n = 0
        for cred in queryset.exclude(state=Credential.State.RETIRED):
            services.credential_retire(credential=cred, actor=actor_for(request))
            n += 1
        self.message_user(request, f"Retired {n} credential(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "tenant_slug", "action", "target_type", "target_id", "actor", "via")
    list_filter = ("action", "via")
    list_select_related = ("tenant", "actor")
    search_fields = ("tenant_slug", "action", "target_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
