"""The operations console: tenant health, onboarding and offboarding, dead letters, the sync logs.

Every page is scoped to the user's tenants (``TenantScopedAdminMixin`` or ``selectors.tenant_list``);
every button and action calls a service and reports counts. Risky bulk actions render a
confirmation page first (the action runs again with ``post=yes`` once confirmed).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from integrations.models import Connection, InboundEvent
from integrations.registry import provider_get, provider_keys
from integrations.services import connection_onboard
from integrations.virtuous.errors import VirtuousError
from integrations.virtuous.services import (
    connection_webhook_url,
    virtuous_subscription_create,
    virtuous_tenant_onboard,
)
from sync import selectors as sync_selectors
from sync.inbound.checkpoints import checkpoint_reset
from sync.inbound.replay import REPLAYABLE_STATUSES, inbound_events_replay
from sync.models import (
    Alert,
    Attempt,
    DeadLetter,
    ImportRun,
    OutboundItem,
    ReconciliationLog,
    SyncCheckpoint,
    SyncRecord,
    TenantHealth,
    VirtuousContactMirror,
    VirtuousGiftMirror,
    VirtuousRecurringGiftMirror,
)
from sync.ops.imports.files import ImportStopped
from sync.ops.imports.signoff import import_run_signoff_store, import_signoff, signoff_csv_write
from sync.ops.offboard import DATA_ANONYMISE, DATA_DELETE, OffboardError, tenant_offboard
from sync.ops.parity import parity_report
from sync.outbound.confirm import outbound_reconcile_submitted
from sync.outbound.deadletters import DeadLetterError, dead_letter_discard, dead_letter_replay
from sync.pii import mask_pii, user_sees_pii
from sync.two_way.mirror import EXPORT_COLUMNS
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.admin import (
    AgeFilter,
    BoundedCountPaginator,
    ReadOnlyMixin,
    TenantFilter,
    TenantScopedAdminMixin,
    actor_for,
)
from tenants.models import Credential, Tenant

# The initial import is being built elsewhere: set this to a callable (tenant, actor) -> message
# and the onboarding page shows a "Start initial import" button that calls it.
initial_import_start: Callable[[Tenant, tenant_services.Actor], str] | None = None


def _pretty(value) -> str:
    return format_html(
        "<pre class='payload'>{}</pre>",
        json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False),
    )


def _payload_for(request, payload):
    """The payload as shown to this user: donor data masked without ``sync.view_donor_pii``."""
    return _pretty(payload if user_sees_pii(request.user) else mask_pii(payload))


def _confirmation(request, model_admin, queryset, *, action: str, title: str, question: str, form=None):
    """The intermediate page of a bulk action; confirming re-posts the action with post=yes."""
    return TemplateResponse(
        request,
        "admin/sync/action_confirmation.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "question": question,
            "objects": list(queryset[:200]),
            "count": queryset.count(),
            "action": action,
            "form": form,
            "opts": model_admin.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        },
    )


# --- dead letters ------------------------------------------------------------------------------


class StatusCodeFilter(admin.SimpleListFilter):
    title = "status code"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("400", "400 Bad request"),
            ("401", "401 Unauthorised"),
            ("403", "403 Forbidden"),
            ("404", "404 Not found"),
            ("409", "409 Conflict"),
            ("422", "422 Unprocessable"),
            ("429", "429 Too many requests"),
            ("5xx", "5xx Server error"),
            ("none", "No response"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "5xx":
            return queryset.filter(status_code__gte=500, status_code__lt=600)
        if value == "none":
            return queryset.filter(status_code__isnull=True)
        if value:
            return queryset.filter(status_code=int(value))
        return queryset


class DiscardForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text="Required: someone will ask why."
    )


class FixForm(forms.Form):
    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"})
    )
    note = forms.CharField(max_length=500, required=False, help_text="What was wrong and what you changed.")

    def clean_payload(self):
        try:
            value = json.loads(self.cleaned_data["payload"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The payload must be a JSON object.")
        return value


@admin.register(DeadLetter)
class DeadLetterAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "operation_type",
        "status_code",
        "error_class",
        "short_error",
        "attempt_count",
        "resolution",
        "resolved_by",
        "resolved_at",
    )
    list_filter = (TenantFilter, "operation_type", StatusCodeFilter, "error_class", AgeFilter, "resolution")
    list_select_related = ("tenant", "resolved_by")
    raw_id_fields = ("tenant", "item", "resolved_by")
    search_fields = ("public_id", "item__external_id", "last_error")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    actions = ("replay_selected", "discard_selected")
    fields = (
        "public_id",
        "tenant",
        "item_link",
        "operation_type",
        "status_code",
        "error_class",
        "attempt_count",
        "last_error",
        "error_details_display",
        "resolution",
        "resolution_note",
        "resolved_by",
        "resolved_at",
        "created_at",
    )
    readonly_fields = fields
    change_form_template = "admin/sync/deadletter/change_form.html"

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("sync.change_deadletter")

    @admin.display(description="Error")
    def short_error(self, obj: DeadLetter) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.display(description="Queue item")
    def item_link(self, obj: DeadLetter):
        if obj.item_id is None:
            return "—"
        url = reverse("admin:sync_outbounditem_change", args=[obj.item_id])
        return format_html(
            '<a href="{}">{} ({})</a>', url, obj.item.external_id, obj.item.get_state_display()
        )

    @admin.display(description="Error details from Virtuous")
    def error_details_display(self, obj: DeadLetter):
        return _pretty(obj.error_details)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {
            "payload_html": _payload_for(
                request, obj.item.payload if obj and obj.item_id else getattr(obj, "original_payload", {})
            ),
            "can_resolve": obj is not None
            and obj.resolution == DeadLetter.Resolution.OPEN
            and self.has_resolve_permission(request),
            "can_fix": user_sees_pii(request.user),
            "pii_masked": not user_sees_pii(request.user),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:public_id>/replay/", wrap(self.replay_view), name="sync_deadletter_replay"),
            path("<uuid:public_id>/fix/", wrap(self.fix_view), name="sync_deadletter_fix"),
            path("<uuid:public_id>/discard/", wrap(self.discard_view), name="sync_deadletter_discard"),
            *super().get_urls(),
        ]

    def _get_open(self, request, public_id) -> DeadLetter:
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        return get_object_or_404(
            self.get_queryset(request).select_related("item", "tenant"), public_id=public_id
        )

    def _back(self, dl: DeadLetter):
        return HttpResponseRedirect(reverse("admin:sync_deadletter_change", args=[dl.pk]))

    def replay_view(self, request, public_id):
        dl = self._get_open(request, public_id)
        if request.method != "POST":
            return self._back(dl)
        try:
            dead_letter_replay(dead_letter=dl, actor=actor_for(request))
        except DeadLetterError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request, "Replayed 1 dead letter as-is: the item is back in the queue.", messages.SUCCESS
            )
        return self._back(dl)

    def fix_view(self, request, public_id):
        dl = self._get_open(request, public_id)
        if not user_sees_pii(request.user):
            raise PermissionDenied("Fixing a payload needs permission to see donor data.")
        payload = dl.item.payload if dl.item_id else dl.original_payload
        form = FixForm(request.POST or None, initial={"payload": json.dumps(payload, indent=2, default=str)})
        if request.method == "POST" and form.is_valid():
            try:
                dead_letter_replay(
                    dead_letter=dl,
                    actor=actor_for(request),
                    payload=form.cleaned_data["payload"],
                    note=form.cleaned_data["note"],
                )
            except DeadLetterError as exc:
                form.add_error("payload", str(exc))
            else:
                self.message_user(request, "Fixed and replayed 1 dead letter.", messages.SUCCESS)
                return self._back(dl)
        return TemplateResponse(
            request,
            "admin/sync/deadletter/fix.html",
            {
                **self.admin_site.each_context(request),
                "title": "Fix and replay",
                "dead_letter": dl,
                "form": form,
                "opts": self.model._meta,
                "error_details": _pretty(dl.error_details),
            },
        )

    def discard_view(self, request, public_id):
        dl = self._get_open(request, public_id)
        form = DiscardForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                dead_letter_discard(
                    dead_letter=dl, actor=actor_for(request), reason=form.cleaned_data["reason"]
                )
            except DeadLetterError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "Discarded 1 dead letter.", messages.SUCCESS)
            return self._back(dl)
        return TemplateResponse(
            request,
            "admin/sync/deadletter/discard.html",
            {
                **self.admin_site.each_context(request),
                "title": "Discard dead letter",
                "dead_letter": dl,
                "form": form,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Replay selected dead letters as-is", permissions=("resolve",))
    def replay_selected(self, request, queryset):
        queryset = queryset.filter(resolution=DeadLetter.Resolution.OPEN)
        if request.POST.get("post") != "yes":
            return _confirmation(
                request,
                self,
                queryset,
                action="replay_selected",
                title="Replay dead letters",
                question="Put these items back in the queue exactly as they were?",
            )
        done, failed = 0, 0
        for dl in queryset.select_related("item", "tenant"):
            try:
                dead_letter_replay(dead_letter=dl, actor=actor_for(request))
                done += 1
            except DeadLetterError:
                failed += 1
        self.message_user(
            request, f"Replayed {done} dead letter(s); {failed} could not be replayed.", messages.SUCCESS
        )
        return None

    @admin.action(description="Discard selected dead letters (with a reason)", permissions=("resolve",))
    def discard_selected(self, request, queryset):
        queryset = queryset.filter(resolution=DeadLetter.Resolution.OPEN)
        form = DiscardForm(request.POST if request.POST.get("post") == "yes" else None)
        if not form.is_valid():
            return _confirmation(
                request,
                self,
                queryset,
                action="discard_selected",
                title="Discard dead letters",
                question="Give up on these items for good? They will not be sent to Virtuous.",
                form=form,
            )
        done = 0
        for dl in queryset:
            try:
                dead_letter_discard(
                    dead_letter=dl, actor=actor_for(request), reason=form.cleaned_data["reason"]
                )
                done += 1
            except DeadLetterError:
                pass
        self.message_user(request, f"Discarded {done} dead letter(s).", messages.SUCCESS)
        return None


# --- the queue and the logs --------------------------------------------------------------------


class StaleFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [
            ("pending1h", "Pending for over an hour"),
            ("submitted24h", "Submitted over 24 h ago, unconfirmed"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "pending1h":
            return queryset.filter(state=OutboundItem.State.PENDING, created_at__lt=now - timedelta(hours=1))
        if self.value() == "submitted24h":
            return queryset.filter(
                state=OutboundItem.State.SUBMITTED, submitted_at__lt=now - timedelta(hours=24)
            )
        return queryset


@admin.register(OutboundItem)
class OutboundItemAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "operation",
        "external_id",
        "state",
        "origin",
        "attempts",
        "last_status_code",
        "virtuous_id",
        "confirmed_at",
    )
    list_filter = (TenantFilter, "state", "operation", "origin", StaleFilter, "last_error_class")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("=external_id", "=public_id", "=virtuous_id")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    exclude = ("payload",)
    change_form_template = "admin/sync/payload_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {"payload_html": _payload_for(request, obj.payload if obj else {})}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


@admin.register(Attempt)
class AttemptAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "method",
        "path",
        "status_code",
        "error_class",
        "item_count",
        "duration_ms",
    )
    list_filter = (TenantFilter, "error_class", "operation", StatusCodeFilter)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    show_full_result_count = False
    paginator = BoundedCountPaginator
    exclude = ("items",)


@admin.register(SyncRecord)
class SyncRecordAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "tenant",
        "resource_type",
        "partner_source",
        "partner_id",
        "virtuous_id",
        "status",
        "sync_state",
    )
    list_filter = (TenantFilter, "resource_type", "status", "sync_state")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("=partner_id", "=virtuous_id")
    show_full_result_count = False
    paginator = BoundedCountPaginator


@admin.register(Alert)
class AlertAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "kind",
        "subject",
        "suppressed_count",
        "delivered_at",
        "delivery_error",
    )
    list_filter = (TenantFilter, "kind")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)


class CheckpointResetForm(forms.Form):
    to = forms.DateTimeField(
        required=False, help_text="Blank: start from the beginning. Otherwise a moment to re-read from (UTC)."
    )


@admin.register(SyncCheckpoint)
class SyncCheckpointAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("tenant", "scope", "resource_type", "direction", "last_processed_timestamp", "updated_at")
    list_filter = (TenantFilter, "direction", "resource_type")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    actions = ("reset_checkpoints",)

    def has_reset_permission(self, request) -> bool:
        return request.user.has_perm("sync.change_synccheckpoint")

    @admin.action(description="Reset selected checkpoints", permissions=("reset",))
    def reset_checkpoints(self, request, queryset):
        form = CheckpointResetForm(request.POST if request.POST.get("post") == "yes" else None)
        if not form.is_valid():
            return _confirmation(
                request,
                self,
                queryset,
                action="reset_checkpoints",
                title="Reset checkpoints",
                question="The next poll re-reads from this point. Records already captured are not doubled, "
                "but re-reading costs requests.",
                form=form,
            )
        for checkpoint in queryset:
            checkpoint_reset(checkpoint=checkpoint, actor=actor_for(request), to=form.cleaned_data["to"])
        self.message_user(request, f"Reset {queryset.count()} checkpoint(s).", messages.SUCCESS)
        return None


# --- the raw inbound log ---------------------------------------------------------------------------


class ReceivedAgeFilter(AgeFilter):
    age_field = "received_at"


@admin.register(InboundEvent)
class InboundEventAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "tenant",
        "provider",
        "capture",
        "event_type",
        "status",
        "signature_valid",
        "attempts",
    )
    list_filter = (TenantFilter, "status", "provider", "capture", "signature_valid", ReceivedAgeFilter)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant", "connection")
    search_fields = ("=dedupe_key", "=public_id", "event_type")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    exclude = ("body",)
    actions = ("replay_events",)
    change_form_template = "admin/sync/payload_change_form.html"

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("integrations.change_inboundevent")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {
            "payload_html": _payload_for(request, _body(obj)) if obj else "",
            "pii_masked": not user_sees_pii(request.user),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.action(description="Replay selected events", permissions=("replay",))
    def replay_events(self, request, queryset):
        if request.POST.get("post") != "yes":
            return _confirmation(
                request,
                self,
                queryset,
                action="replay_events",
                title="Replay events",
                question="Send these events through processing again? Only processed, failed and needs-review "
                f"events are replayed ({', '.join(REPLAYABLE_STATUSES)}); processing is idempotent.",
            )
        n = inbound_events_replay(events=queryset, actor=actor_for(request))
        self.message_user(request, f"Queued {n} event(s) for replay.", messages.SUCCESS)
        return None


def _body(event: InboundEvent):
    """The stored body as JSON when it is JSON (so it can be masked), else a note of its size."""
    raw = bytes(event.body or b"")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"body": f"({len(raw)} bytes, not JSON)"}


# --- tenant health, onboarding, offboarding ----------------------------------------------------


class OnboardKeyForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="The customer's name as staff know it.")
    slug = forms.SlugField(max_length=63, help_text="Short id used by operators, e.g. 'harbor-food-bank'.")
    virtuous_base_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Leave blank for the production Virtuous API."
    )
    api_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The Virtuous API key the customer gave you. It is checked live, then stored encrypted.",
    )

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A tenant with this slug exists already.")
        return slug


class RolloutForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ("inbound_mode", "conflict_policy", "batching_enabled", "batch_size")


def connection_form_class(provider: str) -> type[forms.Form]:
    """A form with the provider's own fields: capture modes it supports, settings, write-only secrets."""
    spec = provider_get(provider)
    fields: dict[str, forms.Field] = {
        "name": forms.CharField(max_length=100, required=False),
        "capture_mode": forms.ChoiceField(
            choices=[(m, Connection.CaptureMode(m).label) for m in spec.capture_modes]
        ),
    }
    for key in spec.settings_fields:
        fields[f"setting_{key}"] = forms.CharField(label=key.replace("_", " ").capitalize(), required=False)
    for purpose in spec.secret_purposes:
        fields[f"secret_{purpose}"] = forms.CharField(
            label=Credential.Purpose(purpose).label,
            required=False,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            help_text="Write-only: stored encrypted, never shown again.",
        )
    return type(f"{provider.title()}ConnectionForm", (forms.Form,), fields)


class OffboardForm(forms.Form):
    data = forms.ChoiceField(
        choices=[
            (DATA_DELETE, "Delete the tenant's sync data"),
            (DATA_ANONYMISE, "Keep the rows, blank donor data"),
        ],
        widget=forms.RadioSelect,
        initial=DATA_DELETE,
    )
    confirm_slug = forms.CharField(help_text="Type the tenant's slug to confirm.")


@admin.register(TenantHealth)
class TenantHealthAdmin(admin.ModelAdmin):
    """Overview of all the user's tenants, a dashboard per tenant, and the onboarding flow."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return tenant_selectors.tenant_list(user=request.user)

    def _tenant(self, request, public_id) -> Tenant:
        try:
            return tenant_selectors.tenant_get(public_id=public_id, user=request.user)
        except Tenant.DoesNotExist as exc:
            raise Http404("No such tenant.") from exc

    def _render(self, request, template, title, **context):
        return TemplateResponse(
            request,
            f"admin/sync/tenanthealth/{template}",
            {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta, **context},
        )

    def _to_dashboard(self, tenant: Tenant):
        return HttpResponseRedirect(reverse("admin:sync_tenanthealth_change", args=[tenant.public_id]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.overview_view), name="sync_tenanthealth_changelist"),
            path("onboard/", wrap(self.onboard_view), name="sync_tenanthealth_onboard"),
            path("<uuid:public_id>/", wrap(self.dashboard_view), name="sync_tenanthealth_change"),
            path("<uuid:public_id>/setup/", wrap(self.setup_view), name="sync_tenanthealth_setup"),
            path("<uuid:public_id>/pause/", wrap(self.pause_view), name="sync_tenanthealth_pause"),
            path("<uuid:public_id>/resume/", wrap(self.resume_view), name="sync_tenanthealth_resume"),
            path(
                "<uuid:public_id>/reconcile/", wrap(self.reconcile_view), name="sync_tenanthealth_reconcile"
            ),
            path("<uuid:public_id>/offboard/", wrap(self.offboard_view), name="sync_tenanthealth_offboard"),
            path("<uuid:public_id>/parity/", wrap(self.parity_view), name="sync_tenanthealth_parity"),
        ]

    def parity_view(self, request, public_id):
        """Webhook vs poll captures of one connection over a chosen window (read-only)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = self._tenant(request, public_id)
        connections = list(Connection.objects.filter(tenant=tenant).order_by("provider", "pk"))
        chosen = next((c for c in connections if str(c.public_id) == request.GET.get("connection")), None)
        chosen = chosen or next((c for c in connections if c.provider == "virtuous"), None)
        try:
            days = min(max(float(request.GET.get("days", 7)), 0.01), 90.0)
        except ValueError:
            days = 7.0
        report = None
        if chosen is not None:
            until = timezone.now()
            report = parity_report(connection=chosen, since=until - timedelta(days=days), until=until)
        return self._render(
            request,
            "parity.html",
            f"Webhook/poll parity of {tenant.name}",
            tenant=tenant,
            connections=connections,
            chosen=chosen,
            days=days,
            report=report,
        )

    def overview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = sync_selectors.tenant_health_overview(tenants=self.get_queryset(request))
        return self._render(
            request,
            "overview.html",
            "Tenant health",
            rows=rows,
            can_onboard=request.user.has_perms(["tenants.add_tenant", "tenants.add_credential"]),
        )

    def dashboard_view(self, request, public_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = self._tenant(request, public_id)
        health = sync_selectors.tenant_health(tenant=tenant)
        return self._render(
            request,
            "dashboard.html",
            f"Health of {tenant.name}",
            tenant=tenant,
            health=health,
            can_operate=request.user.has_perm("tenants.change_tenant"),
            can_offboard=request.user.has_perm("tenants.delete_tenant"),
            can_setup=request.user.has_perm("tenants.add_credential"),
        )

    def _require(self, request, *perms: str):
        if not request.user.has_perms(perms):
            raise PermissionDenied

    def pause_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            reason = request.POST.get("reason", "").strip() or f"Paused by {request.user.get_username()}"
            n = tenant_services.tenant_pause(tenant=tenant, reason=reason, actor=actor_for(request))
            self.message_user(request, f"Paused {int(n)} tenant(s).", messages.SUCCESS)
        return self._to_dashboard(tenant)

    def resume_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            n = tenant_services.tenant_resume(tenant=tenant, actor=actor_for(request))
            self.message_user(request, f"Resumed {int(n)} tenant(s).", messages.SUCCESS)
        return self._to_dashboard(tenant)

    def reconcile_view(self, request, public_id):
        self._require(request, "tenants.change_tenant")
        tenant = self._tenant(request, public_id)
        if request.method == "POST":
            try:
                counts = outbound_reconcile_submitted(tenant=tenant)
            except VirtuousError as exc:
                self.message_user(request, f"Reconciliation could not run: {exc}", messages.ERROR)
            else:
                tenant_services.audit_record(
                    actor=actor_for(request),
                    action="tenant.reconciled",
                    tenant=tenant,
                    target=tenant,
                    details=counts,
                )
                self.message_user(
                    request,
                    "Reconciliation: checked {checked}, recovered {recovered}, still waiting {waiting}, "
                    "needs review {needs_review}.".format(**counts),
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(
            request.POST.get("next") or reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])
        )

    def onboard_view(self, request):
        self._require(request, "tenants.add_tenant", "tenants.add_credential")
        form = OnboardKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                tenant = virtuous_tenant_onboard(
                    slug=data["slug"],
                    name=data["name"],
                    api_key=data["api_key"],
                    base_url=data["virtuous_base_url"],
                    actor=actor_for(request),
                )
            except VirtuousError as exc:
                form.add_error("api_key", f"Virtuous refused this key: {exc}")
            else:
                self.message_user(
                    request,
                    f"Key accepted for {tenant.virtuous_org_name} (time zone {tenant.virtuous_time_zone}).",
                    messages.SUCCESS,
                )
                self._subscribe(request, tenant)
                return HttpResponseRedirect(reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id]))
        return self._render(request, "onboard.html", "Onboard a customer", form=form)

    def _subscribe(self, request, tenant: Tenant) -> None:
        try:
            virtuous_subscription_create(
                tenant=tenant, base_url=settings.PUBLIC_BASE_URL, actor=actor_for(request)
            )
        except VirtuousError as exc:
            self.message_user(request, f"The Virtuous webhook subscription failed: {exc}", messages.ERROR)
        else:
            self.message_user(request, "Created the Virtuous webhook subscription.", messages.SUCCESS)

    def setup_view(self, request, public_id):
        self._require(request, "tenants.change_tenant", "tenants.add_credential")
        tenant = self._tenant(request, public_id)
        provider = request.GET.get("provider") or request.POST.get("provider") or ""
        sources = [p for p in provider_keys() if provider_get(p).kind == "source"]
        if provider and provider not in sources:
            raise Http404("Unknown provider.")
        connection_form = (
            connection_form_class(provider)(
                request.POST if request.POST.get("step") == "connection" else None
            )
            if provider
            else None
        )
        rollout = RolloutForm(
            request.POST if request.POST.get("step") == "rollout" else None, instance=tenant
        )
        step = request.POST.get("step")
        if request.method == "POST":
            if step == "subscribe":
                self._subscribe(request, tenant)
                return HttpResponseRedirect(request.path)
            if step == "connection" and connection_form.is_valid():
                data = connection_form.cleaned_data
                try:
                    connection = connection_onboard(
                        tenant=tenant,
                        provider=provider,
                        capture_mode=data["capture_mode"],
                        name=data["name"],
                        settings={
                            k[len("setting_") :]: v for k, v in data.items() if k.startswith("setting_")
                        },
                        secrets={
                            k[len("secret_") :]: v for k, v in data.items() if k.startswith("secret_") and v
                        },
                        actor=actor_for(request),
                    )
                except ValueError as exc:
                    connection_form.add_error(None, str(exc))
                else:
                    self.message_user(
                        request, f"Added the {provider_get(provider).label} connection.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(f"{request.path}#connection-{connection.public_id}")
            if step == "rollout" and rollout.is_valid():
                tenant_services.tenant_update(
                    tenant=tenant,
                    actor=actor_for(request),
                    changes={f: rollout.cleaned_data[f] for f in rollout.changed_data},
                )
                self.message_user(request, f"Saved {len(rollout.changed_data)} setting(s).", messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        connections = [
            {
                "connection": c,
                "spec": provider_get(c.provider),
                "url": connection_webhook_url(connection=c, base_url=settings.PUBLIC_BASE_URL),
                "secrets": _secret_states(tenant, c),
            }
            for c in Connection.objects.filter(tenant=tenant).order_by("created_at")
        ]
        return self._render(
            request,
            "setup.html",
            f"Set up {tenant.name}",
            tenant=tenant,
            sources=[(p, provider_get(p).label) for p in sources],
            provider=provider,
            provider_label=provider_get(provider).label if provider else "",
            connection_form=connection_form,
            rollout=rollout,
            connections=connections,
            initial_import_available=initial_import_start is not None,
        )

    def offboard_view(self, request, public_id):
        self._require(request, "tenants.delete_tenant")
        tenant = self._tenant(request, public_id)
        form = OffboardForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if form.cleaned_data["confirm_slug"] != tenant.slug:
                form.add_error("confirm_slug", "That is not this tenant's slug.")
            else:
                try:
                    result = tenant_offboard(
                        tenant=tenant, actor=actor_for(request), data=form.cleaned_data["data"]
                    )
                except (OffboardError, VirtuousError) as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"Offboarded {tenant.name}: webhook {result.webhook}, {result.credentials_retired} "
                        f"credential(s) retired, {result.connections_stopped} connection(s) stopped, "
                        f"{sum(result.rows.values())} row(s) {form.cleaned_data['data']}d.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:sync_tenanthealth_changelist"))
        counts = {
            "connections": Connection.objects.filter(tenant=tenant).count(),
            "credentials": Credential.objects.filter(tenant=tenant)
            .exclude(state=Credential.State.RETIRED)
            .count(),
            "dead_letters": DeadLetter.objects.filter(tenant=tenant).aggregate(n=Count("id"))["n"],
        }
        return self._render(
            request, "offboard.html", f"Offboard {tenant.name}", tenant=tenant, form=form, counts=counts
        )


def _secret_states(tenant: Tenant, connection: Connection) -> list[tuple[str, bool]]:
    """Which of the connection's secrets are set (never their values or last digits)."""
    spec = provider_get(connection.provider)
    have = set(
        Credential.objects.filter(
            tenant=tenant,
            platform=spec.credential_platform,
            scope=connection.credential_scope,
            state=Credential.State.ACTIVE,
        ).values_list("purpose", flat=True)
    )
    return [(Credential.Purpose(p).label, p in have) for p in spec.secret_purposes]


# --- Bulk runs and the reconciliation log (historical import, initial reconciliation) ---


@admin.register(ImportRun)
class ImportRunAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("tenant", "kind", "source_label", "batch_label", "phase", "started_at", "finished_at")
    list_filter = ("kind", "phase")
    search_fields = ("source_label", "batch_label", "public_id")
    actions = ("signoff_csv",)

    @admin.action(description="Sign-off report (CSV): imported vs Virtuous per project")
    def signoff_csv(self, request, queryset):
        stream = io.StringIO()
        for run in queryset.filter(kind=ImportRun.Kind.HISTORICAL_GIFTS).select_related("tenant"):
            try:
                signoff = import_signoff(tenant=run.tenant, batch_label=run.batch_label, max_wait=0)
            except (ImportStopped, VirtuousError) as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)
                return None
            import_run_signoff_store(run=run, signoff=signoff)
            signoff_csv_write(signoff, stream)
        response = HttpResponse(stream.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="import-signoff.csv"'
        return response


@admin.register(ReconciliationLog)
class ReconciliationLogAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "category",
        "resource_type",
        "partner_id",
        "virtuous_id",
        "resolution",
    )
    list_filter = ("category", "resource_type")
    search_fields = ("partner_id", "virtuous_id", "resolution")


# --- the reporting mirror (Pattern 3): read-only, tenant-scoped, exportable ---------------


class MirrorAdmin(TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    resource = ""
    list_filter = (TenantFilter,)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("=virtuous_id",)
    show_full_result_count = False
    paginator = BoundedCountPaginator
    actions = ("export_csv",)
    exclude = ("record",)

    def get_readonly_fields(self, request, obj=None):
        def record_shown(row):
            return _payload_for(request, row.record)

        record_shown.short_description = "Record as Virtuous sent it"
        return (*super().get_readonly_fields(request, obj), record_shown)

    @admin.action(description="Export the selected rows as CSV")
    def export_csv(self, request, queryset):
        columns = EXPORT_COLUMNS[self.resource]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["tenant", *columns])
        sees_pii = user_sees_pii(request.user)
        rows = queryset.order_by("tenant__slug", "virtuous_id").values_list("tenant__slug", *columns)
        for tenant_slug, *values in rows:
            row = dict(zip(columns, values, strict=True))
            writer.writerow([tenant_slug, *(row if sees_pii else mask_pii(row)).values()])
        response = HttpResponse(out.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="virtuous-{self.resource}-mirror.csv"'
        return response


@admin.register(VirtuousContactMirror)
class VirtuousContactMirrorAdmin(MirrorAdmin):
    resource = "contact"
    list_filter = (TenantFilter, "archived")

    def get_list_display(self, request):
        sees_pii = user_sees_pii(request.user)

        def name(row):
            return row.name if sees_pii else mask_pii({"name": row.name})["name"]

        def email(row):
            return row.email if sees_pii else mask_pii({"email": row.email})["email"]

        email.short_description = "e-mail"
        return ("virtuous_id", "tenant", name, email, "archived", "merged_into_id", "modified_at")


@admin.register(VirtuousGiftMirror)
class VirtuousGiftMirrorAdmin(MirrorAdmin):
    resource = "gift"
    list_display = (
        "virtuous_id",
        "tenant",
        "contact_id",
        "amount",
        "gift_date",
        "transaction_source",
        "transaction_id",
        "deleted",
        "modified_at",
    )
    list_filter = (TenantFilter, "deleted", "transaction_source")
    date_hierarchy = "gift_date"
    search_fields = ("=virtuous_id", "=contact_id", "=transaction_id")


@admin.register(VirtuousRecurringGiftMirror)
class VirtuousRecurringGiftMirrorAdmin(MirrorAdmin):
    resource = "recurring_gift"
    list_display = ("virtuous_id", "tenant", "contact_id", "amount", "frequency", "status", "modified_at")
    list_filter = (TenantFilter, "status")
