"""The inbound flow in the console: the raw inbound log (replay through ``sync.inbound.replay``;
review, map-and-re-run and dismiss through ``sync.inbound.review``) and the sync checkpoints
(reset through ``sync.inbound.checkpoints``)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from integrations.models import InboundEvent
from sync.admin.common import confirmation, payload_for
from sync.inbound.checkpoints import checkpoint_reset
from sync.inbound.replay import REPLAYABLE_STATUSES, inbound_events_replay
from sync.inbound.review import (
    REVIEW_STATUSES,
    ReviewError,
    inbound_event_dismiss,
    inbound_event_project_map,
    inbound_event_rerun,
    unmapped_project_keys,
)
from sync.models import SyncCheckpoint
from sync.pii import user_sees_pii
from tenants.admin import (
    AgeFilter,
    BoundedCountPaginator,
    ReadOnlyMixin,
    TenantFilter,
    TenantScopedAdminMixin,
    actor_for,
)


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
            return confirmation(
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


class ProjectMapForm(forms.Form):
    source_key = forms.CharField(
        max_length=200, label="Source campaign or form id", help_text="As the platform names it in the event."
    )
    project_code = forms.CharField(
        max_length=64, label="Virtuous project code", help_text="Later donations to it map the same way."
    )


class DismissForm(forms.Form):
    reason = forms.CharField(
        max_length=300, help_text="Why nothing needs doing (e.g. a test donation, entered by hand). Recorded."
    )


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
        "reason",
        "signature_valid",
    )
    list_filter = (TenantFilter, "status", "provider", "capture", "signature_valid", ReceivedAgeFilter)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant", "connection")
    search_fields = ("=dedupe_key", "=public_id", "event_type")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    exclude = ("body",)
    actions = ("replay_events", "dismiss_events")
    change_form_template = "admin/sync/payload_change_form.html"

    @admin.display(description="reason")
    def reason(self, obj: InboundEvent) -> str:
        text = obj.status_reason or ""
        return text if len(text) <= 120 else f"{text[:117]}…"

    def get_urls(self):
        return [
            path(
                "<int:pk>/review/",
                self.admin_site.admin_view(self.review_view),
                name="integrations_inboundevent_review",
            ),
            *super().get_urls(),
        ]

    def review_view(self, request, pk: int):
        """One event that needs a person: why, its body, and the ways out (map and re-run,
        re-run, dismiss with a reason)."""
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = self.get_queryset(request).filter(pk=pk).select_related("connection", "tenant").first()
        if event is None:
            raise Http404("No such event among your tenants.")
        keys = unmapped_project_keys(event)
        map_form = ProjectMapForm(
            request.POST if request.POST.get("step") == "map" else None,
            initial={"source_key": keys[0] if keys else ""},
        )
        dismiss_form = DismissForm(request.POST if request.POST.get("step") == "dismiss" else None)
        if request.method == "POST":
            step = request.POST.get("step")
            try:
                if step == "map" and map_form.is_valid():
                    status = inbound_event_project_map(
                        event=event, actor=actor_for(request), **map_form.cleaned_data
                    )
                    return self._after(request, event, status)
                if step == "rerun":
                    return self._after(
                        request, event, inbound_event_rerun(event=event, actor=actor_for(request))
                    )
                if step == "dismiss" and dismiss_form.is_valid():
                    inbound_event_dismiss(
                        event=event, reason=dismiss_form.cleaned_data["reason"], actor=actor_for(request)
                    )
                    self.message_user(
                        request, "Dismissed the event; the reason is recorded.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(reverse("admin:integrations_inboundevent_review", args=[pk]))
            except ReviewError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(request.path)
        return TemplateResponse(
            request,
            "admin/integrations/inboundevent/review.html",
            {
                **self.admin_site.each_context(request),
                "title": "Review an inbound event",
                "opts": self.model._meta,
                "event": event,
                "tenant": event.tenant,
                "reviewable": event.status in REVIEW_STATUSES,
                "unmapped_keys": keys,
                "project_map": sorted((event.connection.project_code_map or {}).items()),
                "map_form": map_form,
                "dismiss_form": dismiss_form,
                "body_html": payload_for(request, _body(event)),
                "pii_masked": not user_sees_pii(request.user),
            },
        )

    def _after(self, request, event: InboundEvent, status: str):
        words = {
            InboundEvent.Status.PROCESSED: (
                "Re-ran the event: it is processed and its writes are queued.",
                messages.SUCCESS,
            ),
            InboundEvent.Status.PENDING: ("The event is queued for processing again.", messages.SUCCESS),
        }
        text, level = words.get(
            status,
            (f"Re-ran the event; it still stops: {InboundEvent.Status(status).label}.", messages.WARNING),
        )
        self.message_user(request, text, level)
        return HttpResponseRedirect(reverse("admin:integrations_inboundevent_review", args=[event.pk]))

    @admin.action(description="Dismiss selected events (with a reason)", permissions=("replay",))
    def dismiss_events(self, request, queryset):
        form = DismissForm(request.POST if request.POST.get("post") == "yes" else None)
        if not form.is_valid():
            return confirmation(
                request,
                self,
                queryset,
                action="dismiss_events",
                title="Dismiss events",
                question="Dismiss these events? Only events in review, failed or malformed are dismissed; "
                "they stop counting against the tenant's health and keep their body. The reason is recorded.",
                form=form,
            )
        n = sum(
            inbound_event_dismiss(event=e, reason=form.cleaned_data["reason"], actor=actor_for(request))
            for e in queryset.filter(status__in=REVIEW_STATUSES)
        )
        self.message_user(request, f"Dismissed {n} event(s).", messages.SUCCESS)
        return None

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("integrations.change_inboundevent")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {
            "payload_html": payload_for(request, _body(obj)) if obj else "",
            "pii_masked": not user_sees_pii(request.user),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.action(description="Replay selected events", permissions=("replay",))
    def replay_events(self, request, queryset):
        if request.POST.get("post") != "yes":
            return confirmation(
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


def _body(event: InboundEvent) -> Any:
    """The stored body as JSON when it is JSON (so it can be masked), else a note of its size."""
    raw = bytes(event.body or b"")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"body": f"({len(raw)} bytes, not JSON)"}
