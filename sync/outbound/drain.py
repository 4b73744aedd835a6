"""The submitter: the only code that writes to Virtuous.

One drain works one tenant: it reclaims expired leases, claims due items under a lease (SKIP
LOCKED on PostgreSQL; a conditional UPDATE everywhere), spends the tenant's token bucket through
the client, batches gifts and contacts when the tenant allows it, splits a batch that fails as a
whole so one bad item cannot poison the rest, and records every call as an Attempt. Retry state
is ours and ``sync.outbound.retry.RetryPolicy`` decides it: transient errors back off with full
jitter up to the tenant's max attempts, a 429 stops the tenant's calls without spending attempts,
a 401 pauses the tenant and alerts, permanent errors and exhausted retries become dead letters.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from config import metrics
from config.logconfig import tenant_log_context
from integrations.types import operation_is_idempotent
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.clients import tenant_needs_attention, virtuous_client
from sync.models import (
    PRIORITY_BULK,
    Operation,
    OutboundItem,
    SyncRecord,
    TenantQueue,
)
from sync.outbound.claim import outbound_claim, outbound_reclaim_expired
from sync.outbound.dependencies import RELEASE_SUBMITTED, dependents_release
from sync.outbound.direct_creates import LeaseLost, NeedsReview, direct_create_send
from sync.outbound.faults import fault_point
from sync.outbound.leases import LeaseHeartbeat
from sync.outbound.record import AttemptRecorder, items_submitted_record
from sync.outbound.resolve import (
    Deferred,
    contact_id_resolve,
    payload_without,
    recurring_gift_id_resolve,
    reversed_gift_resolve,
)
from sync.outbound.retry import Decision, RetryPolicy, budget_wait
from sync.outbound.transitions import (
    DrainCounts,
    items_dead_letter,
    items_done,
    items_needs_review,
    items_release,
    items_retry,
    sync_records_set,
)
from tenants.models import Tenant

logger = logging.getLogger("giftline.sync.submit")

BATCHABLE = {Operation.GIFT_TRANSACTION, Operation.CONTACT_TRANSACTION}

ClientFactory = Callable[..., VirtuousClient]


@dataclass
class DrainResult(DrainCounts):
    submitted: int = 0
    deferred: int = 0
    review: int = 0
    calls: int = 0
    # Set when the tenant as a whole cannot call before then (live budget empty, 429, failing
    # organisation): its queue should not wake earlier for the items it did not claim.
    not_before: datetime | None = None


class _Stop(Exception):
    """Ends the drain early (budget, 429, 401, deadline) after releasing what it holds."""

    def __init__(self, reason: str, retry_in: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


@tenant_log_context
def outbound_drain(
    *,
    tenant: Tenant,
    deadline: float | None = None,
    worker: str | None = None,
    client_factory: ClientFactory | None = None,
    max_budget_wait: float | None = None,
    on_backlog: Callable[[], None] | None = None,
    lease_owner: str | None = None,
    others_waiting: Callable[[], bool] | None = None,
) -> DrainResult:
    """Submit this tenant's due items until the queue is empty, the budget runs out or ``deadline``
    (a ``time.monotonic()`` value) passes.

    ``on_backlog`` is called whenever a claim comes back full (more may be due than one claim
    takes): the dispatcher may then start another drain of the tenant, so it keeps several calls
    in flight, each on its own claimed batch. ``lease_owner`` holds the tenant's dispatch lease
    (the dispatcher; by default ``worker``): every drain of the tenant keeps it alive, so a sibling
    still calling after the first drain ended never lets the tenant be claimed twice. A
    dispatcher read the tenant just before, and records the drain when it hands the tenant back.
    ``others_waiting`` says other tenants are due with no thread free: the drain then never sleeps
    for budget, and once it has held its thread for ``OUTBOUND_YIELD_AFTER_SECONDS`` it hands it
    back after its current call, so a backlog holds a thread for a turn, not for its whole slice."""
    worker = worker or f"drain-{uuid.uuid4().hex[:12]}"
    deadline = deadline if deadline is not None else time.monotonic() + settings.OUTBOUND_DRAIN_SLICE_SECONDS
    max_budget_wait = (
        settings.OUTBOUND_MAX_BUDGET_WAIT_SECONDS if max_budget_wait is None else max_budget_wait
    )
    factory = client_factory or virtuous_client
    result = DrainResult()
    outbound_reclaim_expired(tenant=tenant)
    if lease_owner is None:  # a dispatcher read the tenant just now
        tenant.refresh_from_db(fields=["status"])
    if tenant.status != Tenant.Status.ACTIVE:
        result.stopped = "paused"
        return result

    recorder = AttemptRecorder(tenant=tenant)
    clients: dict[bool, VirtuousClient] = {}

    def client_for(bulk: bool) -> VirtuousClient:
        if bulk not in clients:
            clients[bulk] = factory(tenant, keep_reserve=bulk, on_call=recorder)
        return clients[bulk]

    with LeaseHeartbeat(tenant.pk, worker, queue_owner=lease_owner):
        _drain_loop(
            tenant=tenant,
            worker=worker,
            on_backlog=on_backlog,
            deadline=deadline,
            client_for=client_for,
            recorder=recorder,
            result=result,
            max_budget_wait=max_budget_wait,
            others_waiting=others_waiting,
        )
    if lease_owner is None:  # a dispatcher records its drains when it hands the tenant back
        TenantQueue.objects.filter(tenant=tenant).update(
            last_drain_at=timezone.now(),
            **({"last_success_at": timezone.now()} if result.submitted else {}),
        )
    return result


def _drain_loop(
    *,
    tenant: Tenant,
    worker: str,
    on_backlog: Callable[[], None] | None,
    deadline: float,
    client_for: Callable[[bool], VirtuousClient],
    recorder: AttemptRecorder,
    result: DrainResult,
    max_budget_wait: float,
    others_waiting: Callable[[], bool] | None,
) -> None:
    turn_ends = time.monotonic() + settings.OUTBOUND_YIELD_AFTER_SECONDS

    def hand_back() -> bool:
        return others_waiting is not None and time.monotonic() >= turn_ends and others_waiting()

    # Gifts released by the last contact write: due now, they finish what that write began, so
    # the drain takes them before handing its thread to another tenant.
    unblocked = 0
    # A dead holder's lease on this tenant's items can run out while this drain works (claimed
    # after its tenant lease was renewed): they are taken back every heartbeat, and before the
    # drain calls its queue empty, not a slice later. (Every round was one UPDATE per claim.)
    reclaim_at = time.monotonic() + settings.OUTBOUND_HEARTBEAT_SECONDS
    try:
        while time.monotonic() < deadline:
            if result.calls and not unblocked and hand_back():
                result.stopped = "yielded"
                break
            limit = _claim_size(tenant)
            claimed = outbound_claim(tenant=tenant, worker=worker, limit=limit)
            if not claimed and result.calls and outbound_reclaim_expired(tenant=tenant):
                claimed = outbound_claim(tenant=tenant, worker=worker, limit=limit)
            if not claimed:
                result.stopped = "empty"
                break
            # A full claim: more may be due. Another drain is asked for once this one's first call
            # went out, so a tenant bound by its bucket does not start drains that find no token.
            backlog = on_backlog is not None and len(claimed) >= limit
            fault_point("after_claim")
            queue = _group(tenant, claimed)
            try:
                while queue:
                    group = queue.pop(0)
                    unblocked = _send_group(
                        tenant=tenant,
                        group=group,
                        queue=queue,
                        client_for=client_for,
                        recorder=recorder,
                        result=result,
                        deadline=deadline,
                        max_budget_wait=max_budget_wait,
                        worker=worker,
                        others_waiting=others_waiting,
                    )
                    if backlog:
                        backlog = False
                        on_backlog()
                    if queue and hand_back():
                        raise _Stop("yielded")
            except _Stop as stop:
                held = [i for g in [group, *queue] for i in g]
                result.released += items_release(held, worker=worker, retry_in=stop.retry_in)
                result.stopped = stop.reason
                # Bulk work stopped by the live reserve says nothing about when a live gift may go.
                if stop.retry_in > 0 and not (stop.reason == "budget" and group[0].priority >= PRIORITY_BULK):
                    result.not_before = timezone.now() + timedelta(seconds=stop.retry_in)
                break
            if time.monotonic() >= reclaim_at:
                outbound_reclaim_expired(tenant=tenant)
                reclaim_at = time.monotonic() + settings.OUTBOUND_HEARTBEAT_SECONDS
        else:
            result.stopped = "deadline"
    except VirtuousError as exc:
        # Raised by the client factory: no token (needs attention) — nothing was claimed yet
        # or everything claimed was released above.
        result.stopped = _needs_attention(tenant, exc)


def _claim_size(tenant: Tenant) -> int:
    return max(1, tenant.batch_size) if tenant.batching_enabled else settings.OUTBOUND_UNBATCHED_CLAIM


def _group(tenant: Tenant, items: list[OutboundItem]) -> list[list[OutboundItem]]:
    """Batchable items of one operation, source and priority class form one call (up to the
    tenant's batch size); groups keep the order in which their first item was claimed."""
    groups: list[list[OutboundItem]] = []
    open_groups: dict[tuple, list[OutboundItem]] = {}
    for item in items:
        if not (tenant.batching_enabled and item.operation in BATCHABLE):
            groups.append([item])
            continue
        key = (item.operation, item.external_source, item.priority >= PRIORITY_BULK)
        group = open_groups.get(key)
        if group is None or len(group) >= tenant.batch_size:
            group = open_groups[key] = []
            groups.append(group)
        group.append(item)
    return groups


def _send_group(
    *,
    tenant: Tenant,
    group: list[OutboundItem],
    queue: list[list[OutboundItem]],
    client_for: Callable[[bool], VirtuousClient],
    recorder: AttemptRecorder,
    result: DrainResult,
    deadline: float,
    max_budget_wait: float,
    worker: str,
    others_waiting: Callable[[], bool] | None = None,
) -> int:
    """Send one group and record its outcome; returns the waiting gifts a contact write released."""
    bulk = group[0].priority >= PRIORITY_BULK
    client = client_for(bulk)
    recorder.operation, recorder.items = group[0].operation, group
    try:
        try:
            virtuous_ids = budget_wait(
                lambda: _call(client, group, worker=worker),
                max_wait=max_budget_wait,
                deadline=deadline,
                give_up=others_waiting,
            )
        except BudgetExhausted as exc:
            raise _Stop("budget", exc.retry_in) from exc
        except NeedsReview as exc:
            result.review += items_needs_review(tenant, group, message=exc.message, evidence=exc.evidence)
            return 0
        except LeaseLost:
            logger.warning("outbound.lease_lost worker=%s: not sending", worker)
            return 0
        except Deferred as exc:
            _defer(tenant, group[0], exc.reason, result)
            return 0
        except VirtuousError as exc:
            result.calls += 1
            recorder.flush()
            _handle_error(tenant=tenant, group=group, queue=queue, exc=exc, result=result)
            return 0
        if not operation_is_idempotent(group[0].operation):
            # A direct create's 2xx is kept at once: if this worker dies before recording the
            # outcome, the call it made stays on the record beside the lookup that follows.
            recorder.flush()
        fault_point("after_2xx")
        result.calls += 1
        submitted, unblocked = _mark_submitted(
            tenant, group, worker=worker, virtuous_ids=virtuous_ids, recorder=recorder
        )
        result.submitted += submitted
        return unblocked
    finally:
        recorder.flush()  # whatever the outcome, every call sent leaves its Attempt row


@metrics.calls_in_flight
def _call(client: VirtuousClient, group: list[OutboundItem], *, worker: str) -> dict[int, str]:
    """Send one group; returns Virtuous ids learned on the way, by item pk."""
    first = group[0]
    payloads = [dict(i.payload) for i in group]
    if first.operation == Operation.GIFT_TRANSACTION:
        if len(group) > 1:
            client.gift_transactions(
                transaction_source=first.external_source,
                transactions=[payload_without(p, "transactionSource") for p in payloads],
            )
        else:
            client.gift_transaction(payloads[0])
    elif first.operation == Operation.CONTACT_TRANSACTION:
        if len(group) > 1:
            client.contact_batch(
                reference_source=first.external_source,
                contacts=[payload_without(p, "referenceSource") for p in payloads],
            )
        else:
            client.contact_transaction(payloads[0])
    elif first.operation == Operation.REVERSING_TRANSACTION:
        payload = reversed_gift_resolve(client, first, payloads[0])
        send = client.gift_reversing_transaction
        return {first.pk: direct_create_send(client, first, payload, worker=worker, send=send)}
    elif first.operation == Operation.RECURRING_GIFT_CREATE:
        payload = contact_id_resolve(client, first, payloads[0])
        send = client.recurring_gift_create
        return {first.pk: direct_create_send(client, first, payload, worker=worker, send=send)}
    elif first.operation == Operation.RECURRING_GIFT_CANCEL:
        payload = recurring_gift_id_resolve(first, payloads[0])
        client.recurring_gift_cancel(
            int(payload["recurringGiftId"]),
            cancel_reason=payload.get("cancelReason", ""),
            category_id=payload.get("categoryId"),
        )
    else:  # pragma: no cover - guarded by the Operation choices
        raise ValueError(first.operation)
    return {}


def _handle_error(
    *,
    tenant: Tenant,
    group: list[OutboundItem],
    queue: list[list[OutboundItem]],
    exc: VirtuousError,
    result: DrainResult,
) -> None:
    if exc.error_class == ErrorClass.PERMANENT and len(group) > 1:
        # The batch failed as a whole: halve it until the bad item stands alone.
        middle = len(group) // 2
        queue[0:0] = [group[:middle], group[middle:]]
        return
    now = timezone.now()
    policy = RetryPolicy.for_tenant(tenant)
    verdicts = [
        (item, policy.decide(exc.error_class, item.attempts + 1, retry_after=exc.retry_after, now=now))
        for item in group
    ]
    stop = verdicts[0][1]
    if stop.decision == Decision.STOP:
        if stop.at is None:  # 401: the tenant is paused and alerted
            _needs_attention(tenant, exc)
            raise _Stop("paused", 0.0) from exc
        raise _Stop("rate_limited", (stop.at - now).total_seconds()) from exc
    dead = [(item, v) for item, v in verdicts if v.decision == Decision.DEAD_LETTER]
    if dead:
        exhausted = dead[0][1].exhausted
        result.dead += items_dead_letter(
            tenant,
            [item for item, _ in dead],
            message=f"Retries exhausted: {exc.message}" if exhausted else exc.message,
            spend_attempt=True,
            status_code=exc.status_code,
            error_class=exc.error_class,
            details=exc.details,
        )
    for item, verdict in verdicts:
        if verdict.decision == Decision.RETRY:
            items_retry(
                [item],
                at=verdict.at,
                message=exc.message,
                status_code=exc.status_code,
                error_class=exc.error_class,
            )
            result.retried += 1
    _stop_if_failing(exc, verdicts, now)


def _stop_if_failing(exc: VirtuousError, verdicts: list, now: datetime) -> None:
    """A 5xx or a network failure says the organisation is failing, not this item: end the drain
    (what it still holds goes back, no attempt spent, until the item's retry time) instead of
    spending a thread, budget and every held item's attempts on calls that will fail too."""
    if exc.error_class != ErrorClass.TRANSIENT:
        return
    retry_at = [v.at for _, v in verdicts if v.decision == Decision.RETRY and v.at is not None]
    raise _Stop("failing", max((min(retry_at) - now).total_seconds(), 0.0) if retry_at else 0.0)


def _mark_submitted(
    tenant: Tenant,
    group: list[OutboundItem],
    *,
    worker: str,
    virtuous_ids: dict[int, str],
    recorder: AttemptRecorder,
) -> tuple[int, int]:
    """The 2xx's Attempt rows, the items' new state and their sync records, in one commit (on
    PostgreSQL, for the usual one-call group, in one statement: ``items_submitted_record``).
    Returns (items submitted, waiting gifts that write released)."""
    now = timezone.now()
    if (
        db_connection.vendor == "postgresql"
        and len(recorder.pending) == 1
        and not any(virtuous_ids.values())
        and not db_connection.in_atomic_block
    ):
        record, operation, items = recorder.pending.pop()
        count = items_submitted_record(tenant, group, record, operation, worker=worker, now=now)
    else:
        with transaction.atomic():
            recorder.flush()
            count = items_done(group, state=OutboundItem.State.SUBMITTED, worker=worker)
            for pk, virtuous_id in virtuous_ids.items():
                if virtuous_id:
                    OutboundItem.objects.filter(pk=pk).update(virtuous_id=virtuous_id)
            sync_records_set(tenant, group, status=SyncRecord.Status.SUBMITTED, last_synced_at=now)
    released = 0
    if count and group[0].operation == Operation.CONTACT_TRANSACTION:
        # The contact write went ahead: gifts held for it (steady state) may follow it now. (A
        # release lost to a crash right here is made by the minute's dependency check.)
        released = dependents_release(dependency_ids=[i.pk for i in group], reached=RELEASE_SUBMITTED)
    return count, released


def _defer(tenant: Tenant, item: OutboundItem, reason: str, result: DrainResult) -> None:
    """Wait for the record this write depends on; give up (dead letter) after the defer window."""
    now = timezone.now()
    if item.created_at < now - timedelta(hours=settings.OUTBOUND_DEFER_MAX_HOURS):
        result.dead += items_dead_letter(
            tenant, [item], message=f"Gave up waiting: {reason}", spend_attempt=False
        )
        return
    OutboundItem.objects.filter(pk=item.pk, state=OutboundItem.State.IN_FLIGHT).update(
        state=OutboundItem.State.PENDING,
        next_attempt_at=now + timedelta(seconds=settings.OUTBOUND_DEFER_SECONDS),
        lease_owner="",
        lease_expires_at=None,
        last_error=reason,
        last_error_class=ErrorClass.NOT_FOUND,
        last_status_code=404,
        updated_at=now,
    )
    result.deferred += 1


def _needs_attention(tenant: Tenant, exc: VirtuousError) -> str:
    tenant_needs_attention(tenant=tenant, error=exc)
    return "paused"
