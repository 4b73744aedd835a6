"""The inbound queue: InboundEvent rows (webhooks and polled changes) drained in batches.

Each event of a source platform is mapped by its provider into Virtuous writes and enqueued
through ``outbound_enqueue``; mapping is pure, so processing an event twice enqueues nothing
new. Failures keep the event for inspection with the reason; nothing is dropped.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.logconfig import event_log_context
from config.metrics import inbound_outcome
from integrations.common.mapping import MappingContext, event_map
from integrations.models import InboundEvent
from integrations.registry import provider_get
from integrations.types import MalformedPayload, MappingError
from integrations.virtuous.errors import ErrorClass
from sync.claims import rows_claim
from sync.inbound.apply import virtuous_change_apply
from sync.models import Origin
from sync.outbound.enqueue import outbound_enqueue
from sync.outbound.retry import Decision, RetryPolicy
from sync.two_way.capture import partner_capture

logger = logging.getLogger("giftline.sync.inbound")

LEASE_SECONDS = 120


def inbound_claim(*, worker: str, limit: int) -> list[InboundEvent]:
    """Claim pending events under a lease (``rows_claim``: SKIP LOCKED, conditional UPDATE)."""
    now = timezone.now()
    ids = rows_claim(
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, next_attempt_at__lte=now),
        order_by=("next_attempt_at", "id"),
        limit=limit,
        still={"status": InboundEvent.Status.PENDING},
        claim={
            "status": InboundEvent.Status.PROCESSING,
            "lease_owner": worker,
            "lease_until": now + timedelta(seconds=LEASE_SECONDS),
        },
    )
    if not ids:
        return []
    return list(
        InboundEvent.objects.select_related("connection__tenant")
        .filter(id__in=ids, lease_owner=worker, status=InboundEvent.Status.PROCESSING)
        .order_by("id")
    )


@event_log_context
def inbound_event_process(*, event: InboundEvent) -> str:
    """Map one event into queue items. Returns the event's new status."""
    spec = provider_get(event.provider)
    origin = Origin.POLL if event.capture == InboundEvent.Capture.POLL else Origin.WEBHOOK
    handler = spec.handlers.get(event.event_type)
    if handler is None:
        return _finish(event, InboundEvent.Status.IGNORED, f"Unsupported event type {event.event_type!r}")
    if spec.kind == "crm":
        return _apply_crm_event(event, spec, handler)
    try:
        payload = spec.load(bytes(event.body), event.content_type)
        outcome = event_map(handler, MappingContext.from_connection(event.connection), payload)
    except MalformedPayload as exc:
        return _finish(event, InboundEvent.Status.MALFORMED, str(exc))
    except MappingError as exc:
        return _finish(event, InboundEvent.Status.NEEDS_REVIEW, str(exc))
    tenant = event.connection.tenant
    with transaction.atomic():
        keys = []
        created = 0
        echoes = 0
        for request in outcome.requests:
            partner = partner_capture(event=event, request=request)
            if partner.echo:
                echoes += 1
                keys.append(request.key)
                continue
            _, was_created = outbound_enqueue(
                tenant=tenant, request=partner.request, origin=origin, not_before=partner.not_before
            )
            created += was_created
            keys.append(partner.request.key)
        status = InboundEvent.Status.NEEDS_REVIEW if outcome.review_reason else InboundEvent.Status.PROCESSED
        reason = outcome.review_reason or outcome.note
        if echoes and not reason:
            reason = f"{echoes} write(s) only echo our own two-way write: dropped"
        result = {"enqueued": created, "keys": keys, **({"echoes": echoes} if echoes else {})}
        return _finish(event, status, reason, result=result)


def _apply_crm_event(event: InboundEvent, spec, handler) -> str:
    """Virtuous's own events: recognised as ours (confirmations) or changes made elsewhere."""
    try:
        payload = spec.load(bytes(event.body), event.content_type)
        change = event_map(handler, MappingContext.from_connection(event.connection), payload)
    except MalformedPayload as exc:
        return _finish(event, InboundEvent.Status.MALFORMED, str(exc))
    with transaction.atomic():
        origin = Origin.POLL if event.capture == InboundEvent.Capture.POLL else Origin.WEBHOOK
        result = virtuous_change_apply(tenant=event.connection.tenant, change=change, origin=origin)
        return _finish(
            event, InboundEvent.Status.PROCESSED, f"{change.event} from {result['origin']}", result=result
        )


def _finish(event: InboundEvent, status: str, reason: str, result: dict | None = None) -> str:
    InboundEvent.objects.filter(pk=event.pk).update(
        status=status,
        status_reason=reason[:500],
        result=result or {},
        processed_at=timezone.now(),
        lease_owner="",
        lease_until=None,
        attempts=F("attempts") + 1,
    )
    return status


def _retry_later(event: InboundEvent, error: Exception) -> None:
    """An unexpected failure is transient to the retry policy: back off, then keep it as failed."""
    attempts = event.attempts + 1
    verdict = RetryPolicy.inbound().decide(ErrorClass.TRANSIENT, attempts)
    if verdict.decision != Decision.RETRY:
        _finish(event, InboundEvent.Status.FAILED, f"{type(error).__name__}: {error}")
        return
    InboundEvent.objects.filter(pk=event.pk).update(
        status=InboundEvent.Status.PENDING,
        attempts=attempts,
        next_attempt_at=verdict.at,
        status_reason=f"{type(error).__name__}: {error}"[:500],
        lease_owner="",
        lease_until=None,
    )


def inbound_reclaim_expired() -> int:
    return InboundEvent.objects.filter(
        status=InboundEvent.Status.PROCESSING, lease_until__lt=timezone.now()
    ).update(status=InboundEvent.Status.PENDING, lease_owner="", lease_until=None)


def inbound_drain(
    *, seconds: float | None = None, batch: int = 100, idle_sleep: float = 0.25
) -> dict[str, int]:
    """Process pending events until ``seconds`` pass, polling for new ones while idle;
    ``seconds=0`` processes what is pending and returns."""
    seconds = settings.INBOUND_DISPATCH_SECONDS if seconds is None else seconds
    worker = f"inbound-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}
    inbound_reclaim_expired()
    while not seconds or time.monotonic() < deadline:
        events = inbound_claim(worker=worker, limit=batch)
        if not events:
            if not seconds:
                break
            time.sleep(idle_sleep)
            continue
        for event in events:
            try:
                status = inbound_event_process(event=event)
            except (
                Exception
            ) as exc:  # an unexpected bug must not lose the event: retry, then keep it as failed
                logger.exception("inbound.process_failed event=%s", event.public_id)
                _retry_later(event, exc)
                status = "retry"
            counts[status] = counts.get(status, 0) + 1
            inbound_outcome(event.tenant_id, status)
    return counts
