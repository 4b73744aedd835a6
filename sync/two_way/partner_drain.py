"""The partner drain: two-way writes of Virtuous changes to the partner platforms.

Items live in the one queue (``OutboundItem``, direction ``inbound``) and use its claim, lease,
backoff and dead-letter machinery; this drain only ever calls a partner through the writer its
provider registers (``ProviderSpec.partner``), within the partner's own limits: one sequential
drain per tenant, and whatever throttle the writer applies. A throttled partner
(``PartnerThrottled``) releases what was claimed without spending attempts. Virtuous is written
only by ``sync.outbound.drain``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from integrations.common.partners import PartnerThrottled, PartnerWriteError
from integrations.models import Connection
from integrations.virtuous.errors import ErrorClass
from sync.models import Direction, OutboundItem, SyncRecord
from sync.outbound.claim import outbound_claim, outbound_reclaim_expired
from sync.outbound.retry import Decision, RetryPolicy
from sync.outbound.transitions import (
    DrainCounts,
    items_dead_letter,
    items_done,
    items_release,
    items_retry,
)
from sync.two_way import state as two_way
from tenants.models import Tenant

logger = logging.getLogger("giftline.sync.partner")

CLAIM = 25


@dataclass
class PartnerDrainResult(DrainCounts):
    written: int = 0


def partner_drain(*, tenant: Tenant, worker: str | None = None, limit: int = CLAIM) -> PartnerDrainResult:
    """Write this tenant's due two-way changes to their partners (up to ``limit`` items)."""
    worker = worker or f"partner-{uuid.uuid4().hex[:12]}"
    result = PartnerDrainResult()
    outbound_reclaim_expired(tenant=tenant)
    tenant.refresh_from_db(fields=["status", "inbound_mode"])
    if tenant.status != Tenant.Status.ACTIVE:
        result.stopped = "paused"
        return result
    claimed = outbound_claim(tenant=tenant, worker=worker, limit=limit, direction=Direction.INBOUND)
    policy = RetryPolicy.for_tenant(tenant)
    for n, item in enumerate(claimed):
        try:
            _write_one(tenant, item)
        except PartnerThrottled as exc:
            result.released += items_release(claimed[n:], worker=worker, retry_in=exc.retry_in)
            result.stopped = "throttled"
            return result
        except PartnerWriteError as exc:
            error_class = ErrorClass.TRANSIENT if exc.retryable else ErrorClass.PERMANENT
            verdict = policy.decide(error_class, item.attempts + 1)
            if verdict.decision == Decision.RETRY:
                items_retry([item], at=verdict.at, message=str(exc))
                result.retried += 1
            else:
                result.dead += items_dead_letter(tenant, [item], message=str(exc), spend_attempt=True)
            continue
        result.written += 1
    result.stopped = "empty" if len(claimed) < limit else "limit"
    return result


def _write_one(tenant: Tenant, item: OutboundItem) -> None:
    payload = item.payload
    connection = (
        Connection.objects.select_related("tenant")
        .filter(tenant=tenant, public_id=payload.get("connection"), is_active=True)
        .first()
    )
    side = two_way.target_for(connection.provider) if connection is not None else None
    if side is None:
        raise PartnerWriteError("The partner connection is gone or inactive", retryable=False)
    if tenant.inbound_mode != Tenant.InboundMode.FULL:
        raise PartnerWriteError(
            f"Inbound mode is {tenant.inbound_mode}: partner writes need 'full'; replay after switching back",
            retryable=False,
        )
    changes = payload.get("changes") or {}
    side.writer(connection, item.external_id, changes)
    now = timezone.now()
    with transaction.atomic():
        items_done([item], state=OutboundItem.State.CONFIRMED, confirmed_at=now)
        row = (
            SyncRecord.objects.select_for_update()
            .filter(
                tenant=tenant,
                resource_type=SyncRecord.ResourceType.CONTACT,
                partner_source=item.external_source,
                partner_id=item.external_id,
            )
            .first()
        )
        if row is not None:
            before = row.partner_snapshot or payload.get("partnerBefore") or {}
            SyncRecord.objects.filter(pk=row.pk).update(
                partner_snapshot=two_way.snapshot_after_write(before, changes), updated_at=now
            )


def sync_records_cooldown_expire(*, now=None) -> int:
    """Records whose cooldown after a Virtuous change is over are in sync again."""
    return SyncRecord.objects.filter(
        sync_state=SyncRecord.SyncState.VIRTUOUS_PENDING, cooldown_until__lt=now or timezone.now()
    ).update(sync_state=SyncRecord.SyncState.IN_SYNC, cooldown_until=None, updated_at=timezone.now())


def partner_dispatch() -> dict[str, int]:
    """Every minute: end finished cooldowns, then drain each active tenant with due partner writes."""
    cooled = sync_records_cooldown_expire()
    tenants = (
        OutboundItem.objects.filter(
            direction=Direction.INBOUND, state=OutboundItem.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by()
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    totals = {"cooled": cooled, "tenants": 0, "written": 0, "dead": 0}
    for tenant in Tenant.objects.filter(pk__in=list(tenants), status=Tenant.Status.ACTIVE):
        result = partner_drain(tenant=tenant)
        totals["tenants"] += 1
        totals["written"] += result.written
        totals["dead"] += result.dead
    return totals
