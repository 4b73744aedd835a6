"""Resetting a sync checkpoint, so the next poll re-reads from an earlier point."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from sync.models import SyncCheckpoint
from tenants.services import Actor, audit_record


def checkpoint_reset(
    *, checkpoint: SyncCheckpoint, actor: Actor, to: datetime | None = None
) -> SyncCheckpoint:
    """Move a checkpoint back to ``to`` (None = the beginning: the next poll starts afresh).

    Re-reading is safe because captured records dedupe on their state key and the outbound
    queue on the record's idempotency key; the cost is budget, not duplicates.
    """
    with transaction.atomic():
        row = SyncCheckpoint.objects.select_for_update().select_related("tenant").get(pk=checkpoint.pk)
        before = {
            "timestamp": row.last_processed_timestamp.isoformat() if row.last_processed_timestamp else None,
            "id": row.last_processed_id,
        }
        row.last_processed_timestamp = to
        row.last_processed_id = ""
        row.save(update_fields=["last_processed_timestamp", "last_processed_id", "updated_at"])
        audit_record(
            actor=actor,
            action="checkpoint.reset",
            tenant=row.tenant,
            target=row,
            details={
                "checkpoint": row.pk,
                "scope": row.scope,
                "resource_type": row.resource_type,
                "direction": row.direction,
                "before": before,
                "to": to.isoformat() if to else None,
            },
        )
    return row
