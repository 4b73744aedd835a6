"""Confirmation of submitted writes: by Virtuous webhook, or by reconciliation lookups.

Virtuous accepts transactions into a holding state; the record exists only after its nightly
batch. A ``giftCreate``/``contactCreate`` carrying our source confirms the item; when the webhook
never comes, items submitted more than a day ago are looked up, and still missing after three
days they are surfaced for review (the needs-update bucket has no API).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.metrics import confirmations_observe
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.clients import virtuous_client
from sync.models import Operation, OutboundItem, SyncRecord
from sync.outbound.dependencies import RELEASE_CONFIRMED, dependents_release
from tenants.models import Tenant
from tenants.services import Actor, audit_record

CONFIRMABLE_STATES = [
    OutboundItem.State.PENDING,
    OutboundItem.State.WAITING,
    OutboundItem.State.IN_FLIGHT,
    OutboundItem.State.SUBMITTED,
    OutboundItem.State.NEEDS_REVIEW,
]
OPERATIONS_FOR_KIND = {
    "gift": [Operation.GIFT_TRANSACTION],
    "contact": [Operation.CONTACT_TRANSACTION],
    "recurring_gift": [Operation.RECURRING_GIFT_CREATE],
}


def outbound_confirm(
    *,
    tenant: Tenant,
    kind: str,
    external_source: str,
    external_id: str,
    virtuous_id: str,
    note: str = "",
    sent_only: bool = False,
) -> int:
    """Mark the item(s) that wrote this record as confirmed and store the Virtuous id. Idempotent.

    ``sent_only`` leaves items never sent alone (two-way contacts, whose later changes queue up
    behind the one Virtuous is showing)."""
    now = timezone.now()
    with transaction.atomic():
        items = OutboundItem.objects.filter(
            tenant=tenant,
            operation__in=OPERATIONS_FOR_KIND[kind],
            external_source=external_source,
            external_id=external_id,
            state__in=CONFIRMABLE_STATES,
        )
        if sent_only:
            # A contact changes over time: a change never sent yet cannot be what Virtuous shows.
            items = items.exclude(state=OutboundItem.State.PENDING, attempts=0)
        confirmations_observe(tenant, items, now)
        confirmed_ids = list(items.values_list("pk", flat=True))
        count = OutboundItem.objects.filter(pk__in=confirmed_ids, state__in=CONFIRMABLE_STATES).update(
            state=OutboundItem.State.CONFIRMED,
            confirmed_at=now,
            virtuous_id=str(virtuous_id),
            lease_owner="",
            lease_expires_at=None,
            note=note[:200],
            updated_at=now,
        )
        if not count:
            # Nothing of ours was waiting: a later event about the record (an edit made elsewhere)
            # must not reset its sync state.
            return 0
        SyncRecord.objects.filter(
            tenant=tenant, resource_type=kind, partner_source=external_source, partner_id=external_id
        ).update(
            status=SyncRecord.Status.CONFIRMED,
            sync_state=SyncRecord.SyncState.IN_SYNC,
            virtuous_id=str(virtuous_id),
            last_synced_at=now,
            updated_at=now,
        )
        # The record exists in Virtuous now: what waited for it (a new donor's gifts) may go.
        dependents_release(dependency_ids=confirmed_ids, reached=RELEASE_CONFIRMED)
    return count


def outbound_reconcile_submitted(
    *, tenant: Tenant, client: VirtuousClient | None = None, limit: int = 200
) -> dict[str, int]:
    """Look up items submitted over a day ago; confirm the found ones, flag the long-missing ones."""
    counts = {"checked": 0, "recovered": 0, "needs_review": 0, "waiting": 0}
    now = timezone.now()
    lookup_after = timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS)
    review_after = timedelta(hours=settings.OUTBOUND_NEEDS_REVIEW_HOURS)
    items = list(
        OutboundItem.objects.filter(
            tenant=tenant,
            state=OutboundItem.State.SUBMITTED,
            operation__in=[Operation.GIFT_TRANSACTION, Operation.CONTACT_TRANSACTION],
            submitted_at__lt=now - lookup_after,
        ).order_by("submitted_at")[:limit]
    )
    if not items:
        return counts
    client = client or virtuous_client(tenant, keep_reserve=True)
    for item in items:
        try:
            if item.operation == Operation.GIFT_TRANSACTION:
                record = client.gift_get_by_transaction(item.external_source, item.external_id)
                kind = "gift"
            else:
                record = client.contact_get_by_reference(item.external_source, item.external_id)
                kind = "contact"
        except BudgetExhausted:
            break
        except VirtuousError as exc:
            if exc.error_class != ErrorClass.NOT_FOUND:
                break
            counts["checked"] += 1
            if item.submitted_at < now - review_after:
                _needs_review(tenant, item)
                counts["needs_review"] += 1
            else:
                counts["waiting"] += 1
            continue
        counts["checked"] += 1
        counts["recovered"] += outbound_confirm(
            tenant=tenant,
            kind=kind,
            external_source=item.external_source,
            external_id=item.external_id,
            virtuous_id=str(record.get("id", "")),
            note="recovered by reconciliation",
        )
    return counts


def _needs_review(tenant: Tenant, item: OutboundItem) -> None:
    with transaction.atomic():
        OutboundItem.objects.filter(pk=item.pk, state=OutboundItem.State.SUBMITTED).update(
            state=OutboundItem.State.NEEDS_REVIEW,
            note="not in Virtuous 72 h after submission: probably in the needs-update bucket",
            updated_at=timezone.now(),
        )
        resource = "gift" if item.operation == Operation.GIFT_TRANSACTION else "contact"
        SyncRecord.objects.filter(
            tenant=tenant,
            resource_type=resource,
            partner_source=item.external_source,
            partner_id=item.external_id,
        ).update(status=SyncRecord.Status.NEEDS_REVIEW, updated_at=timezone.now())


def tenant_reconcile(*, tenant: Tenant, actor: Actor, client: VirtuousClient | None = None) -> dict[str, int]:
    """A person's "Run reconciliation now": the submitted-items lookup, audited with its counts.

    The scheduled lookup runs ``outbound_reconcile_submitted`` unaudited; a run someone asked
    for is a change they may be asked about (items confirmed or flagged for review).
    """
    counts = outbound_reconcile_submitted(tenant=tenant, client=client)
    audit_record(actor=actor, action="tenant.reconciled", tenant=tenant, target=tenant, details=counts)
    return counts
