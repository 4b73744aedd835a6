"""Resolving dead letters: replay as-is, fix and replay, or discard — each audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.types import OutboundRequest
from sync.models import DeadLetter, Operation, Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue
from tenants.services import Actor, audit_record

# The ids that make a write idempotent; a fix may not change them (they are never regenerated).
IDENTITY_FIELDS = {
    Operation.GIFT_TRANSACTION: ("transactionSource", "transactionId"),
    Operation.CONTACT_TRANSACTION: ("referenceSource", "referenceId"),
    Operation.RECURRING_GIFT_CREATE: ("transactionSource", "transactionId"),
}


class DeadLetterError(ValueError):
    """The resolution asked for is not possible (already resolved, identity changed, bad payload)."""


def dead_letter_replay(
    *, dead_letter: DeadLetter, actor: Actor, payload: dict[str, Any] | None = None, note: str = ""
) -> OutboundItem:
    """Put the item back in the queue, as it was or with a corrected payload."""
    fixed = payload is not None
    with transaction.atomic():
        dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if dl.resolution != DeadLetter.Resolution.OPEN:
            raise DeadLetterError(f"This dead letter is already resolved ({dl.get_resolution_display()}).")
        item = dl.item
        if item is None:
            raise DeadLetterError("The queue item behind this dead letter no longer exists.")
        new_payload = payload if fixed else item.payload
        if not isinstance(new_payload, dict):
            raise DeadLetterError("The payload must be a JSON object.")
        for key in IDENTITY_FIELDS.get(item.operation, ()):
            if key in item.payload and new_payload.get(key) != item.payload.get(key):
                raise DeadLetterError(f"{key} identifies this record in Virtuous and cannot be changed.")
        requeued, revived = outbound_enqueue(
            tenant=item.tenant,
            request=OutboundRequest(
                operation=item.operation,
                external_source=item.external_source,
                external_id=item.external_id,
                payload=new_payload,
                idempotency_key=item.idempotency_key,
            ),
            origin=Origin.REPLAY,
        )
        if not revived:
            raise DeadLetterError("The item is no longer dead-lettered; nothing to replay.")
        resolution = DeadLetter.Resolution.FIXED_AND_REPLAYED if fixed else DeadLetter.Resolution.REPLAYED
        _resolve(dl, resolution=resolution, actor=actor, note=note)
    return requeued


def dead_letter_discard(*, dead_letter: DeadLetter, actor: Actor, reason: str) -> None:
    """Give up on the item on purpose. A reason is required: someone will ask why."""
    if not reason.strip():
        raise DeadLetterError("A reason is required to discard.")
    with transaction.atomic():
        dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if dl.resolution != DeadLetter.Resolution.OPEN:
            raise DeadLetterError(f"This dead letter is already resolved ({dl.get_resolution_display()}).")
        if dl.item_id:
            OutboundItem.objects.filter(pk=dl.item_id, state=OutboundItem.State.DEAD).update(
                state=OutboundItem.State.DISCARDED, note=reason[:200], updated_at=timezone.now()
            )
        _resolve(dl, resolution=DeadLetter.Resolution.DISCARDED, actor=actor, note=reason)


def _resolve(dl: DeadLetter, *, resolution: str, actor: Actor, note: str) -> None:
    DeadLetter.objects.filter(pk=dl.pk).update(
        resolution=resolution,
        resolution_note=note[:500],
        resolved_by=actor.user if actor.user is not None and actor.user.pk else None,
        resolved_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action=f"dead_letter.{resolution}",
        tenant=dl.tenant,
        target=dl,
        details={"operation": dl.operation_type, "note": note[:500]},
    )
