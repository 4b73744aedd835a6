"""The queue item transitions out of ``in_flight``: done, retry, release, dead letter.

The submitter and the partner drain both move items through these; each is a conditional
UPDATE on the item's state (and lease owner where the caller holds one), so a transition applies
at most once even if two workers raced for the item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sync.models import DeadLetter, OutboundItem, SyncRecord
from sync.ops import alerts
from sync.outbound.enqueue import RESOURCE_FOR_OPERATION
from tenants.models import Tenant


@dataclass
class DrainCounts:
    """What every drain of the queue reports; each drain adds its own counters."""

    retried: int = 0
    dead: int = 0
    released: int = 0
    stopped: str = ""


def items_done(items: list[OutboundItem], *, state: str, worker: str = "", **fields: Any) -> int:
    """Out of ``in_flight`` after a 2xx (``submitted`` or ``confirmed``): one attempt spent, error cleared.

    With ``worker``, only while that worker still holds the lease.
    """
    now = timezone.now()
    held = OutboundItem.objects.filter(pk__in=[i.pk for i in items], state=OutboundItem.State.IN_FLIGHT)
    if worker:
        held = held.filter(lease_owner=worker)
    return held.update(
        state=state,
        submitted_at=now,
        attempts=F("attempts") + 1,
        lease_owner="",
        lease_expires_at=None,
        last_status_code=200,
        last_error_class="",
        last_error="",
        updated_at=now,
        **fields,
    )


def items_retry(
    items: list[OutboundItem],
    *,
    at: datetime,
    message: str,
    status_code: int | None = None,
    error_class: str = "",
) -> int:
    """Back to ``pending`` at ``at``, one attempt spent, the error kept for the admin."""
    return OutboundItem.objects.filter(
        pk__in=[i.pk for i in items], state=OutboundItem.State.IN_FLIGHT
    ).update(
        state=OutboundItem.State.PENDING,
        attempts=F("attempts") + 1,
        next_attempt_at=at,
        lease_owner="",
        lease_expires_at=None,
        last_status_code=status_code,
        last_error_class=error_class,
        last_error=message[:2000],
        updated_at=timezone.now(),
    )


def items_release(items: list[OutboundItem], *, worker: str, retry_in: float) -> int:
    """Hand claimed, unsent items back without spending an attempt (budget, 429, pause, throttle)."""
    if not items:
        return 0
    now = timezone.now()
    return OutboundItem.objects.filter(
        pk__in=[i.pk for i in items], state=OutboundItem.State.IN_FLIGHT, lease_owner=worker
    ).update(
        state=OutboundItem.State.PENDING,
        next_attempt_at=now + timedelta(seconds=retry_in),
        lease_owner="",
        lease_expires_at=None,
        updated_at=now,
    )


def items_dead_letter(
    tenant: Tenant,
    items: list[OutboundItem],
    *,
    message: str,
    spend_attempt: bool,
    status_code: int | None = None,
    error_class: str = "",
    details: list | None = None,
) -> int:
    """Move items to ``dead`` with a DeadLetter row each, mark their sync records failed, alert.

    ``spend_attempt`` counts the call that failed (not so for an item that never got sent).
    """
    now = timezone.now()
    with transaction.atomic():
        for item in items:
            moved = OutboundItem.objects.filter(pk=item.pk, state=OutboundItem.State.IN_FLIGHT).update(
                state=OutboundItem.State.DEAD,
                attempts=F("attempts") + (1 if spend_attempt else 0),
                lease_owner="",
                lease_expires_at=None,
                last_status_code=status_code,
                last_error_class=error_class,
                last_error=message[:2000],
                updated_at=now,
            )
            if not moved:
                continue
            item.refresh_from_db(fields=["attempts", "payload"])
            DeadLetter.objects.create(
                tenant=tenant,
                item=item,
                operation_type=item.operation,
                original_payload=item.payload,
                status_code=status_code,
                error_class=error_class,
                attempt_count=item.attempts,
                last_error=message[:2000],
                error_details=details or [],
            )
        sync_records_set(tenant, items, status=SyncRecord.Status.FAILED)
        alerts.alert_raise(
            tenant=tenant,
            kind="dead_letter",
            subject=f"{tenant.name}: {len(items)} item(s) moved to dead letters",
            body=f"Last error: {message[:500]}\nReview them in the admin under Dead letters.",
        )
    return len(items)


def items_needs_review(
    tenant: Tenant, items: list[OutboundItem], *, message: str, evidence: dict[str, Any]
) -> int:
    """Out of ``in_flight`` into ``needs_review``: a person must decide; never sent again by itself.

    The evidence (what the lookups saw) stays on the item for the admin; the tenant is alerted.
    """
    now = timezone.now()
    with transaction.atomic():
        moved = OutboundItem.objects.filter(
            pk__in=[i.pk for i in items], state=OutboundItem.State.IN_FLIGHT
        ).update(
            state=OutboundItem.State.NEEDS_REVIEW,
            attempts=F("attempts") + 1,
            lease_owner="",
            lease_expires_at=None,
            last_error=message[:2000],
            write_evidence=evidence,
            updated_at=now,
        )
        if moved:
            sync_records_set(tenant, items, status=SyncRecord.Status.NEEDS_REVIEW)
            alerts.alert_raise(
                tenant=tenant,
                kind="needs_review",
                subject=f"{tenant.name}: {moved} write(s) need review",
                body=f"{message[:500]}\nCheck Virtuous and resolve them in the admin under Outbound items.",
            )
    return moved


def sync_records_set(tenant: Tenant, items: list[OutboundItem], **fields: Any) -> None:
    """Update the per-record sync state of the records these items write."""
    by_type: dict[str, dict[str, list[str]]] = {}
    for item in items:
        resource = RESOURCE_FOR_OPERATION.get(item.operation)
        if resource:
            by_type.setdefault(resource, {}).setdefault(item.external_source, []).append(item.external_id)
    for resource, sources in by_type.items():
        for source, ids in sources.items():
            SyncRecord.objects.filter(
                tenant=tenant, resource_type=resource, partner_source=source, partner_id__in=ids
            ).update(**fields, updated_at=timezone.now())
