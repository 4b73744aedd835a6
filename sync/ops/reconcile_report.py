"""The per-tenant reconciliation report (spec 4.6): queue states, latency and recoveries."""

from __future__ import annotations

import datetime as dt
import math
from statistics import median
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from sync.models import (
    DeadLetter,
    OutboundItem,
    ReconciliationLog,
    SyncRecord,
)
from tenants.models import Tenant

Category = ReconciliationLog.Category


def reconcile_report(*, tenant: Tenant, days: int = 7) -> dict[str, Any]:
    """Pending, submitted > 24 h, needs review, failed, conflicts, latency and recoveries."""
    now = timezone.now()
    since = now - dt.timedelta(days=days)
    states = dict(
        OutboundItem.objects.filter(tenant=tenant)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    stale = now - dt.timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS)
    latencies = sorted(
        (confirmed - submitted).total_seconds()
        for submitted, confirmed in OutboundItem.objects.filter(
            tenant=tenant,
            state=OutboundItem.State.CONFIRMED,
            confirmed_at__gte=since,
            submitted_at__isnull=False,
        )
        .order_by("-confirmed_at")
        .values_list("submitted_at", "confirmed_at")[:5000]
    )
    return {
        "tenant": tenant.slug,
        "pending": states.get(OutboundItem.State.PENDING, 0) + states.get(OutboundItem.State.IN_FLIGHT, 0),
        "waiting_on_dependency": states.get(OutboundItem.State.WAITING, 0),
        "submitted_over_24h": OutboundItem.objects.filter(
            tenant=tenant, state=OutboundItem.State.SUBMITTED, submitted_at__lt=stale
        ).count(),
        "needs_review": states.get(OutboundItem.State.NEEDS_REVIEW, 0),
        "failed": DeadLetter.objects.filter(tenant=tenant, resolution=DeadLetter.Resolution.OPEN).count(),
        "conflicts": SyncRecord.objects.filter(
            tenant=tenant, sync_state=SyncRecord.SyncState.CONFLICT
        ).count(),
        "latency_median_s": round(median(latencies), 1) if latencies else None,
        "latency_p95_s": round(latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)], 1)
        if latencies
        else None,
        "recovered": ReconciliationLog.objects.filter(
            tenant=tenant, category__in=[Category.STUCK, Category.MISSED_WEBHOOK], created_at__gte=since
        ).count(),
        "window_days": days,
    }
