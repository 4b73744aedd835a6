"""The inbound flow in the console: the raw inbound log (replay through ``sync.inbound.replay``)
and the sync checkpoints (reset through ``sync.inbound.checkpoints``)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages

from integrations.models import InboundEvent
from sync.admin.common import confirmation, payload_for
from sync.inbound.checkpoints import checkpoint_reset
from sync.inbound.replay import REPLAYABLE_STATUSES, inbound_events_replay
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
