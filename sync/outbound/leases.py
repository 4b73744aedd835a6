"""Short leases kept alive by a heartbeat while their holder works (issue 14 §5).

Item leases and the tenant's dispatch lease last ``OUTBOUND_LEASE_SECONDS`` (30 s). While a drain
runs, a heartbeat thread extends both every ``OUTBOUND_HEARTBEAT_SECONDS`` (10 s), so a live
drain never loses its items however long one call takes (a 30 s read timeout plus a budget wait),
and a dead one (SIGKILL kills its heartbeat with it) frees them within one lease. A thread, not a
renewal between calls, because a single call can outlast the lease. A holder that is alive but
frozen (SIGSTOP, a stalled host) also stops beating: its items are reclaimed, and its late state
update is refused because every transition is conditional on ``lease_owner``.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from sync.models import OutboundItem, TenantQueue

logger = logging.getLogger("giftline.sync.leases")


def leases_renew(*, tenant_id: int, worker: str, queue_owner: str | None = None) -> tuple[int, int]:
    """Extend the leases ``worker`` holds on this tenant's items, and the tenant's queue lease held by
    ``queue_owner`` (by default ``worker``); returns (items, queue)."""
    until = timezone.now() + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS)
    # Rows locked right now are skipped, not waited for: the drain's own 2xx statement updates
    # the same items in id order while this one meets them in scan order, and two statements
    # taking the same rows in different orders deadlock (PostgreSQL then cancels one; the 2xx,
    # once, in a giving-day run). A row it skips is renewed at the next beat, two before the
    # lease runs out.
    held = OutboundItem.objects.filter(
        tenant_id=tenant_id, state=OutboundItem.State.IN_FLIGHT, lease_owner=worker
    ).select_for_update(skip_locked=True, no_key=True)
    with transaction.atomic():  # Django asks one of a locking subquery too
        items = OutboundItem.objects.filter(pk__in=held.values("pk")).update(lease_expires_at=until)
    queue = TenantQueue.objects.filter(tenant_id=tenant_id, lease_owner=queue_owner or worker).update(
        lease_until=until
    )
    return items, queue


class LeaseHeartbeat:
    """``with LeaseHeartbeat(tenant_id, worker):`` renews the worker's leases until the block ends."""

    def __init__(
        self, tenant_id: int, worker: str, interval: float | None = None, *, queue_owner: str | None = None
    ) -> None:
        self.tenant_id = tenant_id
        self.worker = worker
        self.queue_owner = queue_owner
        self.interval = settings.OUTBOUND_HEARTBEAT_SECONDS if interval is None else interval
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{worker}", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    leases_renew(tenant_id=self.tenant_id, worker=self.worker, queue_owner=self.queue_owner)
                    self.beats += 1
                except DatabaseError:
                    # A missed beat costs nothing yet: the lease is three beats long.
                    logger.warning("lease.heartbeat_failed worker=%s", self.worker, exc_info=True)
        finally:
            connection.close()
