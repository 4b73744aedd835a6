"""Explicit dependencies between queue items: a write that must not go out before another one.

Virtuous's nightly batch attaches a Gift Transaction to a contact it can match; one it cannot
match lands in the needs-update bucket, which no API lists (spec 4.4, 4.11). So a gift whose
donor we are about to create waits behind that Contact Transaction, in state ``waiting``, which
no drain claims. It goes back to ``pending`` when its dependency reaches ``release_on``:

- ``confirmed`` (historical imports): the contact exists in Virtuous (``contactCreate`` webhook,
  or a lookup by reference in reconciliation), so the gift cannot miss it;
- ``submitted`` (steady state): the contact write we held has been sent ahead of the gift, into
  the same holding state, which the batch works contacts-first.

A waiting item whose dependency was discarded goes to ``needs_review`` at once; one that waited
longer than ``OUTBOUND_DEPENDENCY_WAIT_HOURS`` goes there too, with the dependency's state in its
note. ``outbound_dependencies_check`` also releases any item whose release was missed (a
dependency that moved on between our read and our insert).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sync.models import Operation, OutboundItem, SyncRecord
from tenants.models import Tenant

RELEASE_SUBMITTED = "submitted"
RELEASE_CONFIRMED = "confirmed"
# Dependency states that release a waiting item, by its release_on.
RELEASING_STATES = {
    RELEASE_SUBMITTED: [OutboundItem.State.SUBMITTED, OutboundItem.State.CONFIRMED],
    RELEASE_CONFIRMED: [OutboundItem.State.CONFIRMED],
}
HELD_STATES = [OutboundItem.State.PENDING, OutboundItem.State.IN_FLIGHT]


def gift_contact_dependency(
    *, tenant: Tenant, payload: dict[str, Any], lock: bool = False
) -> OutboundItem | None:
    """The Contact Transaction we still hold for this gift's donor, when the donor is not known to
    Virtuous yet: sending the gift first could leave it unmatched (steady-state rule).

    With ``lock`` (inside the transaction that inserts the waiting gift), the contact write's row is
    locked as it is read. Its 2xx record updates that row, so it waits for the gift's commit, and the
    release that follows it then finds the gift; a record that came first is seen by the read, which
    then finds nothing held. Unlocked, a contact write queued by an earlier event and recorded
    between the read and the gift's commit released nothing, and left the gift to the minute's
    dependency check. (A contact queued by the same event is the gift's own uncommitted row.)"""
    contact = payload.get("contact") or {}
    reference = str(contact.get("referenceId") or "")
    if not reference or contact.get("id"):
        return None
    source = str(contact.get("referenceSource") or payload.get("transactionSource") or "")
    if (
        SyncRecord.objects.filter(
            tenant=tenant,
            resource_type=SyncRecord.ResourceType.CONTACT,
            partner_source=source,
            partner_id=reference,
        )
        .exclude(virtuous_id="")
        .exists()
    ):
        return None  # the donor exists in Virtuous: a newer contact write does not hold the gift
    contacts = OutboundItem.objects.filter(
        tenant=tenant, operation=Operation.CONTACT_TRANSACTION, external_source=source, external_id=reference
    )
    if contacts.filter(state=OutboundItem.State.CONFIRMED).exists():
        return None
    held = contacts.filter(state__in=HELD_STATES).order_by("pk")
    return (held.select_for_update(no_key=True) if lock else held).first()


def waiting_fields(dependency: OutboundItem | None, release_on: str, now: datetime) -> dict[str, Any]:
    """The columns of a new item that depends on ``dependency`` (pending when it is already there)."""
    if dependency is None:
        return {}
    released = dependency.state in RELEASING_STATES[release_on]
    return {
        "depends_on": dependency,
        "release_on": release_on,
        "state": OutboundItem.State.PENDING if released else OutboundItem.State.WAITING,
        "waiting_since": None if released else now,
    }


def dependents_release(*, dependency_ids: Iterable[int], reached: str) -> int:
    """Put the items waiting on these dependencies back in the queue, now that they ``reached``
    submitted or confirmed. Returns how many were released."""
    ids = list(dependency_ids)
    if not ids:
        return 0
    modes = [RELEASE_SUBMITTED] if reached == RELEASE_SUBMITTED else [RELEASE_SUBMITTED, RELEASE_CONFIRMED]
    waiting = OutboundItem.objects.filter(
        depends_on_id__in=ids, state=OutboundItem.State.WAITING, release_on__in=modes
    )
    return _release(waiting, note=f"Released: the contact it waited for was {reached}")


def _release(waiting, *, note: str) -> int:
    from sync.outbound.enqueue import queue_wake  # enqueue asks this module about dependencies

    now = timezone.now()
    tenant_ids = set(waiting.values_list("tenant_id", flat=True))
    count = waiting.update(
        state=OutboundItem.State.PENDING, next_attempt_at=now, note=note[:200], updated_at=now
    )
    for tenant_id in tenant_ids:
        queue_wake(tenant_id=tenant_id, at=now)
    return count


def outbound_dependencies_check(*, now: datetime | None = None) -> dict[str, int]:
    """Every minute (outbound maintenance): release missed releases, and send to review the waiting
    items whose dependency was discarded or that waited past ``OUTBOUND_DEPENDENCY_WAIT_HOURS``."""
    now = now or timezone.now()
    waiting = OutboundItem.objects.filter(state=OutboundItem.State.WAITING)
    released = 0
    for mode, states in RELEASING_STATES.items():
        released += _release(
            waiting.filter(release_on=mode, depends_on__state__in=states),
            note=f"Released: the contact it waited for was {mode}",
        )
    gone = _review(
        waiting.filter(depends_on__isnull=True)
        | waiting.filter(depends_on__state=OutboundItem.State.DISCARDED),
        note="The contact write it waited for was discarded; check the donor, then replay",
        now=now,
    )
    expired = 0
    limit = now - timedelta(hours=settings.OUTBOUND_DEPENDENCY_WAIT_HOURS)
    for item in waiting.filter(waiting_since__lt=limit).select_related("depends_on")[:1000]:
        state = item.depends_on.get_state_display().lower() if item.depends_on else "gone"
        expired += _review(
            OutboundItem.objects.filter(pk=item.pk, state=OutboundItem.State.WAITING),
            note=f"Waited {settings.OUTBOUND_DEPENDENCY_WAIT_HOURS} h for its contact (contact {state})",
            now=now,
        )
    return {"released": released, "dependency_gone": gone, "dependency_timeout": expired}


def _review(items, *, note: str, now: datetime) -> int:
    with transaction.atomic():
        rows = list(items.values_list("pk", "tenant_id", "operation", "external_source", "external_id"))
        count = OutboundItem.objects.filter(
            pk__in=[r[0] for r in rows], state=OutboundItem.State.WAITING
        ).update(state=OutboundItem.State.NEEDS_REVIEW, note=note[:200], updated_at=now)
        for _, tenant_id, operation, source, external_id in rows:
            if operation == Operation.GIFT_TRANSACTION:
                SyncRecord.objects.filter(
                    tenant_id=tenant_id,
                    resource_type=SyncRecord.ResourceType.GIFT,
                    partner_source=source,
                    partner_id=external_id,
                ).update(status=SyncRecord.Status.NEEDS_REVIEW, updated_at=now)
    return count
