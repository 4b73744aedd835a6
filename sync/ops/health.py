"""What needs a person, per tenant: the figures behind "Healthy" and "Needs attention".

A tenant is healthy only when every count here is zero. Each concern is one kind of stuck work
with its count and, where it has one, the moment it started, so the console can say what is
wrong, since when, and link to the rows. Every query is grouped by tenant and bounded by an
index (status or state first), so the overview costs one query per kind for all tenants.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from sync.models import DeadLetter, OutboundItem, SyncCheckpoint, TenantQueue
from tenants.models import Tenant

# A poll is overdue once three of its intervals pass without one starting.
STALE_CHECKPOINT_INTERVALS = 3
# Work waiting with no success for this long means the queue is stuck, not just busy.
STALLED_QUEUE = timedelta(hours=6)

# Kinds, in the order a person should look at them.
PAUSED = "paused"
CONNECTION_FAILING = "connection_failing"
CONNECTION_PAUSED = "connection_paused"
DEAD_LETTERS = "dead_letters"
INBOUND_REVIEW = "inbound_review"
INBOUND_FAILED = "inbound_failed"
ITEMS_NEED_REVIEW = "needs_review"
UNCONFIRMED = "unconfirmed"
WAITING = "waiting"
STALE_CHECKPOINT = "stale_checkpoint"
SIGNATURE_FAILURES = "signature_failures"
QUEUE_STALLED = "queue_stalled"
KINDS = (
    PAUSED,
    CONNECTION_FAILING,
    CONNECTION_PAUSED,
    DEAD_LETTERS,
    INBOUND_REVIEW,
    INBOUND_FAILED,
    ITEMS_NEED_REVIEW,
    UNCONFIRMED,
    WAITING,
    STALE_CHECKPOINT,
    SIGNATURE_FAILURES,
    QUEUE_STALLED,
)


@dataclass(frozen=True)
class Concern:
    """One kind of stuck work of one tenant: how many, since when, and what it is in words."""

    kind: str
    count: int
    text: str
    since: datetime | None = None
    detail: str = ""


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def tenant_concerns(*, tenants: list[Tenant], now: datetime | None = None) -> dict[int, list[Concern]]:
    """Every tenant's concerns (empty list = healthy), in the order of ``KINDS``."""
    now = now or timezone.now()
    ids = [t.pk for t in tenants]
    found: dict[int, list[Concern]] = defaultdict(list)
    for t in tenants:
        if t.status == Tenant.Status.PAUSED:
            found[t.pk].append(
                Concern(PAUSED, 1, f"Paused: {t.paused_reason or 'no reason given'}", since=t.paused_at)
            )
    _connections(ids, now, found)
    _grouped(
        found,
        DeadLetter.objects.filter(tenant__in=ids, resolution=DeadLetter.Resolution.OPEN),
        "created_at",
        lambda n: f"{_plural(n, 'open dead letter', 'open dead letters')} (failed writes to fix or discard)",
        DEAD_LETTERS,
    )
    _grouped(
        found,
        InboundEvent.objects.filter(tenant__in=ids, status=InboundEvent.Status.NEEDS_REVIEW),
        "received_at",
        lambda n: f"{_plural(n, 'inbound event needs', 'inbound events need')} review",
        INBOUND_REVIEW,
    )
    _grouped(
        found,
        InboundEvent.objects.filter(
            tenant__in=ids, status__in=[InboundEvent.Status.FAILED, InboundEvent.Status.MALFORMED]
        ),
        "received_at",
        lambda n: f"{_plural(n, 'inbound event', 'inbound events')} could not be processed",
        INBOUND_FAILED,
    )
    _grouped(
        found,
        OutboundItem.objects.filter(tenant__in=ids, state=OutboundItem.State.NEEDS_REVIEW),
        "submitted_at",
        lambda n: f"{_plural(n, 'item', 'items')} sent but never seen in Virtuous (needs review)",
        ITEMS_NEED_REVIEW,
    )
    overdue = now - timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS)
    _grouped(
        found,
        OutboundItem.objects.filter(
            tenant__in=ids, state=OutboundItem.State.SUBMITTED, submitted_at__lt=overdue
        ),
        "submitted_at",
        lambda n: (
            f"{_plural(n, 'item', 'items')} not confirmed by Virtuous "
            f"{settings.OUTBOUND_CONFIRM_LOOKUP_HOURS} h after sending"
        ),
        UNCONFIRMED,
    )
    # A gift waits behind its donor's contact as a matter of course (seconds for a live gift, one
    # nightly batch for an import); only one still waiting after the confirmation window is stuck.
    _grouped(
        found,
        OutboundItem.objects.filter(
            tenant__in=ids, state=OutboundItem.State.WAITING, waiting_since__lt=overdue
        ),
        "waiting_since",
        lambda n: (
            f"{_plural(n, 'item has', 'items have')} waited on another record for more than "
            f"{settings.OUTBOUND_CONFIRM_LOOKUP_HOURS} h"
        ),
        WAITING,
    )
    _stale_checkpoints(ids, now, found)
    day_ago = now - timedelta(hours=24)
    _grouped(
        found,
        InboundEvent.objects.filter(
            tenant__in=ids,
            status=InboundEvent.Status.REJECTED,
            signature_valid=False,
            received_at__gte=day_ago,
        ),
        "received_at",
        lambda n: f"{_plural(n, 'delivery', 'deliveries')} with a bad signature in 24 h",
        SIGNATURE_FAILURES,
    )
    _stalled(ids, now, found)
    order = {k: i for i, k in enumerate(KINDS)}
    return {t.pk: sorted(found.get(t.pk, []), key=lambda c: order[c.kind]) for t in tenants}


def _grouped(found, qs, time_field: str, text, kind: str) -> None:
    for row in qs.values("tenant").annotate(n=Count("id"), since=Min(time_field)):
        found[row["tenant"]].append(Concern(kind, row["n"], text(row["n"]), since=row["since"]))


def _connections(ids: list[int], now: datetime, found) -> None:
    """Active connections whose last run failed (since their last success), and paused ones."""
    rows = Connection.objects.filter(tenant__in=ids, is_active=True).filter(
        ~Q(last_error="") | Q(paused_until__gt=now)
    )
    for c in rows.order_by("tenant", "provider", "pk"):
        name = c.name or c.provider.replace("_", " ").title()
        if c.paused_until and c.paused_until > now:
            found[c.tenant_id].append(
                Concern(
                    CONNECTION_PAUSED,
                    1,
                    f"{name} polling is paused after repeated failures",
                    since=c.last_success_at,
                    detail=c.last_error,
                )
            )
        elif c.last_error:
            found[c.tenant_id].append(
                Concern(
                    CONNECTION_FAILING,
                    1,
                    f"{name} is failing: {c.last_error}",
                    since=c.last_success_at,
                    detail=c.last_error,
                )
            )


def _stale_checkpoints(ids: list[int], now: datetime, found) -> None:
    """Checkpoints of polling connections that have not been read for three intervals."""
    polling = [
        c
        for c in Connection.objects.filter(tenant__in=ids, is_active=True).exclude(
            capture_mode=Connection.CaptureMode.WEBHOOK
        )
        if c.polls and not (c.paused_until and c.paused_until > now)
    ]
    if not polling:
        return
    by_scope = {(c.tenant_id, c.credential_scope): c for c in polling}
    stale: dict[int, list[datetime | None]] = defaultdict(list)
    for cp in SyncCheckpoint.objects.filter(
        tenant__in={c.tenant_id for c in polling}, scope__in={s for _, s in by_scope}
    ):
        c = by_scope.get((cp.tenant_id, cp.scope))
        if c is None:
            continue
        minutes = (
            c.backstop_interval_minutes
            if c.polling_role == Connection.PollingRole.BACKSTOP
            else c.poll_interval_minutes
        )
        limit = now - timedelta(minutes=minutes * STALE_CHECKPOINT_INTERVALS)
        if (cp.last_run_at or cp.updated_at) < limit:
            stale[cp.tenant_id].append(cp.last_run_at)
    for tenant_id, runs in stale.items():
        known = [r for r in runs if r]
        found[tenant_id].append(
            Concern(
                STALE_CHECKPOINT,
                len(runs),
                f"{_plural(len(runs), 'checkpoint has', 'checkpoints have')} not been read for "
                f"{STALE_CHECKPOINT_INTERVALS} poll intervals",
                since=min(known) if known else None,
            )
        )


def _stalled(ids: list[int], now: datetime, found) -> None:
    """Items that have waited to be sent for 6 h while nothing succeeded for 6 h."""
    pending = (
        OutboundItem.objects.filter(tenant__in=ids, state=OutboundItem.State.PENDING)
        .values("tenant")
        .annotate(n=Count("id"), oldest=Min("created_at"))
    )
    last = dict(TenantQueue.objects.filter(tenant__in=ids).values_list("tenant", "last_success_at"))
    for row in pending:
        success = last.get(row["tenant"])
        if now - row["oldest"] > STALLED_QUEUE and (success is None or now - success > STALLED_QUEUE):
            n = row["n"]
            found[row["tenant"]].append(
                Concern(
                    QUEUE_STALLED,
                    n,
                    f"{_plural(n, 'item waits', 'items wait')} to be sent and nothing has succeeded for 6 h",
                    since=row["oldest"],
                )
            )


@dataclass
class TenantHealthRow:
    """One line of the overview: the tenant, its concerns (empty = healthy) and its last success."""

    tenant: Tenant
    concerns: list[Concern] = field(default_factory=list)
    last_success_at: datetime | None = None

    @property
    def needs_attention(self) -> bool:
        return bool(self.concerns)

    @property
    def reasons(self) -> list[str]:
        return [c.text for c in self.concerns]

    def count(self, kind: str) -> int:
        return sum(c.count for c in self.concerns if c.kind == kind)


def tenant_health_overview(
    *, tenants: QuerySet[Tenant], now: datetime | None = None
) -> list[TenantHealthRow]:
    """All given tenants, those that need attention first (most kinds of concern, then most
    stuck rows), then by name."""
    listed = list(tenants)
    concerns = tenant_concerns(tenants=listed, now=now)
    last = dict(TenantQueue.objects.filter(tenant__in=listed).values_list("tenant", "last_success_at"))
    rows = [
        TenantHealthRow(tenant=t, concerns=concerns[t.pk], last_success_at=last.get(t.pk)) for t in listed
    ]
    return sorted(
        rows,
        key=lambda r: (-len(r.concerns), -sum(c.count for c in r.concerns), r.tenant.name.lower()),
    )
