"""A tenant's dispatch lease: claiming due tenants, handing a tenant back, and its wake time.

Every drain turn of the dispatcher claims its tenant and hands it back, and a turn at 500 ms
Virtuous latency is a call or two. Through the ORM the claim (a transaction of three statements)
and the release (three UPDATEs, one with two subqueries) cost more of our CPU than the calls they
framed, nearly all of it compiling the same statements again. On PostgreSQL each is now fixed
text prepared once per connection: the claim one statement, the release a lock on the queue row
and one statement (so its read of the items comes after the lock); elsewhere the ORM's
statements stay. See docs/decisions.md, "Issue 17", fifth and eighth rounds.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, F, Min, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.common.rows import RowLoader, fixed_cursor, quoted_columns
from sync.models import Direction, OutboundItem, TenantQueue
from tenants.models import Tenant


def _unleased(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def tenant_queues_due_unleased(now: datetime, *, due_by: datetime) -> QuerySet[TenantQueue]:
    """Active tenants' queues due by ``due_by`` that no dispatcher holds at ``now``."""
    return TenantQueue.objects.filter(
        _unleased(now), wake_at__lte=due_by, tenant__status=Tenant.Status.ACTIVE
    )


def tenant_queue_claim(*, owner: str, limit: int, lease_seconds: float) -> list[int]:
    """Lease up to ``limit`` active tenants whose queue is due and not leased by someone else.

    Live work that found its queue idle goes first (a new donation is not made to wait a round of
    backlogs), then the least recently drained, a never-drained tenant (a new customer's first
    gifts) before the others."""
    if limit <= 0:
        return []
    now = timezone.now()
    fresh_since = now - timedelta(seconds=settings.OUTBOUND_FRESH_SECONDS)
    lease_until = now + timedelta(seconds=lease_seconds)
    if db_connection.vendor != "postgresql":
        return _claim_orm(owner=owner, limit=limit, now=now, fresh_since=fresh_since, lease_until=lease_until)
    with fixed_cursor(db_connection) as cursor:
        cursor.execute(_claim_sql(), [owner, lease_until, now, now, Tenant.Status.ACTIVE, fresh_since, limit])
        rows = cursor.fetchall()
    # RETURNING keeps no order: sorted as the claim chose them.
    rows.sort(
        key=lambda r: (
            0 if r[1] is not None and r[1] >= fresh_since else 1,
            r[2] is not None,
            r[2] or now,
            r[3],
        )
    )
    return [row[0] for row in rows]


@functools.cache
def _claim_sql() -> str:
    qn = db_connection.ops.quote_name
    queue, col = qn(TenantQueue._meta.db_table), quoted_columns(TenantQueue, db_connection)
    tenants, status = qn(Tenant._meta.db_table), qn(Tenant._meta.get_field("status").column)
    # The subquery locks what it picks (SKIP LOCKED: another dispatcher's picks are passed over)
    # and re-checks its conditions on the locked rows, so two dispatchers never lease one tenant.
    return (
        f"UPDATE {queue} AS q SET {col['lease_owner']} = %s, {col['lease_until']} = %s "
        f"FROM (SELECT p.{col['tenant']} FROM {queue} AS p "
        f"JOIN {tenants} AS t ON t.{qn(Tenant._meta.pk.column)} = p.{col['tenant']} "
        f"WHERE (p.{col['lease_until']} IS NULL OR p.{col['lease_until']} < %s) "
        f"AND p.{col['wake_at']} <= %s AND t.{status} = %s "
        f"ORDER BY CASE WHEN p.{col['due_since']} >= %s THEN 0 ELSE 1 END, "
        f"p.{col['last_drain_at']} ASC NULLS FIRST, p.{col['wake_at']} "
        f"LIMIT %s FOR UPDATE OF p SKIP LOCKED) AS picked "
        f"WHERE q.{col['tenant']} = picked.{col['tenant']} "
        f"RETURNING q.{col['tenant']}, q.{col['due_since']}, q.{col['last_drain_at']}, q.{col['wake_at']}"
    )


def _claim_orm(
    *, owner: str, limit: int, now: datetime, fresh_since: datetime, lease_until: datetime
) -> list[int]:
    with transaction.atomic():
        ids = list(
            tenant_queues_due_unleased(now, due_by=now)
            .select_for_update(skip_locked=True, of=("self",))
            .annotate(backlog=Case(When(due_since__gte=fresh_since, then=0), default=1))
            .order_by("backlog", F("last_drain_at").asc(nulls_first=True), "wake_at")
            .values_list("tenant_id", flat=True)[:limit]
        )
        if not ids:
            return []
        TenantQueue.objects.filter(_unleased(now), tenant_id__in=ids).update(
            lease_owner=owner, lease_until=lease_until
        )
    return list(
        TenantQueue.objects.filter(tenant_id__in=ids, lease_owner=owner).values_list("tenant_id", flat=True)
    )


def tenant_queue_release(
    *, tenant: Tenant, owner: str, not_before: datetime | None = None, submitted: int | None = None
) -> None:
    """Hand the tenant's lease back, waking it for its next due item, or not before ``not_before``
    (its drains found it unable to call until then: an empty live budget, a 429, a failing
    organisation), so its other due items do not bring a drain back only to stop again.

    ``submitted`` records the lease's drains (how many items they submitted; None: no drain ran):
    ``last_drain_at`` orders the next claims, ``last_success_at`` is the console's."""
    now = timezone.now()
    if db_connection.vendor == "postgresql":
        # The row first, then the read: the UPDATE's snapshot is taken once the lock is held, so
        # an enqueue that committed its item and woke the queue before is seen, and one after
        # waits for this commit and moves the wake time again (``queue_wake``). In one statement
        # the read's snapshot came before the lock, and an item committed between was lost to a
        # wake time computed without it.
        with transaction.atomic(), fixed_cursor(db_connection) as cursor:
            cursor.execute(_lock_sql(), [tenant.pk])
            cursor.execute(_release_sql(), _release_params(tenant.pk, owner, not_before, submitted, now))
        return
    tenant_queue_next_wake(tenant=tenant)
    if not_before is not None:
        TenantQueue.objects.filter(tenant=tenant, wake_at__lt=not_before).update(wake_at=not_before)
    TenantQueue.objects.filter(tenant=tenant, lease_owner=owner).update(
        lease_owner="",
        lease_until=None,
        # Nothing due now ends the live streak: the next live write starts a new one.
        due_since=Case(
            When(Q(wake_at__isnull=True) | Q(wake_at__gt=now), then=Value(None)),
            default=F("due_since"),
        ),
    )
    if submitted is not None:
        TenantQueue.objects.filter(tenant=tenant).update(
            last_drain_at=now, **({"last_success_at": now} if submitted else {})
        )


def _release_params(
    tenant_id: int, owner: str, not_before: datetime | None, submitted: int | None, now: datetime
) -> list:
    pending, in_flight, outbound = (
        OutboundItem.State.PENDING,
        OutboundItem.State.IN_FLIGHT,
        Direction.OUTBOUND,
    )
    return [  # in the order of the text
        *(tenant_id, pending, outbound, tenant_id, in_flight, outbound),
        not_before,
        *(owner, owner, owner, now),
        *(submitted is not None, now, bool(submitted), now),
        tenant_id,
    ]


@functools.cache
def _lock_sql() -> str:
    qn = db_connection.ops.quote_name
    col = quoted_columns(TenantQueue, db_connection)
    return f"SELECT 1 FROM {qn(TenantQueue._meta.db_table)} WHERE {col['tenant']} = %s FOR UPDATE"


@functools.cache
def _release_sql() -> str:
    qn = db_connection.ops.quote_name
    queue, col = qn(TenantQueue._meta.db_table), quoted_columns(TenantQueue, db_connection)
    items, item = qn(OutboundItem._meta.db_table), quoted_columns(OutboundItem, db_connection)

    def earliest(column: str) -> str:
        return (
            f"(SELECT min({item[column]}) FROM {items} WHERE {item['tenant']} = %s "
            f"AND {item['state']} = %s AND {item['direction']} = %s)"
        )

    # ``n.wake``: the next due item, else the earliest lease to expire, held to ``not_before``
    # (GREATEST skips a NULL not_before; nothing due stays NULL). ``w`` is MATERIALIZED so its
    # lookups run once: as a subquery in FROM it was pulled up, and every use of ``due`` ran them
    # again. The lease columns change only for its holder; the wake time whoever holds it (an
    # enqueue moves it earlier with its own UPDATE).
    ours = f"q.{col['lease_owner']} = %s"
    return (
        f"WITH w AS MATERIALIZED (SELECT COALESCE({earliest('next_attempt_at')}, "
        f"{earliest('lease_expires_at')}) AS due), "
        f"n AS (SELECT CASE WHEN w.due IS NULL THEN NULL ELSE GREATEST(w.due, %s::timestamptz) END AS wake FROM w) "
        f"UPDATE {queue} AS q SET {col['wake_at']} = n.wake, "
        f"{col['lease_owner']} = CASE WHEN {ours} THEN '' ELSE q.{col['lease_owner']} END, "
        f"{col['lease_until']} = CASE WHEN {ours} THEN NULL ELSE q.{col['lease_until']} END, "
        f"{col['due_since']} = CASE WHEN {ours} AND (n.wake IS NULL OR n.wake > %s) THEN NULL "
        f"ELSE q.{col['due_since']} END, "
        f"{col['last_drain_at']} = CASE WHEN %s THEN %s ELSE q.{col['last_drain_at']} END, "
        f"{col['last_success_at']} = CASE WHEN %s THEN %s ELSE q.{col['last_success_at']} END "
        f"FROM n WHERE q.{col['tenant']} = %s"
    )


def tenant_queue_next_wake(*, tenant: Tenant) -> None:
    """Recompute when this tenant next needs a drain, in one UPDATE (SQLite: one writer at a
    time, so no enqueue commits while it reads; PostgreSQL releases lock the row first).

    An enqueue that commits meanwhile moves ``wake_at`` earlier again with its own update;
    ``outbound_maintenance`` repairs any wake time left wrong within a minute.
    """

    def earliest(state: str, column: str) -> Subquery:
        return Subquery(
            OutboundItem.objects.filter(tenant=tenant, state=state, direction=Direction.OUTBOUND)
            .order_by()
            .values("tenant")
            .annotate(m=Min(column))
            .values("m")[:1]
        )

    TenantQueue.objects.filter(tenant=tenant).update(
        wake_at=Coalesce(
            earliest(OutboundItem.State.PENDING, "next_attempt_at"),
            earliest(OutboundItem.State.IN_FLIGHT, "lease_expires_at"),
        )
    )


def tenant_load(tenant_id: int) -> Tenant:
    """The tenant a drain turn works for, read fresh (its status, budget, retry policy) by one
    fixed statement: a turn reads it once, and the ORM compiled the same SELECT every time."""
    sql, loader = _tenant_sql()
    with fixed_cursor(db_connection) as cursor:
        cursor.execute(sql, [tenant_id])
        row = cursor.fetchone()
    if row is None:
        raise Tenant.DoesNotExist(f"No tenant {tenant_id}.")
    return loader.build(db_connection, row)


@functools.cache
def _tenant_sql() -> tuple[str, RowLoader]:
    loader = RowLoader(Tenant, "t", db_connection)
    qn = db_connection.ops.quote_name
    sql = f"SELECT {loader.select} FROM {qn(Tenant._meta.db_table)} AS t WHERE t.{qn(Tenant._meta.pk.column)} = %s"
    return sql, loader
