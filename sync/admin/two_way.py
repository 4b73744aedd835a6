"""The two-way flow in the console: per-record sync state and the reporting mirror of Virtuous
(Pattern 3): read-only, tenant-scoped, exportable with donor data masked for users without
``sync.view_donor_pii``."""

from __future__ import annotations

import csv
import io

from django.contrib import admin
from django.http import HttpResponse

from sync.admin.common import payload_for
from sync.models import SyncRecord, VirtuousContactMirror, VirtuousGiftMirror, VirtuousRecurringGiftMirror
from sync.pii import mask_pii, user_sees_pii
from sync.two_way.mirror import EXPORT_COLUMNS
from tenants.admin import BoundedCountPaginator, ReadOnlyMixin, TenantFilter, TenantScopedAdminMixin


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
            return payload_for(request, row.record)

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
