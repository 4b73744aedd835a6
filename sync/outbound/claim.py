"""Claiming a tenant's due items for one worker, and taking back those a dead worker held.

On PostgreSQL the claim is one prepared statement (the drain claims once or more per call);
elsewhere it is ``rows_claim_fetch``'s conditional UPDATE. See docs/decisions.md, "Issue 17".
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from django.utils import timezone

from integrations.common.rows import RowLoader, fixed_cursor, quoted_columns
from sync.claims import rows_claim_fetch
from sync.models import Direction, OutboundItem
from sync.outbound.transitions import items_dead_letter
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def outbound_claim(
    *, tenant: Tenant, worker: str, limit: int, direction: str = Direction.OUTBOUND
) -> list[OutboundItem]:
    """Claim up to ``limit`` due items of one tenant, live before bulk, under a lease: on
    PostgreSQL one prepared statement (``_claim_statement``), elsewhere ``rows_claim_fetch``."""
    now = timezone.now()
    if db_connection.vendor == "postgresql":
        claimed = _claim_returning(tenant=tenant, worker=worker, limit=limit, direction=direction, now=now)
    else:
        claimed = _claim_fetch(tenant=tenant, worker=worker, limit=limit, direction=direction, now=now)
    if not claimed:
        return []
    exhausted = [i for i in claimed if i.attempts >= tenant.retry_max_attempts]
    for item in exhausted:
        # Reclaimed after crashes until its attempts ran out: never retried forever.
        items_dead_letter(
            tenant,
            [item],
            message="Attempts exhausted (worker lost the item repeatedly)",
            spend_attempt=False,
        )
    return [i for i in claimed if i not in exhausted]


_CLAIM_ORDER = ("priority", "next_attempt_at", "id")


def _claim_returning(
    *, tenant: Tenant, worker: str, limit: int, direction: str, now: datetime
) -> list[OutboundItem]:
    """The claim as one autocommitted statement: lock the due rows (SKIP LOCKED), lease them and
    return them. Its text never changes, so it is prepared once per connection: a drain claims
    once or more per call, and through the ORM this was a transaction of two compiled statements."""
    sql, loader = _claim_statement()
    lease_until = now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS)
    params = [
        *(OutboundItem.State.IN_FLIGHT, worker, lease_until, now),
        *(tenant.pk, direction, OutboundItem.State.PENDING, now, limit),
    ]
    with fixed_cursor(db_connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    items = [loader.build(db_connection, row) for row in rows]
    items.sort(key=lambda i: (i.priority, i.next_attempt_at, i.pk))  # RETURNING keeps no order
    return items


@functools.cache
def _claim_statement() -> tuple[str, RowLoader]:
    qn = db_connection.ops.quote_name
    table = qn(OutboundItem._meta.db_table)
    col = quoted_columns(OutboundItem, db_connection)
    loader = RowLoader(OutboundItem, "o", db_connection)
    sql = (
        f"UPDATE {table} AS o SET {col['state']} = %s, {col['lease_owner']} = %s, "
        f"{col['lease_expires_at']} = %s, {col['updated_at']} = %s "
        f"WHERE o.{col['id']} = ANY(ARRAY("
        f"SELECT {col['id']} FROM {table} WHERE {col['tenant']} = %s AND {col['direction']} = %s "
        f"AND {col['state']} = %s AND {col['next_attempt_at']} <= %s "
        f"ORDER BY {', '.join(col[name] for name in _CLAIM_ORDER)} LIMIT %s FOR UPDATE SKIP LOCKED)) "
        f"RETURNING {loader.select}"
    )
    return sql, loader


def _claim_fetch(
    *, tenant: Tenant, worker: str, limit: int, direction: str, now: datetime
) -> list[OutboundItem]:
    claimed = rows_claim_fetch(
        OutboundItem.objects.filter(
            tenant=tenant, direction=direction, state=OutboundItem.State.PENDING, next_attempt_at__lte=now
        ),
        order_by=_CLAIM_ORDER,
        limit=limit,
        still={"state": OutboundItem.State.PENDING},
        claim={
            "state": OutboundItem.State.IN_FLIGHT,
            "lease_owner": worker,
            "lease_expires_at": now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS),
            "updated_at": now,
        },
    )
    if claimed is None:  # raced without row locks: keep only what this worker really holds
        claimed = list(
            OutboundItem.objects.filter(
                tenant=tenant, lease_owner=worker, state=OutboundItem.State.IN_FLIGHT, updated_at=now
            ).order_by(*_CLAIM_ORDER)
        )
    return claimed


def outbound_reclaim_expired(*, tenant: Tenant | None = None) -> int:
    """Put items whose worker died (lease expired) back in the queue, counting the lost attempt.

    Their external ids are fixed, so a resubmitted Transaction cannot create a duplicate in
    Virtuous; a direct create whose send was recorded is looked up before it is sent again.
    One fixed statement: every drain turn starts with it, and it rarely finds anything.
    """
    now = db_connection.ops.adapt_datetimefield_value(timezone.now())
    with fixed_cursor(db_connection) as cursor:
        cursor.execute(_reclaim_sql(tenant is not None), _reclaim_params(tenant, now))
        count = cursor.rowcount
    if count:
        logger.warning("outbound.reclaimed count=%d tenant=%s", count, tenant.slug if tenant else "*")
    return count


_RECLAIMED = "Lease expired: the worker holding this item stopped; resubmitting with the same ids"


def _reclaim_params(tenant: Tenant | None, now: Any) -> list[Any]:
    """``_reclaim_sql``'s parameters at ``now`` (a database value). Across tenants every direction
    is named, so the direction-led index serves the sweep."""
    params = [OutboundItem.State.PENDING, now, _RECLAIMED, now, OutboundItem.State.IN_FLIGHT, now]
    return [*params, tenant.pk] if tenant is not None else [*params, *Direction.values]


@functools.cache
def _reclaim_sql(one_tenant: bool) -> str:
    qn = db_connection.ops.quote_name
    col = quoted_columns(OutboundItem, db_connection)
    return (
        f"UPDATE {qn(OutboundItem._meta.db_table)} SET {col['state']} = %s, {col['lease_owner']} = '', "
        f"{col['lease_expires_at']} = NULL, {col['next_attempt_at']} = %s, "
        f"{col['attempts']} = {col['attempts']} + 1, {col['last_error']} = %s, {col['updated_at']} = %s "
        f"WHERE {col['state']} = %s AND {col['lease_expires_at']} < %s AND "
        + (
            f"{col['tenant']} = %s"
            if one_tenant
            else f"{col['direction']} IN ({', '.join(['%s'] * len(Direction))})"
        )
    )
