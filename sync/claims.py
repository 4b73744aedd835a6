"""Claiming rows of our own queues (OutboundItem, InboundEvent) for one worker.

Candidates are locked with SKIP LOCKED on PostgreSQL, so concurrent drains never wait on or take
each other's rows; the UPDATE is conditional on the row still being claimable everywhere, so even
without row locks (SQLite) a row is claimed by exactly one worker.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet


def rows_claim(
    candidates: QuerySet,
    *,
    order_by: tuple[str, ...],
    limit: int,
    still: dict[str, Any],
    claim: dict[str, Any],
) -> list[int]:
    """Ids of up to ``limit`` of ``candidates`` now updated with ``claim`` (only rows matching ``still``)."""
    with transaction.atomic():
        ids = list(
            candidates.select_for_update(skip_locked=True)
            .order_by(*order_by)
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            candidates.model.objects.filter(id__in=ids, **still).update(**claim)
    return ids


def rows_claim_fetch(
    candidates: QuerySet,
    *,
    order_by: tuple[str, ...],
    limit: int,
    still: dict[str, Any],
    claim: dict[str, Any],
) -> list[Model] | None:
    """``rows_claim`` that returns the claimed rows themselves (read while locked, with ``claim``
    applied), saving the read-back. None when some candidate was taken between the read and the
    UPDATE (possible only without row locks): the caller then reads back what it holds."""
    with transaction.atomic():
        rows = list(candidates.select_for_update(skip_locked=True).order_by(*order_by)[:limit])
        if not rows:
            return []
        updated = candidates.model.objects.filter(id__in=[r.pk for r in rows], **still).update(**claim)
    if updated != len(rows):
        return None
    for row in rows:
        for name, value in claim.items():
            setattr(row, name, value)
    return rows
