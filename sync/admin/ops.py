"""Operations in the console: alerts sent, historical import runs (with their sign-off, through
``sync.ops.imports``) and the append-only reconciliation log."""

from __future__ import annotations

import io

from django.contrib import admin, messages
from django.http import HttpResponse

from integrations.virtuous.errors import VirtuousError
from sync.admin.imports import ImportRunConsoleMixin
from sync.models import Alert, ImportRun, ReconciliationLog
from sync.ops.imports.files import ImportStopped
from sync.ops.imports.signoff import import_run_signoff, signoff_csv_write
from tenants.admin import ReadOnlyMixin, TenantFilter, TenantScopedAdminMixin, actor_for


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


@admin.register(ImportRun)
class ImportRunAdmin(ImportRunConsoleMixin, TenantScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("run_link", "tenant", "kind", "batch_label", "phase_words", "signoff_words", "started_at")
    list_display_links = None
    list_select_related = ("tenant",)
    list_filter = ("kind", "phase")
    search_fields = ("source_label", "batch_label", "public_id")
    actions = ("signoff_csv",)

    @admin.action(description="Sign-off report (CSV): imported vs Virtuous per project")
    def signoff_csv(self, request, queryset):
        stream = io.StringIO()
        for run in queryset.filter(kind=ImportRun.Kind.HISTORICAL_GIFTS).select_related("tenant"):
            try:
                signoff = import_run_signoff(run=run, actor=actor_for(request), max_wait=0)
            except (ImportStopped, VirtuousError) as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)
                return None
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
