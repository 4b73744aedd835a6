"""The reporting mirror (Pattern 3): each tenant's Virtuous contacts, gifts and recurring gifts.

Rows are written only by the inbound handler (webhooks and inbound polling) and ordered by
Virtuous's ``modifiedDateTimeUtc``: a record older than the row we hold is stale and skipped, so
events arriving out of order (a retried webhook after a poll) never roll the mirror back.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import IO, Any

from django.db import transaction
from django.utils import timezone

from integrations.common.parsing import to_date, to_datetime, to_decimal, to_int
from integrations.virtuous.records import contact_email
from sync.models import VirtuousContactMirror, VirtuousGiftMirror, VirtuousRecurringGiftMirror
from tenants.models import Tenant

MODELS = {
    "contact": VirtuousContactMirror,
    "gift": VirtuousGiftMirror,
    "recurring_gift": VirtuousRecurringGiftMirror,
}


def _columns(resource: str, record: dict[str, Any]) -> dict[str, Any]:
    if resource == "contact":
        return {
            "name": str(record.get("name") or "")[:300],
            "email": contact_email(record)[:254],
            "merged_into_id": to_int(record.get("mergedIntoContactId")),
            "archived": bool(record.get("isArchived")),
        }
    if resource == "gift":
        return {
            "contact_id": to_int(record.get("contactId")),
            "amount": to_decimal(record.get("amount")),
            "gift_date": to_date(record.get("giftDate") or record.get("giftDateFormatted")),
            "transaction_source": str(record.get("transactionSource") or "")[:100],
            "transaction_id": str(record.get("transactionId") or "")[:200],
        }
    return {
        "contact_id": to_int(record.get("contactId")),
        "amount": to_decimal(record.get("amount")),
        "frequency": str(record.get("frequency") or "")[:32],
        "status": str(record.get("status") or "")[:32],
    }


def mirror_is_stale(*, tenant: Tenant, resource: str, record: dict[str, Any]) -> bool:
    """Whether we already hold a newer version of this record."""
    modified = to_datetime(record.get("modifiedDateTimeUtc"))
    virtuous_id = to_int(record.get("id"))
    if modified is None or virtuous_id is None:
        return False
    return (
        MODELS[resource]
        .objects.filter(tenant=tenant, virtuous_id=virtuous_id, modified_at__gt=modified)
        .exists()
    )


def mirror_upsert(*, tenant: Tenant, resource: str, record: dict[str, Any], deleted: bool = False) -> str:
    """Store one record unless we hold a newer one. Returns "created", "updated", "same" or "stale"."""
    virtuous_id = to_int(record.get("id"))
    if virtuous_id is None:
        return "stale"
    model = MODELS[resource]
    modified = to_datetime(record.get("modifiedDateTimeUtc"))
    values = {
        "record": record,
        "modified_at": modified,
        "deleted": deleted,
        "mirrored_at": timezone.now(),
        **_columns(resource, record),
    }
    with transaction.atomic():
        row = model.objects.select_for_update().filter(tenant=tenant, virtuous_id=virtuous_id).first()
        if row is None:
            model.objects.create(tenant=tenant, virtuous_id=virtuous_id, **values)
            return "created"
        if row.modified_at and modified and modified < row.modified_at:
            return "stale"
        if row.modified_at == modified and row.deleted == deleted and row.record == record:
            return "same"
        model.objects.filter(pk=row.pk).update(**values)
    return "updated"


def mirror_repoint_contact(*, tenant: Tenant, merged_id: int, survivor_id: int) -> int:
    """A merge in Virtuous: the merged-away contact's gifts and schedules now belong to the survivor."""
    moved = VirtuousGiftMirror.objects.filter(tenant=tenant, contact_id=merged_id).update(
        contact_id=survivor_id
    )
    moved += VirtuousRecurringGiftMirror.objects.filter(tenant=tenant, contact_id=merged_id).update(
        contact_id=survivor_id
    )
    return moved


EXPORT_COLUMNS = {
    "contact": ("virtuous_id", "name", "email", "archived", "merged_into_id", "modified_at"),
    "gift": (
        "virtuous_id",
        "contact_id",
        "amount",
        "gift_date",
        "transaction_source",
        "transaction_id",
        "deleted",
        "modified_at",
    ),
    "recurring_gift": ("virtuous_id", "contact_id", "amount", "frequency", "status", "modified_at"),
}


def mirror_rows(*, tenant: Tenant, resource: str) -> Iterator[tuple]:
    """The tenant's mirror rows of one resource, in Virtuous id order, as export tuples."""
    columns = EXPORT_COLUMNS[resource]
    qs = MODELS[resource].objects.filter(tenant=tenant).order_by("virtuous_id").values_list(*columns)
    yield from qs.iterator(chunk_size=2000)


def mirror_export_csv(*, tenant: Tenant, resource: str, out: IO[str]) -> int:
    """Write one tenant's mirror of one resource as CSV; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS[resource])
    count = 0
    for row in mirror_rows(tenant=tenant, resource=resource):
        writer.writerow([v.isoformat() if isinstance(v, dt.datetime | dt.date) else v for v in row])
        count += 1
    return count
