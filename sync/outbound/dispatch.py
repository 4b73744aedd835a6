"""Dispatch: run drains for every tenant with due work, overlapping their HTTP calls.

Waiting on Virtuous (0.3–2 s a call), not CPU, limits how many tenants a worker serves, so one
dispatch runs many tenant drains at once in a bounded thread pool. A tenant is drained by one
dispatcher at a time across every worker process (a lease on its TenantQueue row, taken with a
conditional UPDATE), with up to ``OUTBOUND_TENANT_IN_FLIGHT`` drains (calls in flight) while its
backlog lasts, and tenants are served least-recently-drained first, each for a time slice,
so a huge backlog, a paused tenant or a failing Virtuous organisation never delays another tenant.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    close_old_connections,
    connection,
    connections,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Min, Q
from django.utils import timezone

from sync.models import Direction, OutboundItem, TenantQueue
from sync.ops import alerts
from sync.outbound.claim import outbound_reclaim_expired
from sync.outbound.dependencies import outbound_dependencies_check
from sync.outbound.drain import DrainResult, outbound_drain
from sync.outbound.tenant_queue import (
    tenant_load,
    tenant_queue_claim,
    tenant_queue_release,
    tenant_queues_due_unleased,
)
from tenants.models import Tenant

logger = logging.getLogger("giftline.sync.dispatch")

DATABASE_RETRY_SECONDS = 1.0


class _TenantDrains:
    """The drains this dispatcher runs, by tenant: a tenant's first drain, plus siblings started
    while its claims come back full, up to ``OUTBOUND_TENANT_IN_FLIGHT`` calls in flight. Each
    drain claims its own batch (SKIP LOCKED), every call spends the shared bucket, and the last
    drain of a tenant to finish hands its lease back."""

    def __init__(self, pool: ThreadPoolExecutor, *, owner: str, threads: int, per_tenant: int) -> None:
        self.pool, self.owner, self.threads, self.per_tenant = pool, owner, threads, per_tenant
        self.lock = threading.Lock()
        self.live: dict[int, int] = {}  # tenant id -> drains not finished
        self.drains = itertools.count(1)  # names every drain this dispatcher starts
        self.deadline: dict[int, float] = {}
        self.futures: list[Future[DrainResult]] = []
        self.closing = False  # the dispatcher is collecting its last results: no new siblings
        # Tenants whose bucket, not a lone call, bounds them this lease: another drain would only
        # claim, find no token and hand its items back.
        self.budget_bound: set[int] = set()
        self.not_before: dict[int, datetime] = {}
        self.submitted: dict[int, int] = {}  # tenant id -> items its drains submitted this lease
        # A drain ended while others wait: claim for its thread now, not at the next poll.
        self.freed = threading.Event()
        # Each pool thread's connection, closed by close_connections when the dispatch ends.
        self.connections: dict[int, BaseDatabaseWrapper] = {}
        # The last claim took every free thread and another tenant has waited past a few rounds: a
        # thread freed goes to it (the next claim), not to a sibling of a tenant already served.
        self.contended = False

    def busy(self) -> int:
        with self.lock:
            return sum(self.live.values())

    def start(self, tenant_id: int, *, deadline: float, max_budget_wait: float | None) -> None:
        with self.lock:
            self.deadline[tenant_id] = deadline
            self._submit(tenant_id, max_budget_wait)

    def sibling(self, tenant_id: int) -> None:
        """Another drain of a tenant whose claim came back full, if its cap and a thread allow.
        It never sleeps for budget: an empty bucket means no extra call could go anyway."""
        with self.lock:
            if (
                not self.closing
                and not self.contended
                and tenant_id not in self.budget_bound
                and 0 < self.live.get(tenant_id, 0) < self.per_tenant
                and sum(self.live.values()) < self.threads
                and time.monotonic() < self.deadline[tenant_id]
            ):
                self._submit(tenant_id, 0.0)

    def _submit(self, tenant_id: int, max_budget_wait: float | None) -> None:
        self.live[tenant_id] = self.live.get(tenant_id, 0) + 1
        # Every drain its own name: a drain that died holding items leaves them to expire, where a
        # name reused by the tenant's next drain had its heartbeat renew them for as long as the
        # tenant stayed busy (285 s for ten contacts in a giving-day run).
        worker = f"{self.owner}-{next(self.drains)}"
        self.futures.append(self.pool.submit(self._run, tenant_id, worker, max_budget_wait))

    def _finish(self, tenant_id: int) -> tuple[bool, datetime | None, int]:
        """(True for the tenant's last drain to finish: it releases the tenant, not before when,
        and how many items the lease's drains submitted.)"""
        with self.lock:
            self.live[tenant_id] -= 1
            if self.live[tenant_id]:
                return False, None, 0
            del self.live[tenant_id], self.deadline[tenant_id]
            self.budget_bound.discard(tenant_id)
            return True, self.not_before.pop(tenant_id, None), self.submitted.pop(tenant_id, 0)

    def _run(self, tenant_id: int, worker: str, max_budget_wait: float | None) -> DrainResult:
        # The thread's connection lives from turn to turn (a new one is a PostgreSQL backend
        # started and warmed for every turn); this drops it once broken or past CONN_MAX_AGE.
        close_old_connections()
        with self.lock:
            self.connections[threading.get_ident()] = connections[DEFAULT_DB_ALIAS]
        try:
            tenant = tenant_load(tenant_id)
            result = outbound_drain(
                tenant=tenant,
                deadline=self.deadline[tenant_id],
                worker=worker,
                max_budget_wait=max_budget_wait,
                on_backlog=lambda: self.sibling(tenant_id),
                lease_owner=self.owner,
                others_waiting=lambda: self.contended,
            )
            with self.lock:
                self.submitted[tenant_id] = self.submitted.get(tenant_id, 0) + result.submitted
                if result.stopped == "budget":
                    self.budget_bound.add(tenant_id)
                if result.not_before is not None:
                    # The last word wins: a drain that called after a sibling stopped knows better.
                    self.not_before[tenant_id] = result.not_before
            return result
        except Exception:
            logger.exception("dispatch.drain_failed tenant_id=%s worker=%s", tenant_id, worker)
            raise
        finally:
            try:
                last, not_before, submitted = self._finish(tenant_id)
                if last:
                    _tenant_release(tenant_id, self.owner, not_before, submitted)
            finally:
                if self.contended:  # someone waits for this thread; otherwise the next poll will do
                    self.freed.set()

    def close_connections(self) -> None:
        """Close the connections the pool's threads kept (Django's are per thread, so each is
        closed with thread sharing allowed for the moment). Call once no drain is running."""
        with self.lock:
            kept, self.connections = self.connections, {}
        for db in kept.values():
            db.inc_thread_sharing()
            try:
                db.close()
            finally:
                db.dec_thread_sharing()

    def collect(self, totals: dict[str, int], *, wait: bool = False) -> None:
        with self.lock:
            self.closing = self.closing or wait
            done = [f for f in self.futures if wait or f.done()]
            self.futures = [f for f in self.futures if f not in done]
        for future in done:
            _collect(future, totals)


def _tenant_release(tenant_id: int, owner: str, not_before: datetime | None, submitted: int) -> None:
    try:
        tenant_queue_release(
            tenant=Tenant(pk=tenant_id), owner=owner, not_before=not_before, submitted=submitted
        )
    except Exception:
        logger.exception("dispatch.release_failed tenant_id=%s", tenant_id)
        TenantQueue.objects.filter(tenant_id=tenant_id, lease_owner=owner).update(
            lease_owner="", lease_until=None
        )
        raise


def outbound_dispatch(
    *,
    seconds: float | None = None,
    threads: int | None = None,
    poll_interval: float = 0.25,
    stop_when_idle: bool = False,
) -> dict[str, int]:
    """Drain due tenants for ``seconds``, up to ``threads`` drains at a time. Returns totals.

    A tenant with more due than one call takes gets up to ``OUTBOUND_TENANT_IN_FLIGHT`` drains
    (calls in flight). While the claim fills every free thread (more tenants due than threads),
    a drain does not sleep for budget: it hands its items back and frees the thread, so a
    budget-bound neighbour never keeps a live gift waiting. ``stop_when_idle`` returns early once
    no item anywhere is pending or in flight (operators pushing a backlog by hand, and tests).
    """
    seconds = settings.OUTBOUND_DISPATCH_SECONDS if seconds is None else seconds
    threads = threads or settings.OUTBOUND_DRAIN_THREADS
    slice_seconds = settings.OUTBOUND_DRAIN_SLICE_SECONDS
    owner = f"dispatch-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + seconds
    totals = {"drains": 0, "submitted": 0, "retried": 0, "dead": 0, "calls": 0, "errors": 0}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drain") as pool:
        drains = _TenantDrains(
            pool, owner=owner, threads=threads, per_tenant=max(1, settings.OUTBOUND_TENANT_IN_FLIGHT)
        )
        while True:
            drains.collect(totals)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            slice_for_this = min(slice_seconds, remaining)
            try:
                free = threads - drains.busy()
                # A short lease the drain's heartbeat renews (sync.outbound.leases): a dead
                # dispatcher's tenants come back within OUTBOUND_LEASE_SECONDS.
                claimed = tenant_queue_claim(
                    owner=owner, limit=free, lease_seconds=settings.OUTBOUND_LEASE_SECONDS
                )
                contended = 0 < free <= len(claimed)  # others may be due and waiting for a thread
                # Every thread taken: are other tenants due and left waiting? Running drains then
                # end their turn and stop sleeping for budget, and siblings do not start.
                drains.contended = (free <= len(claimed)) and _others_due()
                for tenant_id in claimed:
                    drains.start(
                        tenant_id,
                        deadline=time.monotonic() + slice_for_this,
                        max_budget_wait=0.0 if contended else None,
                    )
                if stop_when_idle and not drains.busy() and not _work_remains():
                    break
            except DatabaseError:
                # The database restarted or failed over: leases and retry state are in its rows, so
                # reconnect and carry on; items a lost drain held come back when their lease expires.
                logger.warning("dispatch.database_unavailable owner=%s", owner, exc_info=True)
                with contextlib.suppress(DatabaseError):
                    connection.close()
                time.sleep(DATABASE_RETRY_SECONDS)
                continue
            drains.freed.wait(poll_interval)
            drains.freed.clear()
        drains.collect(totals, wait=True)
        drains.close_connections()
    return totals


def _others_due() -> bool:
    """Some active tenant, not leased, has been due (and not drained) for longer than
    ``OUTBOUND_CONTENDED_AFTER_SECONDS``: it has waited past a dispatcher round for a thread.
    A tenant due a moment ago is not waiting yet: the next claim takes it while threads are free,
    and counting it would end budget sleeps and start yields for nothing."""
    now = timezone.now()
    waited = now - timedelta(seconds=settings.OUTBOUND_CONTENDED_AFTER_SECONDS)
    return (
        tenant_queues_due_unleased(now, due_by=waited)
        .filter(Q(last_drain_at__isnull=True) | Q(last_drain_at__lte=waited))
        .exists()
    )


def _work_remains() -> bool:
    return OutboundItem.objects.filter(
        state__in=[OutboundItem.State.PENDING, OutboundItem.State.IN_FLIGHT], direction=Direction.OUTBOUND
    ).exists()


def _collect(future: Future[DrainResult], totals: dict[str, int]) -> None:
    try:
        result = future.result()
    except Exception:
        totals["errors"] += 1
        return
    totals["drains"] += 1
    for key in ("submitted", "retried", "dead", "calls"):
        totals[key] += getattr(result, key)


def outbound_maintenance() -> dict[str, int]:
    """Every minute: reclaim items of dead workers, release or review items waiting on a dependency,
    repair wake times, alert on stale queues."""
    reclaimed = outbound_reclaim_expired()
    dependencies = outbound_dependencies_check()
    now = timezone.now()
    # Make sure every tenant with pending work has a queue row and a wake time.
    due = (
        OutboundItem.objects.filter(state=OutboundItem.State.PENDING, direction=Direction.OUTBOUND)
        .order_by()
        .values("tenant_id")
        .annotate(m=Min("next_attempt_at"))
    )
    woken = 0
    for row in due:
        woken += (
            TenantQueue.objects.filter(tenant_id=row["tenant_id"])
            .filter(Q(wake_at__isnull=True) | Q(wake_at__gt=row["m"]))
            .update(wake_at=row["m"])
        )
        TenantQueue.objects.bulk_create(
            [TenantQueue(tenant_id=row["tenant_id"], wake_at=row["m"])], ignore_conflicts=True
        )
    stale_before = now - timedelta(seconds=settings.OUTBOUND_STALE_SECONDS)
    stale = (
        OutboundItem.objects.filter(
            state=OutboundItem.State.PENDING,
            direction=Direction.OUTBOUND,
            priority=0,
            created_at__lt=stale_before,
        )
        .order_by()
        .values("tenant_id")
        .annotate(oldest=Min("created_at"))
    )
    stale_count = 0
    for row in stale:
        tenant = Tenant.objects.get(pk=row["tenant_id"])
        age_minutes = int((now - row["oldest"]).total_seconds() // 60)
        alerts.alert_raise(
            tenant=tenant,
            kind="queue_stale",
            subject=f"{tenant.name}: donations waiting for {age_minutes} minutes",
            body=f"The oldest live item has waited {age_minutes} minutes. Check the tenant's status, "
            "budget and dead letters in the admin.",
        )
        stale_count += 1
    return {"reclaimed": reclaimed, "woken": woken, "stale_tenants": stale_count, **dependencies}
