"""Replaying stored inbound events: a person sends events back through the inbound queue."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from integrations.models import InboundEvent
from tenants.services import Actor, audit_record

REPLAYABLE_STATUSES = (
    InboundEvent.Status.PROCESSED,
    InboundEvent.Status.FAILED,
    InboundEvent.Status.NEEDS_REVIEW,
)


def inbound_events_replay(*, events: Iterable[InboundEvent], actor: Actor) -> int:
    """Put processed, failed and needs-review events back to pending; returns how many.

    Processing is idempotent (mapping is pure and the outbound queue dedupes on the record's
    key), so replaying a processed event re-applies it without doubling anything. Rejected,
    malformed, duplicate and ignored rows never reach a handler and are not replayed.
    """
    ids = [e.pk for e in events]
    now = timezone.now()
    replayed = 0
    with transaction.atomic():
        rows = list(
            InboundEvent.objects.select_for_update()
            .select_related("tenant")
            # a body removed by retention cannot be processed again
            .filter(pk__in=ids, status__in=REPLAYABLE_STATUSES, body_purged_at__isnull=True)
            .order_by("pk")
        )
        for row in rows:
            changed = InboundEvent.objects.filter(pk=row.pk, status=row.status).update(
                status=InboundEvent.Status.PENDING,
                status_reason=f"Replayed (was {row.status})",
                attempts=0,
                next_attempt_at=now,
                lease_owner="",
                lease_until=None,
                processed_at=None,
            )
            if changed:
                replayed += 1
                audit_record(
                    actor=actor,
                    action="inbound_event.replayed",
                    tenant=row.tenant,
                    target=row,
                    details={"previous_status": row.status, "event_type": row.event_type},
                )
    return replayed
