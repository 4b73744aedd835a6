"""Inbound events a person must look at (needs review, failed, malformed): fix the mapping's
input and re-run, or dismiss with a reason. Every action is audited."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from sync.inbound.drain import LEASE_SECONDS, inbound_event_process
from sync.inbound.replay import inbound_events_replay
from tenants.services import Actor, audit_record

REVIEW_STATUSES = (
    InboundEvent.Status.NEEDS_REVIEW,
    InboundEvent.Status.FAILED,
    InboundEvent.Status.MALFORMED,
)
# The mapper's words when no project code is mapped (integrations.common.mapping.project_code).
_UNMAPPED_PROJECT = re.compile(
    r"No Virtuous project code is mapped for (.+?) and the connection has no default"
)


class ReviewError(ValueError):
    """An action that cannot apply to this event; the message says why, in words."""


def unmapped_project_keys(event: InboundEvent) -> list[str]:
    """The source keys (campaign, form, designation) a needs-review event could not map, if that
    is why it stopped; empty otherwise."""
    found = _UNMAPPED_PROJECT.search(event.status_reason or "")
    if not found or found.group(1) == "(none)":
        return []
    return [k.strip() for k in found.group(1).split(",") if k.strip()]


def inbound_event_rerun(*, event: InboundEvent, actor: Actor) -> str:
    """Send one event through mapping again now, in this request, and return its new status.

    The replay is the audited step; processing is the drain's own function on a row claimed
    under the same lease, so a worker that picks the row first simply wins and this returns
    ``pending``. Mapping is pure and the queue dedupes, so a re-run never doubles a gift.
    """
    if event.status not in REVIEW_STATUSES and event.status != InboundEvent.Status.PROCESSED:
        raise ReviewError(f"A {event.get_status_display().lower()} event cannot be re-run.")
    if event.body_purged_at:
        raise ReviewError("This event's body was removed by retention; it cannot be processed again.")
    if not inbound_events_replay(events=[event], actor=actor):
        raise ReviewError("The event changed meanwhile; reload the page.")
    worker = f"rerun-{uuid.uuid4().hex[:12]}"
    claimed = InboundEvent.objects.filter(pk=event.pk, status=InboundEvent.Status.PENDING).update(
        status=InboundEvent.Status.PROCESSING,
        lease_owner=worker,
        lease_until=timezone.now() + timedelta(seconds=LEASE_SECONDS),
    )
    if not claimed:
        return InboundEvent.Status.PENDING
    row = InboundEvent.objects.select_related("connection__tenant").get(pk=event.pk)
    return inbound_event_process(event=row)


def inbound_event_project_map(
    *, event: InboundEvent, source_key: str, project_code: str, actor: Actor
) -> str:
    """Map the source key the event could not map to a Virtuous project code on its connection
    (audited), then re-run the event; returns its new status. Later donations to the same
    campaign map the same way."""
    source_key, project_code = source_key.strip(), project_code.strip()
    if not source_key or not project_code:
        raise ReviewError("Give both the source key and the Virtuous project code.")
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=event.connection_id)
        before = (connection.project_code_map or {}).get(source_key)
        mapping = {**(connection.project_code_map or {}), source_key: project_code}
        Connection.objects.filter(pk=connection.pk).update(project_code_map=mapping)
        audit_record(
            actor=actor,
            action="connection.project_code_mapped",
            tenant=connection.tenant,
            target=connection,
            details={
                "source_key": source_key,
                "project_code": project_code,
                "previous": before,
                "from_event": str(event.public_id),
            },
        )
    event.refresh_from_db()
    return inbound_event_rerun(event=event, actor=actor)


def inbound_event_dismiss(*, event: InboundEvent, reason: str, actor: Actor) -> bool:
    """Close an event a person decided needs nothing (a test donation, one entered by hand):
    it stops counting against the tenant's health and keeps its body for the record."""
    reason = reason.strip()
    if not reason:
        raise ReviewError("Say why the event is dismissed; the reason is recorded.")
    with transaction.atomic():
        changed = InboundEvent.objects.filter(pk=event.pk, status__in=REVIEW_STATUSES).update(
            status=InboundEvent.Status.DISMISSED,
            status_reason=f"Dismissed: {reason}"[:500],
            processed_at=timezone.now(),
        )
        if changed:
            audit_record(
                actor=actor,
                action="inbound_event.dismissed",
                tenant=event.tenant,
                target=event,
                details={
                    "previous_status": event.status,
                    "previous_reason": event.status_reason,
                    "reason": reason,
                },
            )
    return bool(changed)
