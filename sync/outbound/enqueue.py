"""The only way into the outbound queue: ``outbound_enqueue``.

Webhook receivers, pollers, the bulk loader and replays all call it. Idempotency is a unique
constraint on (tenant, idempotency key), never a check-then-insert, so the same donation
captured twice (webhook and poll, or a source's retry) becomes one item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.common.rows import bulk_insert
from integrations.types import PARTNER_OPERATIONS, OutboundRequest, payload_fingerprint
from sync.models import (
    PRIORITY_BULK,
    PRIORITY_LIVE,
    Direction,
    Operation,
    Origin,
    OutboundItem,
    SyncRecord,
    TenantQueue,
)
from sync.outbound.dependencies import (
    RELEASE_CONFIRMED,
    RELEASE_SUBMITTED,
    gift_contact_dependency,
    waiting_fields,
)
from tenants.models import Tenant

RESOURCE_FOR_OPERATION = {
    Operation.CONTACT_TRANSACTION: SyncRecord.ResourceType.CONTACT,
    Operation.GIFT_TRANSACTION: SyncRecord.ResourceType.GIFT,
    Operation.RECURRING_GIFT_CREATE: SyncRecord.ResourceType.RECURRING_GIFT,
}


def outbound_enqueue(
    *,
    tenant: Tenant,
    request: OutboundRequest,
    origin: str,
    not_before: datetime | None = None,
) -> tuple[OutboundItem, bool]:
    """Queue one write. Returns (item, created); an existing key is a no-op.

    A replay (origin ``replay``) of a dead-lettered or discarded item puts that same item back
    in the queue with the given payload: the row, and so its external ids, stay the same.
    """
    _validate(request)
    now = timezone.now()
    due = not_before or now
    direction = direction_for(request.operation)
    item = OutboundItem(
        tenant=tenant,
        operation=request.operation,
        direction=direction,
        idempotency_key=request.key,
        external_source=request.external_source,
        external_id=request.external_id,
        payload=request.payload,
        origin=origin,
        priority=PRIORITY_BULK if origin == Origin.BULK else PRIORITY_LIVE,
        next_attempt_at=due,
    )
    try:
        with transaction.atomic():
            if request.operation == Operation.GIFT_TRANSACTION and origin != Origin.REPLAY:
                # The contact write it waits for stays locked until this commits: its 2xx record
                # then comes after, and so does the release that follows it (see the function).
                dependency = gift_contact_dependency(tenant=tenant, payload=request.payload, lock=True)
                for name, value in waiting_fields(dependency, RELEASE_SUBMITTED, now).items():
                    setattr(item, name, value)
            item.save(force_insert=True)
            _sync_record_touch(tenant=tenant, requests=[request])
    except IntegrityError:
        existing = OutboundItem.objects.get(tenant=tenant, idempotency_key=request.key)
        if origin == Origin.REPLAY and _revive(existing, request.payload, due):
            existing.refresh_from_db()
            if direction == Direction.OUTBOUND:
                queue_wake(tenant_id=tenant.pk, at=due)
            return existing, True
        return existing, False
    if direction == Direction.OUTBOUND and item.state == OutboundItem.State.PENDING:
        queue_wake(tenant_id=tenant.pk, at=due, live=origin != Origin.BULK and due <= now)
    return item, True


def direction_for(operation: str) -> str:
    """Writes to a partner platform (two-way) are drained by the partner drain, never the submitter."""
    return Direction.INBOUND if operation in PARTNER_OPERATIONS else Direction.OUTBOUND


def outbound_enqueue_many(
    *,
    tenant: Tenant,
    requests: list[OutboundRequest],
    origin: str,
    depends_on: dict[str, OutboundItem] | None = None,
) -> int:
    """Queue many writes at once (the bulk loader). Returns how many were new.

    Existing keys are skipped by the database (ON CONFLICT DO NOTHING), so a re-run or a
    concurrent enqueue of the same rows never creates a second item. ``depends_on`` maps a
    request's key to the item it must wait for until that one is confirmed in Virtuous.
    """
    depends_on = depends_on or {}
    if not requests:
        return 0
    for request in requests:
        _validate(request)
    keys = [r.key for r in requests]
    existing = set(
        OutboundItem.objects.filter(tenant=tenant, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    now = timezone.now()
    priority = PRIORITY_BULK if origin == Origin.BULK else PRIORITY_LIVE
    fresh: dict[str, OutboundRequest] = {}
    for r in requests:
        if r.key not in existing:
            fresh.setdefault(r.key, r)
    rows = [
        OutboundItem(
            tenant=tenant,
            operation=r.operation,
            direction=direction_for(r.operation),
            idempotency_key=key,
            external_source=r.external_source,
            external_id=r.external_id,
            payload=r.payload,
            origin=origin,
            priority=priority,
            next_attempt_at=now,
            **waiting_fields(depends_on.get(key), RELEASE_CONFIRMED, now),
        )
        for key, r in fresh.items()
    ]
    with transaction.atomic():
        bulk_insert(OutboundItem, rows)
        _sync_record_touch(tenant=tenant, requests=list(fresh.values()))
    if any(row.state == OutboundItem.State.PENDING for row in rows):
        queue_wake(tenant_id=tenant.pk, at=now, live=origin != Origin.BULK)
    return len(rows)


def _validate(request: OutboundRequest) -> None:
    if request.operation not in Operation.values:
        raise ValueError(f"Unknown operation {request.operation!r}")
    if not request.external_source or not request.external_id:
        raise ValueError("An outbound write needs its external source and id (they make it idempotent).")
    if not isinstance(request.payload, dict):
        raise ValueError("The payload must be a JSON object.")


def _revive(item: OutboundItem, payload: dict[str, Any], due: datetime) -> bool:
    revived = OutboundItem.objects.filter(
        pk=item.pk,
        state__in=[OutboundItem.State.DEAD, OutboundItem.State.DISCARDED, OutboundItem.State.NEEDS_REVIEW],
    ).update(
        state=OutboundItem.State.PENDING,
        payload=payload,
        origin=Origin.REPLAY,
        priority=PRIORITY_LIVE,
        attempts=0,
        next_attempt_at=due,
        lease_owner="",
        lease_expires_at=None,
        last_error="",
        last_error_class="",
        last_status_code=None,
        updated_at=timezone.now(),
    )
    return bool(revived)


def _sync_record_touch(*, tenant: Tenant, requests: list[OutboundRequest]) -> None:
    """Record that a partner-side change is on its way (status pending, partner_pending)."""
    records = [
        SyncRecord(
            tenant=tenant,
            resource_type=RESOURCE_FOR_OPERATION[r.operation],
            partner_source=r.external_source,
            partner_id=r.external_id,
            status=SyncRecord.Status.PENDING,
            sync_state=SyncRecord.SyncState.PARTNER_PENDING,
            partner_modified_at=r.partner_modified_at,
            fingerprint=payload_fingerprint(r.payload),
        )
        for r in requests
        if r.operation in RESOURCE_FOR_OPERATION
    ]
    bulk_insert(
        SyncRecord,
        records,
        unique_fields=["tenant", "resource_type", "partner_source", "partner_id"],
        update_fields=["status", "sync_state", "partner_modified_at", "fingerprint", "updated_at"],
    )


def queue_wake(*, tenant_id: int, at: datetime, live: bool = False) -> None:
    """Make sure a dispatcher looks at this tenant by ``at``.

    ``live``: the work is a live write due now; if the queue had nothing due, its tenant starts a
    fresh streak (``due_since``) and is claimed ahead of backlogs for a while.

    The condition is in the SET, not the WHERE, so the row is always locked: a dispatcher's
    release (``tenant_queue_release``) locks it before it reads the tenant's items, and one whose
    read missed the item committed just before this must finish first, so this then moves the
    wake time it wrote. With the condition in the WHERE, a queue already due matched nothing, took
    no lock, and the release then wrote the wake time of a read that did not see the item.
    """
    earlier = Q(wake_at__isnull=True) | Q(wake_at__gt=at)
    fields: dict[str, Any] = {"wake_at": Case(When(earlier, then=Value(at)), default=F("wake_at"))}
    if live:
        fields["due_since"] = Case(
            When(earlier, then=Coalesce(F("due_since"), Value(at))), default=F("due_since")
        )
    if not TenantQueue.objects.filter(tenant_id=tenant_id).update(**fields):
        TenantQueue.objects.bulk_create(
            [TenantQueue(tenant_id=tenant_id, wake_at=at, due_since=at if live else None)],
            ignore_conflicts=True,
        )
