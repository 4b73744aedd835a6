"""Admin for bulk runs and the reconciliation log (the queue's own admin lives with the ops console)."""

import io

from django.contrib import admin, messages
from django.http import HttpResponse

from integrations.virtuous.errors import VirtuousError
from sync.models import ImportRun, ReconciliationLog
from sync.services import bulk
from tenants.admin import TenantScopedAdminMixin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ImportRun)
class ImportRunAdmin(TenantScopedAdminMixin, ReadOnlyAdmin):
    list_display = ("tenant", "kind", "source_label", "batch_label", "phase", "started_at", "finished_at")
    list_filter = ("kind", "phase")
    search_fields = ("source_label", "batch_label", "public_id")
    actions = ("signoff_csv",)

    @admin.action(description="Sign-off report (CSV): imported vs Virtuous per project")
    def signoff_csv(self, request, queryset):
        stream = io.StringIO()
        for run in queryset.filter(kind=ImportRun.Kind.HISTORICAL_GIFTS).select_related("tenant"):
            try:
                signoff = bulk.import_signoff(tenant=run.tenant, batch_label=run.batch_label, max_wait=0)
            except (bulk.ImportStopped, VirtuousError) as exc:
                self.message_user(request, f"{run}: {exc}", messages.ERROR)
                return None
            bulk.import_run_signoff_store(run=run, signoff=signoff)
            bulk.signoff_csv_write(signoff, stream)
        response = HttpResponse(stream.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="import-signoff.csv"'
        return response


@admin.register(ReconciliationLog)
class ReconciliationLogAdmin(TenantScopedAdminMixin, ReadOnlyAdmin):
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
