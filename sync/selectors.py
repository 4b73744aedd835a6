"""Read models for the operations console: tenant health, per tenant and across tenants.

Every query here is bounded by tenant and time window and served by an index; none counts a
whole table. The overview runs one grouped query per figure for all listed tenants at once.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from integrations.common.ratelimit import TenantBudget
from integrations.models import Connection, InboundEvent
from sync.models import Attempt, DeadLetter, OutboundItem, SyncCheckpoint, TenantQueue
from tenants.models import Tenant

# The states that make up the live queue (confirmed and discarded are history, not depth).
QUEUE_STATES = (
    OutboundItem.State.PENDING,
    OutboundItem.State.WAITING,
    OutboundItem.State.IN_FLIGHT,
    OutboundItem.State.SUBMITTED,
    OutboundItem.State.NEEDS_REVIEW,
    OutboundItem.State.DEAD,
)
LATENCY_SAMPLE = 200
STALE_SUCCESS = timedelta(hours=6)


def outbound_waiting_count(tenant: Tenant) -> int:
    """Items of this tenant waiting on a dependency (a new donor's gifts behind their contact)."""
    return OutboundItem.objects.filter(tenant=tenant, state=OutboundItem.State.WAITING).count()


@dataclass
class TenantHealthRow:
    """One line of the overview, with why it needs attention (empty list = healthy)."""

    tenant: Tenant
    pending: int = 0
    open_dead_letters: int = 0
    signature_failures_24h: int = 0
    last_success_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.reasons)


def tenant_health_overview(
    *, tenants: QuerySet[Tenant], now: datetime | None = None
) -> list[TenantHealthRow]:
    """All given tenants, those that need attention first (most reasons, then most dead letters)."""
    now = now or timezone.now()
    rows = {t.pk: TenantHealthRow(tenant=t) for t in tenants}
    ids = list(rows)
    for r in (
        OutboundItem.objects.filter(tenant__in=ids, state=OutboundItem.State.PENDING)
        .values("tenant")
        .annotate(n=Count("id"))
    ):
        rows[r["tenant"]].pending = r["n"]
    for r in (
        DeadLetter.objects.filter(tenant__in=ids, resolution=DeadLetter.Resolution.OPEN)
        .values("tenant")
        .annotate(n=Count("id"))
    ):
        rows[r["tenant"]].open_dead_letters = r["n"]
    for r in _signature_failures(now).filter(tenant__in=ids).values("tenant").annotate(n=Count("id")):
        rows[r["tenant"]].signature_failures_24h = r["n"]
    for tenant_id, last in TenantQueue.objects.filter(tenant__in=ids).values_list(
        "tenant", "last_success_at"
    ):
        rows[tenant_id].last_success_at = last
    for row in rows.values():
        row.reasons = _reasons(row, now)
    return sorted(
        rows.values(),
        key=lambda r: (-len(r.reasons), -r.open_dead_letters, -r.pending, r.tenant.name),
    )


def _reasons(row: TenantHealthRow, now: datetime) -> list[str]:
    reasons = []
    if row.tenant.status == Tenant.Status.PAUSED:
        reasons.append(f"Paused: {row.tenant.paused_reason or 'no reason given'}")
    if row.open_dead_letters:
        reasons.append(f"{row.open_dead_letters} open dead letter(s)")
    if row.signature_failures_24h:
        reasons.append(f"{row.signature_failures_24h} signature failure(s) in 24 h")
    if row.pending and (row.last_success_at is None or now - row.last_success_at > STALE_SUCCESS):
        reasons.append("Work is waiting and nothing has succeeded for 6 h")
    return reasons


def _signature_failures(now: datetime) -> QuerySet[InboundEvent]:
    return InboundEvent.objects.filter(
        status=InboundEvent.Status.REJECTED, signature_valid=False, received_at__gte=now - timedelta(hours=24)
    )


def tenant_health(*, tenant: Tenant, now: datetime | None = None) -> dict[str, Any]:
    """Everything the tenant dashboard shows, in bounded queries."""
    now = now or timezone.now()
    day_ago = now - timedelta(hours=24)
    items = OutboundItem.objects.filter(tenant=tenant)
    depth = dict(
        items.filter(state__in=QUEUE_STATES)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    queue = TenantQueue.objects.filter(tenant=tenant).first()
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    used = Attempt.objects.filter(tenant=tenant, created_at__gte=hour_start).count()
    budget = TenantBudget(str(tenant.public_id), tenant.usable_hourly_budget).snapshot()
    connections = list(Connection.objects.filter(tenant=tenant).order_by("provider", "created_at"))
    sig_failures = dict(
        _signature_failures(now)
        .filter(tenant=tenant)
        .values("connection")
        .annotate(n=Count("id"))
        .values_list("connection", "n")
    )
    return {
        "depth": [
            (label, depth.get(value, 0), value)
            for value, label in OutboundItem.State.choices
            if value in QUEUE_STATES
        ],
        "chart": _chart(tenant, now),
        "budget": {
            "per_hour": tenant.hourly_request_budget,
            "usable": tenant.usable_hourly_budget,
            "used_this_hour": used,
            "left_this_hour": max(tenant.usable_hourly_budget - used, 0),
            "tokens": budget["tokens"],
            "capacity": budget["capacity"],
            "paused_until": budget["paused_until"],
        },
        "open_dead_letters": DeadLetter.objects.filter(
            tenant=tenant, resolution=DeadLetter.Resolution.OPEN
        ).count(),
        "last_success_at": queue.last_success_at if queue else None,
        "last_drain_at": queue.last_drain_at if queue else None,
        "queue_error": queue.last_error if queue else "",
        "connections": [
            {
                "connection": c,
                "signature_failures_24h": sig_failures.get(c.pk, 0),
                "checkpoints": _checkpoints(tenant, c, now),
            }
            for c in connections
        ],
        "virtuous_checkpoints": _checkpoints(tenant, None, now),
        "latency": _latency(items, day_ago),
        "submitted_24h": items.filter(submitted_at__gte=day_ago).count(),
        "failed_24h": DeadLetter.objects.filter(tenant=tenant, created_at__gte=day_ago).count(),
    }


def _chart(tenant: Tenant, now: datetime) -> list[dict[str, Any]]:
    """Submitted and failed per hour over the last 24 h, oldest first, as bar heights in %."""
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    submitted = _per_hour(OutboundItem.objects.filter(tenant=tenant, submitted_at__gte=start), "submitted_at")
    failed = _per_hour(DeadLetter.objects.filter(tenant=tenant, created_at__gte=start), "created_at")
    hours = [start + timedelta(hours=i) for i in range(24)]
    peak = max([1, *submitted.values(), *failed.values()])
    return [
        {
            "hour": h,
            "submitted": submitted.get(h, 0),
            "failed": failed.get(h, 0),
            "submitted_pct": round(100 * submitted.get(h, 0) / peak),
            "failed_pct": round(100 * failed.get(h, 0) / peak),
        }
        for h in hours
    ]


def _per_hour(qs: QuerySet, column: str) -> dict[datetime, int]:
    rows = qs.annotate(h=TruncHour(column)).values("h").annotate(n=Count("id")).values_list("h", "n")
    return {h.astimezone(UTC) if h.tzinfo else h.replace(tzinfo=UTC): n for h, n in rows}


def _checkpoints(tenant: Tenant, connection: Connection | None, now: datetime) -> list[dict[str, Any]]:
    scope = str(connection.public_id) if connection else ""
    return [
        {
            "checkpoint": cp,
            "age": (now - cp.last_processed_timestamp) if cp.last_processed_timestamp else None,
        }
        for cp in SyncCheckpoint.objects.filter(tenant=tenant, scope=scope).order_by(
            "resource_type", "direction"
        )
    ]


def _latency(items: QuerySet[OutboundItem], since: datetime) -> dict[str, float | int | None]:
    """Submission-to-confirmation seconds over the latest confirmed items (a bounded sample)."""
    pairs = (
        items.filter(state=OutboundItem.State.CONFIRMED, submitted_at__gte=since, confirmed_at__isnull=False)
        .order_by("-submitted_at")
        .values_list("submitted_at", "confirmed_at")[:LATENCY_SAMPLE]
    )
    seconds = sorted((c - s).total_seconds() for s, c in pairs)
    if not seconds:
        return {"count": 0, "median": None, "p95": None}
    return {
        "count": len(seconds),
        "median": statistics.median(seconds),
        "p95": seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))],
    }
