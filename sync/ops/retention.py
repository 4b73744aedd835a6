"""Retention: the daily purge that keeps storage bounded without deleting anything still needed.

What goes, per tenant, once older than the tenant's retention (``Tenant.retention``: its override,
else ``RETENTION_*_DAYS``):

- ``webhook_bodies``: the body of an inbound event that is handled (processed, ignored, duplicate).
  The row stays with its metadata, hash and size; it is the dedupe record and the trace.
- ``rejected_deliveries``: rejected rows (bad signature, size, content type), which hold no body
  anyway, and the per-minute counters of rejected deliveries (``rejected_counts``).
- ``attempts``: Virtuous call attempts whose items are all finished (confirmed or discarded).
- ``dead_letters``: dead letters resolved (replayed, fixed, discarded) that long ago.

Kept whatever their age: the body of an event not yet handled or waiting for a person (pending,
processing, failed, needs review, malformed), attempts of any live item (pending, in flight,
submitted, needs review, dead), open dead letters, the reconciliation log and the audit log.

Every deletion is by primary-key batches (``PURGE_BATCH_SIZE``), each re-checking its condition
in the statement itself, so a row that became needed between the read and the write (an event
replayed, an item requeued) is left alone; a run does at most ``PURGE_MAX_BATCHES`` per kind and
tenant and the next run continues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.models import InboundEvent, RejectedDeliveryCount
from sync.models import Attempt, AttemptItem, DeadLetter, OutboundItem
from tenants.models import Tenant
from tenants.services import SYSTEM, Actor, audit_record

KINDS = ("webhook_bodies", "rejected_deliveries", "rejected_counts", "attempts", "dead_letters")
HANDLED_EVENTS = (
    InboundEvent.Status.PROCESSED,
    InboundEvent.Status.IGNORED,
    InboundEvent.Status.DUPLICATE,
)
FINISHED_ITEMS = (OutboundItem.State.CONFIRMED, OutboundItem.State.DISCARDED)
# Batches are read newest-first along each table's tenant/time index: the rows that just crossed
# the cutoff come first, and kept rows with a purged body (older) are only walked by the last read.
ORDER = {
    "webhook_bodies": "-received_at",
    "rejected_deliveries": "-received_at",
    "rejected_counts": "-minute",
    "attempts": "-created_at",
    "dead_letters": "-created_at",
}


@dataclass
class PurgeResult:
    """Rows purged (or, in a dry run, that would be) per tenant slug and kind."""

    dry_run: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    unfinished: set[tuple[str, str]] = field(default_factory=set)  # (tenant, kind) hit the batch cap

    @property
    def total(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.counts.values())


def _eligible(tenant: Tenant, now: dt.datetime) -> dict[str, QuerySet]:
    """Per kind, the rows of ``tenant`` this run may purge. Each queryset is also the condition
    re-applied in the batch's UPDATE/DELETE."""
    days = tenant.retention
    bodies_before = now - dt.timedelta(days=days["webhook_body_days"])
    attempts_before = now - dt.timedelta(days=days["attempt_days"])
    dead_before = now - dt.timedelta(days=days["dead_letter_days"])
    live_attempts = AttemptItem.objects.exclude(item__state__in=FINISHED_ITEMS).values("attempt_id")
    return {
        "webhook_bodies": InboundEvent.objects.filter(
            tenant=tenant,
            status__in=HANDLED_EVENTS,
            received_at__lt=bodies_before,
            body_purged_at__isnull=True,
        ),
        "rejected_deliveries": InboundEvent.objects.filter(
            tenant=tenant, status=InboundEvent.Status.REJECTED, received_at__lt=bodies_before
        ),
        "rejected_counts": RejectedDeliveryCount.objects.filter(tenant=tenant, minute__lt=bodies_before),
        "attempts": Attempt.objects.filter(tenant=tenant, created_at__lt=attempts_before).exclude(
            pk__in=live_attempts
        ),
        "dead_letters": DeadLetter.objects.filter(tenant=tenant)
        .exclude(resolution=DeadLetter.Resolution.OPEN)
        .filter(Q(resolved_at__lt=dead_before) | Q(resolved_at__isnull=True, created_at__lt=dead_before)),
    }


def _purge_bodies(rows: QuerySet, now: dt.datetime) -> int:
    return rows.update(body=b"", body_purged_at=now)


def _delete(rows: QuerySet, now: dt.datetime) -> int:
    deleted, _ = rows.delete()
    return deleted


def _attempts_delete(rows: QuerySet, now: dt.datetime) -> int:
    # The attempt rows themselves, not their AttemptItem links (which the cascade also removes).
    ids = list(rows.values_list("pk", flat=True))
    AttemptItem.objects.filter(attempt_id__in=ids).delete()
    deleted, _ = Attempt.objects.filter(pk__in=ids).delete()
    return deleted


ACTIONS: dict[str, Callable[[QuerySet, dt.datetime], int]] = {
    "webhook_bodies": _purge_bodies,
    "rejected_deliveries": _delete,
    "rejected_counts": _delete,
    "attempts": _attempts_delete,
    "dead_letters": _delete,
}


def _batches(
    rows: QuerySet,
    action: Callable[[QuerySet, dt.datetime], int],
    *,
    order: str,
    now: dt.datetime,
    size: int,
    limit: int,
) -> tuple[int, bool]:
    """Apply ``action`` to ``rows`` by primary-key batches; returns (rows done, whether rows remain)."""
    done = 0
    for _ in range(limit):
        ids = list(rows.order_by(order, "-pk").values_list("pk", flat=True)[:size])
        if not ids:
            return done, False
        with transaction.atomic():
            # ``rows`` again, narrowed to the batch: its condition is re-checked in the statement.
            done += action(rows.filter(pk__in=ids), now)
        if len(ids) < size:
            return done, False
    return done, rows.exists()


def data_purge(
    *,
    tenants: Iterable[Tenant] | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    actor: Actor = SYSTEM,
) -> PurgeResult:
    """Purge what every tenant's retention allows (or count it, with ``dry_run``). Each tenant
    with something purged gets an audit row with the counts."""
    now = now or timezone.now()
    size = batch_size or settings.PURGE_BATCH_SIZE
    limit = max_batches or settings.PURGE_MAX_BATCHES
    result = PurgeResult(dry_run=dry_run)
    for tenant in tenants if tenants is not None else Tenant.objects.order_by("pk"):
        counts: dict[str, int] = {}
        for kind, rows in _eligible(tenant, now).items():
            if dry_run:
                counts[kind] = rows.count()
                continue
            counts[kind], remaining = _batches(
                rows, ACTIONS[kind], order=ORDER[kind], now=now, size=size, limit=limit
            )
            if remaining:
                result.unfinished.add((tenant.slug, kind))
        result.counts[tenant.slug] = counts
        if not dry_run and any(counts.values()):
            audit_record(
                actor=actor,
                action="data.purged",
                tenant=tenant,
                details={"counts": counts, "retention_days": tenant.retention},
            )
    return result
