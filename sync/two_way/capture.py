"""The partner side of two-way sync at capture: a change a two-way partner reports, before it is queued.

Once inbound processing is on (``from_elsewhere`` or ``full``), a contact change captured from
a two-way partner is checked against the record's sync state:

- it only shows the state our last partner write left (our write echoing back through the
  partner's webhook or poll): dropped, nothing is queued;
- the record is cooling down after a change in Virtuous: queued, but held until the cooldown ends;
- under per-field ownership, a linked contact's write leaves out the fields Virtuous owns.

The partner's shared fields are remembered on the record (its snapshot), so the next Virtuous
change can be diffed against what the partner last had.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from integrations.models import InboundEvent
from integrations.types import Operation, OutboundRequest, payload_fingerprint
from sync.models import SyncRecord
from sync.two_way import state as two_way
from tenants.models import Tenant


@dataclass(frozen=True)
class PartnerCapture:
    """What to do with one captured write: queue ``request`` (not before ``not_before``), or drop it."""

    request: OutboundRequest
    echo: bool = False
    not_before: datetime | None = None


def partner_capture(*, event: InboundEvent, request: OutboundRequest) -> PartnerCapture:
    """Decide about one Contact Transaction a two-way partner's event maps to (see the module)."""
    connection = event.connection
    target = two_way.target_for(connection.provider)
    tenant = connection.tenant
    if (
        target is None
        or request.operation != Operation.CONTACT_TRANSACTION
        or tenant.inbound_mode not in (Tenant.InboundMode.FROM_ELSEWHERE, Tenant.InboundMode.FULL)
    ):
        return PartnerCapture(request)
    now = timezone.now()
    row = (
        SyncRecord.objects.select_for_update()
        .filter(
            tenant=tenant,
            resource_type=SyncRecord.ResourceType.CONTACT,
            partner_source=request.external_source,
            partner_id=request.external_id,
        )
        .first()
    )
    view = two_way.partner_view(request.payload, target)
    if row is not None and two_way.partner_echo(view, row.partner_snapshot):
        return PartnerCapture(request, echo=True)
    request = dataclasses.replace(request, partner_modified_at=event.occurred_at or event.received_at or now)
    if (
        row is not None
        and row.virtuous_id
        and tenant.conflict_policy == Tenant.ConflictPolicy.FIELD_OWNERSHIP
    ):
        payload = two_way.owned_only(request.payload, two_way.owners_for(connection))
        if payload != request.payload:
            request = dataclasses.replace(
                request,
                payload=payload,
                idempotency_key=f"{request.key}:owned-{payload_fingerprint(payload)[:8]}",
            )
    snapshot = two_way.snapshot_from_capture(view, row.partner_snapshot if row else {})
    if row is None:
        SyncRecord.objects.create(
            tenant=tenant,
            resource_type=SyncRecord.ResourceType.CONTACT,
            partner_source=request.external_source,
            partner_id=request.external_id,
            partner_snapshot=snapshot,
        )
        return PartnerCapture(request)
    SyncRecord.objects.filter(pk=row.pk).update(partner_snapshot=snapshot, updated_at=now)
    cooling = (
        row.sync_state == SyncRecord.SyncState.VIRTUOUS_PENDING
        and row.cooldown_until is not None
        and row.cooldown_until > now
    )
    return PartnerCapture(request, not_before=row.cooldown_until if cooling else None)
