"""Read models for the operations console: tenant health, per tenant and across tenants.

Every query here is bounded by tenant and time window and served by an index; none counts a
whole table. The overview runs one grouped query per figure for all listed tenants at once.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from integrations.common.ratelimit import tenant_budget
from integrations.models import Connection, InboundEvent, RejectedDeliveryCount
from sync.models import Attempt, DeadLetter, Operation, OutboundItem, SyncCheckpoint, TenantQueue
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
    budget = tenant_budget(tenant).snapshot()
    connections = list(Connection.objects.filter(tenant=tenant).order_by("provider", "created_at"))
    activity = _connection_activity(tenant, day_ago)
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
                **activity.get(
                    c.pk, {"last_webhook_at": None, "failures_24h": 0, "signature_failures_24h": 0}
                ),
                "checkpoints": _checkpoints(tenant, c, now),
            }
            for c in connections
        ],
        "virtuous_checkpoints": _checkpoints(tenant, None, now),
        "latency": _latency(items, day_ago),
        "submitted_24h": items.filter(submitted_at__gte=day_ago).count(),
        "failed_24h": DeadLetter.objects.filter(tenant=tenant, created_at__gte=day_ago).count(),
        "confirmed_24h": items.filter(confirmed_at__gte=day_ago).count(),
        "by_kind_24h": _by_kind(items, day_ago),
    }


# What a person calls the writes: a donation is a gift and usually a contact.
GIFT_OPERATIONS = (
    Operation.GIFT_TRANSACTION,
    Operation.RECURRING_GIFT_CREATE,
    Operation.RECURRING_GIFT_CANCEL,
    Operation.REVERSING_TRANSACTION,
)


def _by_kind(items: QuerySet[OutboundItem], since: datetime) -> dict[str, dict[str, int]]:
    """Submitted and confirmed in the window, as gifts and contacts ("3 gifts, 3 contacts")."""
    out = {
        "submitted": {"gifts": 0, "contacts": 0, "other": 0},
        "confirmed": {"gifts": 0, "contacts": 0, "other": 0},
    }
    for figure, column in (("submitted", "submitted_at"), ("confirmed", "confirmed_at")):
        for operation, n in (
            items.filter(**{f"{column}__gte": since})
            .values("operation")
            .annotate(n=Count("id"))
            .values_list("operation", "n")
        ):
            kind = (
                "gifts"
                if operation in GIFT_OPERATIONS
                else "contacts"
                if operation == Operation.CONTACT_TRANSACTION
                else "other"
            )
            out[figure][kind] += n
    return out


def _connection_activity(tenant: Tenant, since: datetime) -> dict[int, dict[str, Any]]:
    """Per connection: the last webhook received, and failures in the window (deliveries refused
    plus events that could not be processed)."""
    events = InboundEvent.objects.filter(tenant=tenant)
    out: dict[int, dict[str, Any]] = {}

    def row(pk: int) -> dict[str, Any]:
        return out.setdefault(pk, {"last_webhook_at": None, "failures_24h": 0, "signature_failures_24h": 0})

    for pk, last in (
        events.filter(capture=InboundEvent.Capture.WEBHOOK)
        .exclude(status=InboundEvent.Status.REJECTED)
        .values("connection")
        .annotate(last=Max("received_at"))
        .values_list("connection", "last")
    ):
        row(pk)["last_webhook_at"] = last
    for pk, n in (
        events.filter(
            received_at__gte=since,
            status__in=[InboundEvent.Status.FAILED, InboundEvent.Status.MALFORMED],
        )
        .values("connection")
        .annotate(n=Count("id"))
        .values_list("connection", "n")
    ):
        row(pk)["failures_24h"] += n
    # Every refused delivery is counted here, stored as a row or not.
    for pk, n in (
        RejectedDeliveryCount.objects.filter(tenant=tenant, minute__gte=since)
        .values("connection")
        .annotate(n=Sum("received"))
        .values_list("connection", "n")
    ):
        row(pk)["failures_24h"] += n or 0
    for pk, n in (
        _signature_failures(since + timedelta(hours=24))
        .filter(tenant=tenant)
        .values("connection")
        .annotate(n=Count("id"))
        .values_list("connection", "n")
    ):
        row(pk)["signature_failures_24h"] = n
    return out


def _chart(tenant: Tenant, now: datetime) -> list[dict[str, Any]]:
    """Submitted, confirmed and failed per hour over the last 24 h, oldest first, with bar
    heights in % of the busiest hour (the y axis's top is ``peak``)."""
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    items = OutboundItem.objects.filter(tenant=tenant)
    submitted = _per_hour(items.filter(submitted_at__gte=start), "submitted_at")
    confirmed = _per_hour(items.filter(confirmed_at__gte=start), "confirmed_at")
    failed = _per_hour(DeadLetter.objects.filter(tenant=tenant, created_at__gte=start), "created_at")
    hours = [start + timedelta(hours=i) for i in range(24)]
    peak = max([1, *submitted.values(), *confirmed.values(), *failed.values()])
    return [
        {
            "hour": h,
            "peak": peak,
            "submitted": submitted.get(h, 0),
            "confirmed": confirmed.get(h, 0),
            "failed": failed.get(h, 0),
            "submitted_pct": round(100 * submitted.get(h, 0) / peak),
            "confirmed_pct": round(100 * confirmed.get(h, 0) / peak),
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
