"""The scheduled reconciler (spec 4.6); its report is ``reconcile_report``, Pattern B is
``initial_reconciliation``.

The reconciler runs four passes per tenant, each logged in the append-only ReconciliationLog:
stuck transactions and needs-update suspects (through ``outbound_reconcile_submitted``), missed
webhooks (records modified since the inbound checkpoint, applied through the same inbound handler
as webhooks), and drift (a sample of paired records compared field by field). All Virtuous reads
use the reserve-keeping client: reconciliation never takes the live donations' share of the budget.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from integrations.common.parsing import to_datetime, to_decimal
from integrations.models import Connection, InboundEvent
from integrations.services import inbound_event_record_polled
from integrations.types import PolledRecord
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from integrations.virtuous.records import contact_email, contact_primary_individual
from integrations.virtuous.services import virtuous_connection_get_or_create
from sync.clients import virtuous_client
from sync.inbound.drain import inbound_event_process
from sync.models import (
    ImportRun,
    Operation,
    OutboundItem,
    ReconciliationLog,
    SyncCheckpoint,
    SyncRecord,
)
from sync.outbound.confirm import outbound_reconcile_submitted
from sync.outbound.retry import budget_wait
from tenants.models import Tenant

Category = ReconciliationLog.Category
T = TypeVar("T")
MISSED_WEBHOOK_FIRST_LOOKBACK = dt.timedelta(days=2)
# Overlap re-read on each pass: "Is After" is strict and clocks differ; the handler is idempotent.
MISSED_WEBHOOK_OVERLAP = dt.timedelta(minutes=5)
DRIFT_SAMPLE = 25
# Inbound polling reads each resource at most once a minute, whatever asks for it.
INBOUND_POLL_MIN_SECONDS = 60


class ReconcileStopped(Exception):
    """The bulk share of the budget is spent (or Virtuous is failing); the pass resumes later."""


def reconciliation_log(
    tenant: Tenant, category: str, resolution: str, *, run: ImportRun | None = None, **fields: Any
) -> None:
    ReconciliationLog.objects.create(
        tenant=tenant, category=category, resolution=resolution, run=run, **fields
    )


def budgeted(call: Callable[[], T], max_wait: float) -> T:
    """``call()`` within the bulk budget (``budget_wait``); a spent budget stops the pass."""
    try:
        return budget_wait(call, max_wait=max_wait)
    except BudgetExhausted as exc:
        raise ReconcileStopped("the rate budget for background work is spent") from exc


# --- the scheduled reconciler -------------------------------------------------------------


def reconcile_run(
    *,
    tenant: Tenant,
    client: VirtuousClient | None = None,
    drift_sample: int = DRIFT_SAMPLE,
    passes: tuple[str, ...] = ("stuck", "missed_webhooks", "drift"),
    max_wait: float = 0.0,
) -> dict[str, dict[str, int]]:
    """One reconciliation of a tenant: stuck → needs-update → missed webhooks → drift.

    A pass that runs out of budget stops that pass only; its work is picked up next time.
    """
    client = client or virtuous_client(tenant, keep_reserve=True)
    results: dict[str, dict[str, int]] = {}
    steps = {
        "stuck": lambda: reconcile_stuck(tenant=tenant, client=client),
        "missed_webhooks": lambda: reconcile_missed_webhooks(tenant=tenant, client=client, max_wait=max_wait),
        "drift": lambda: reconcile_drift(
            tenant=tenant, client=client, sample=drift_sample, max_wait=max_wait
        ),
    }
    for name in passes:
        try:
            results[name] = steps[name]()
        except ReconcileStopped:
            results[name] = {"stopped": 1}
    return results


def reconcile_stuck(*, tenant: Tenant, client: VirtuousClient) -> dict[str, int]:
    """Submitted > 24 h: found → confirmed (recovered); still 404 after 72 h → needs_review. Logged."""
    before = timezone.now() - dt.timedelta(hours=settings.OUTBOUND_CONFIRM_LOOKUP_HOURS)
    candidates = dict(
        OutboundItem.objects.filter(
            tenant=tenant,
            state=OutboundItem.State.SUBMITTED,
            operation__in=[Operation.GIFT_TRANSACTION, Operation.CONTACT_TRANSACTION],
            submitted_at__lt=before,
        ).values_list("pk", "submitted_at")
    )
    counts = outbound_reconcile_submitted(tenant=tenant, client=client)
    if not candidates:
        return counts
    for item in OutboundItem.objects.filter(pk__in=candidates).exclude(state=OutboundItem.State.SUBMITTED):
        resource = "gift" if item.operation == Operation.GIFT_TRANSACTION else "contact"
        common = {
            "resource_type": resource,
            "partner_source": item.external_source,
            "partner_id": item.external_id,
            "virtuous_id": item.virtuous_id,
            "details": {"item": str(item.public_id), "submitted_at": candidates[item.pk]},
        }
        if item.state == OutboundItem.State.CONFIRMED:
            reconciliation_log(tenant, Category.STUCK, "confirmed: recovered by reconciliation", **common)
        elif item.state == OutboundItem.State.NEEDS_REVIEW:
            reconciliation_log(
                tenant, Category.NEEDS_UPDATE, "needs_review: surfaced to the customer", **common
            )
    return counts


def reconcile_missed_webhooks(
    *, tenant: Tenant, client: VirtuousClient, max_wait: float = 0.0, now: dt.datetime | None = None
) -> dict[str, int]:
    """Inbound polling: gifts and contacts modified since the inbound checkpoint, captured as
    polled InboundEvents and applied at once through the same handler as webhooks.

    This is both the scheduled poll (primary or backstop) and the reconciler's missed-webhook
    pass. Each resource is read at most once a minute. Our own writes among the records are
    confirmed (their webhook was lost); changes made elsewhere go to the two-way handler. A
    version already captured by an earlier poll is not applied again. The checkpoint is the
    newest Virtuous modification time seen, saved every page, never the wall clock.
    """
    now = now or timezone.now()
    connection = virtuous_connection_get_or_create(tenant=tenant)
    counts = {"seen": 0, "new": 0, "confirmed": 0, "elsewhere": 0, "skipped_recent": 0}
    for resource in ("gift", "contact"):
        checkpoint, _ = SyncCheckpoint.objects.get_or_create(
            tenant=tenant, scope="", resource_type=resource, direction=SyncCheckpoint.Direction.INBOUND
        )
        if not _poll_slot(checkpoint, now):
            counts["skipped_recent"] += 1
            continue
        since = (
            checkpoint.last_processed_timestamp or now - MISSED_WEBHOOK_FIRST_LOOKBACK
        ) - MISSED_WEBHOOK_OVERLAP
        newest = checkpoint.last_processed_timestamp
        records = client.iter_modified_since(resource, since)
        for n, record in enumerate(__budgeted_iter(records, max_wait), start=1):
            counts["seen"] += 1
            modified = to_datetime(record.get("modifiedDateTimeUtc"))
            if modified and (newest is None or modified > newest):
                newest = modified
            created = to_datetime(record.get("createDateTimeUtc"))
            event_name = f"{resource}{'Create' if created and created > since else 'Update'}"
            event = _capture_polled(connection, resource, event_name, record, modified)
            if event is not None:
                counts["new"] += 1
                result = _apply_polled(event)
                if result.get("confirmed"):
                    counts["confirmed"] += 1
                    reconciliation_log(
                        tenant,
                        Category.MISSED_WEBHOOK,
                        "confirmed through the inbound handler",
                        resource_type=resource,
                        partner_source=str(record.get("transactionSource") or ""),
                        partner_id=str(record.get("transactionId") or ""),
                        virtuous_id=str(record.get("id", "")),
                        details={"event": event_name, "result": result},
                    )
                elif result.get("origin") == "elsewhere":
                    counts["elsewhere"] += 1
            if n % 100 == 0 and newest is not None:
                _checkpoint_save(checkpoint, newest)
        if newest is not None:
            _checkpoint_save(checkpoint, newest)
    Connection.objects.filter(pk=connection.pk).update(last_poll_at=now, last_success_at=timezone.now())
    return counts


def _poll_slot(checkpoint: SyncCheckpoint, now: dt.datetime) -> bool:
    """Take this resource's poll slot: a conditional UPDATE, so at most one read a minute."""
    recent = now - dt.timedelta(seconds=INBOUND_POLL_MIN_SECONDS)
    taken = (
        SyncCheckpoint.objects.filter(pk=checkpoint.pk)
        .filter(Q(last_run_at__isnull=True) | Q(last_run_at__lte=recent))
        .update(last_run_at=now)
    )
    return bool(taken)


def polled_dedupe_key(resource: str, record: dict) -> str:
    """The capture key of one polled Virtuous version (``poll:`` keeps it apart from webhook keys,
    so the parity report sees both captures of one change)."""
    version = record.get("modifiedDateTimeUtc") or record.get("createDateTimeUtc") or ""
    return f"poll:{resource}:{record.get('id', '')}:{version}"


def _capture_polled(
    connection: Connection, resource: str, event_name: str, record: dict, modified: dt.datetime | None
) -> InboundEvent | None:
    polled = PolledRecord(
        event_type=event_name,
        dedupe_key=polled_dedupe_key(resource, record),
        payload={"event": event_name, resource: record},
        modified_at=modified or timezone.now(),
        record_id=str(record.get("id", "")),
    )
    if not inbound_event_record_polled(connection=connection, record=polled):
        return None
    return InboundEvent.objects.select_related("connection__tenant").get(
        connection=connection, dedupe_key=polled.dedupe_key[:255]
    )


def _apply_polled(event: InboundEvent) -> dict:
    """Process a just-captured polled event now (claimed like the inbound drain would)."""
    claimed = InboundEvent.objects.filter(pk=event.pk, status=InboundEvent.Status.PENDING).update(
        status=InboundEvent.Status.PROCESSING
    )
    if not claimed:
        return {}
    inbound_event_process(event=event)
    return InboundEvent.objects.values_list("result", flat=True).get(pk=event.pk) or {}


def __budgeted_iter(records: Iterator[dict], max_wait: float) -> Iterator[dict]:
    while True:
        try:
            record = budgeted(lambda: next(records), max_wait)
        except StopIteration:
            return
        yield record


def _checkpoint_save(checkpoint: SyncCheckpoint, newest: dt.datetime) -> None:
    checkpoint.last_processed_timestamp = newest
    checkpoint.save(update_fields=["last_processed_timestamp", "updated_at"])


def reconcile_drift(
    *, tenant: Tenant, client: VirtuousClient, sample: int = DRIFT_SAMPLE, max_wait: float = 0.0
) -> dict[str, int]:
    """Compare a sample of confirmed pairs field by field with what we last wrote.

    Transactions cannot update a Virtuous record, so we never "fix" Virtuous. Under
    ``virtuous_canonical`` a difference is accepted (in_sync) unless the tenant syncs back to the
    partner (inbound mode ``full``), where the partner side must change: that is a ``conflict``.
    Under the other policies a difference where the partner is newer, or ownership is per field,
    needs a person: ``conflict``. Every finding is logged.
    """
    counts = {"checked": 0, "in_sync": 0, "drift_accepted": 0, "conflict": 0, "missing": 0}
    records = list(
        SyncRecord.objects.filter(
            tenant=tenant,
            status=SyncRecord.Status.CONFIRMED,
            sync_state=SyncRecord.SyncState.IN_SYNC,
            resource_type__in=[SyncRecord.ResourceType.GIFT, SyncRecord.ResourceType.CONTACT],
        ).order_by("?")[:sample]
    )
    for record in records:
        written = _last_written(tenant, record)
        if written is None:
            continue
        try:
            if record.resource_type == SyncRecord.ResourceType.GIFT:
                theirs = budgeted(
                    lambda r=record: client.gift_get_by_transaction(r.partner_source, r.partner_id), max_wait
                )
                differences = gift_differences(written, theirs)
            else:
                theirs = budgeted(
                    lambda r=record: client.contact_get_by_reference(r.partner_source, r.partner_id), max_wait
                )
                differences = contact_differences(written, theirs)
        except VirtuousError as exc:
            if exc.error_class != ErrorClass.NOT_FOUND:
                raise ReconcileStopped(str(exc)) from exc
            counts["missing"] += 1
            _log_drift(tenant, record, "missing in Virtuous: left for the stuck/needs-update passes", {})
            continue
        counts["checked"] += 1
        if not differences:
            counts["in_sync"] += 1
            continue
        conflict, resolution = _drift_rule(tenant, record, theirs)
        now = timezone.now()
        if conflict:
            counts["conflict"] += 1
            SyncRecord.objects.filter(pk=record.pk).update(
                sync_state=SyncRecord.SyncState.CONFLICT, updated_at=now
            )
        else:
            counts["drift_accepted"] += 1
            SyncRecord.objects.filter(pk=record.pk).update(
                sync_state=SyncRecord.SyncState.IN_SYNC, last_synced_at=now, updated_at=now
            )
        _log_drift(tenant, record, resolution, differences)
    return counts


def _log_drift(tenant: Tenant, record: SyncRecord, resolution: str, differences: dict) -> None:
    reconciliation_log(
        tenant,
        Category.DRIFT,
        resolution,
        resource_type=record.resource_type,
        partner_source=record.partner_source,
        partner_id=record.partner_id,
        virtuous_id=record.virtuous_id,
        details={"differences": differences},
    )


def _drift_rule(tenant: Tenant, record: SyncRecord, theirs: dict) -> tuple[bool, str]:
    policy = tenant.conflict_policy
    if policy == Tenant.ConflictPolicy.VIRTUOUS_CANONICAL:
        if tenant.inbound_mode == Tenant.InboundMode.FULL:
            return True, "conflict: Virtuous is canonical, the partner side must change"
        return False, "in_sync: Virtuous is canonical, its values accepted"
    if policy == Tenant.ConflictPolicy.MOST_RECENT:
        theirs_at = to_datetime(theirs.get("modifiedDateTimeUtc"))
        ours_at = record.partner_modified_at
        if theirs_at and (ours_at is None or theirs_at >= ours_at):
            if tenant.inbound_mode == Tenant.InboundMode.FULL:
                return True, "conflict: Virtuous is newer, the partner side must change"
            return False, "in_sync: Virtuous is newer, its values accepted"
        return True, "conflict: the partner is newer; Virtuous needs a manual update"
    return True, "conflict: per-field ownership needs a person to decide"


def _last_written(tenant: Tenant, record: SyncRecord) -> dict | None:
    operation = (
        Operation.GIFT_TRANSACTION if record.resource_type == "gift" else Operation.CONTACT_TRANSACTION
    )
    item = (
        OutboundItem.objects.filter(
            tenant=tenant,
            operation=operation,
            external_source=record.partner_source,
            external_id=record.partner_id,
            state=OutboundItem.State.CONFIRMED,
        )
        .order_by("-confirmed_at", "-pk")
        .first()
    )
    return item.payload if item else None


def gift_differences(ours: dict, theirs: dict) -> dict[str, list]:
    """Field → [ours, theirs] for amount, date and designations (project code and amount)."""
    differences: dict[str, list] = {}
    if to_decimal(ours.get("amount")) != to_decimal(theirs.get("amount")):
        differences["amount"] = [str(ours.get("amount")), str(theirs.get("amount"))]
    if str(ours.get("giftDate", ""))[:10] != str(theirs.get("giftDate", ""))[:10]:
        differences["giftDate"] = [ours.get("giftDate"), theirs.get("giftDate")]
    mine = _designations(ours.get("designations") or [])
    other = _designations(theirs.get("giftDesignations") or theirs.get("designations") or [])
    if mine != other:
        differences["designations"] = [sorted(mine), sorted(other)]
    return differences


def _designations(rows: list[dict]) -> set[tuple[str, str]]:
    return {
        (str(d.get("projectCode") or ""), str(to_decimal(d.get("amountDesignated")) or Decimal("0")))
        for d in rows
    }


def contact_differences(ours: dict, theirs: dict) -> dict[str, list]:
    """Field → [ours, theirs] for first name, last name and e-mail (case-insensitive)."""
    person = contact_primary_individual(theirs)
    their_fields = {
        "firstName": person.get("firstName"),
        "lastName": person.get("lastName"),
        "email": contact_email(theirs),
    }
    differences: dict[str, list] = {}
    for name, value in their_fields.items():
        mine = str(ours.get(name) or "").strip()
        if mine and mine.lower() != str(value or "").strip().lower():
            differences[name] = [mine, value]
    return differences
