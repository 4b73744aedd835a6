"""The outbound flow in the console: the queue, the attempts log, and dead letters (replay as-is,
fix and replay, discard), each resolution through ``sync.outbound.deadletters``."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from sync.admin.common import StatusCodeFilter, confirmation, payload_for, pretty
from sync.admin.deadletter_views import DeadLetterConsoleMixin
from sync.models import Attempt, DeadLetter, OutboundItem
from sync.outbound.deadletters import DeadLetterError, dead_letter_discard, dead_letter_replay
from sync.pii import user_sees_pii
from tenants.admin import (
    AgeFilter,
    BoundedCountPaginator,
    ReadOnlyMixin,
    TenantFilter,
    TenantScopedAdminMixin,
    actor_for,
)

# --- dead letters ------------------------------------------------------------------------------


class DiscardForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 3}), help_text="Required: someone will ask why."
    )


@admin.register(DeadLetter)
class DeadLetterAdmin(DeadLetterConsoleMixin, TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
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
    change_list_template = "admin/sync/deadletter/change_list.html"

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("sync.change_deadletter")

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
        return pretty(obj.error_details)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {
            "payload_html": payload_for(
                request, obj.item.payload if obj and obj.item_id else getattr(obj, "original_payload", {})
            ),
            "can_resolve": obj is not None
            and obj.resolution == DeadLetter.Resolution.OPEN
            and self.has_resolve_permission(request),
            "can_fix": user_sees_pii(request.user),
            "pii_masked": not user_sees_pii(request.user),
            **(self.readable_context(request, obj) if obj is not None else {}),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:public_id>/replay/", wrap(self.replay_view), name="sync_deadletter_replay"),
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
            return confirmation(
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
            return confirmation(
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


# --- the queue and its attempts ---------------------------------------------------------------


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


class DependencyFilter(admin.SimpleListFilter):
    title = "dependency"
    parameter_name = "dependency"

    def lookups(self, request, model_admin):
        return [
            ("waiting", "Waiting on a dependency"),
            ("has", "Depends on another item"),
            ("blocking", "Holding items that wait for it"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(state=OutboundItem.State.WAITING)
        if self.value() == "has":
            return queryset.filter(depends_on__isnull=False)
        if self.value() == "blocking":
            return queryset.filter(dependents__state=OutboundItem.State.WAITING).distinct()
        if (self.value() or "").startswith("of-") and self.value()[3:].isdigit():
            return queryset.filter(depends_on_id=int(self.value()[3:]))  # an item page's "waiting for this"
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
    list_filter = (
        TenantFilter,
        "state",
        "operation",
        "origin",
        StaleFilter,
        DependencyFilter,
        "last_error_class",
    )
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("=external_id", "=public_id", "=virtuous_id")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    exclude = ("payload", "depends_on")
    readonly_fields = ("waits_for", "waited_on_by")
    change_form_template = "admin/sync/payload_change_form.html"

    @admin.display(description="Waits for")
    def waits_for(self, obj: OutboundItem):
        dependency = obj.depends_on
        if dependency is None:
            return "—"
        link = reverse("admin:sync_outbounditem_change", args=[dependency.pk])
        release = "is confirmed in Virtuous" if obj.release_on == "confirmed" else "is submitted"
        if obj.state == OutboundItem.State.WAITING:
            status = f"waiting since {obj.waiting_since:%Y-%m-%d %H:%M} UTC until it {release}"
        else:
            status = f"no longer waiting (released when it {release})"
        return format_html(
            '<a href="{}">{} {}/{}</a> — {}; {}',
            link,
            dependency.get_operation_display(),
            dependency.external_source,
            dependency.external_id,
            dependency.get_state_display(),
            status,
        )

    @admin.display(description="Items waiting for this one")
    def waited_on_by(self, obj: OutboundItem):
        waiting = obj.dependents.filter(state=OutboundItem.State.WAITING).count()
        total = obj.dependents.count()
        if not total:
            return "—"
        link = reverse("admin:sync_outbounditem_changelist") + f"?dependency=of-{obj.pk}"
        return format_html('<a href="{}">{} item(s)</a>, {} still waiting', link, total, waiting)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {"payload_html": payload_for(request, obj.payload if obj else {})}
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
