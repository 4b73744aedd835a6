"""Pattern B: the two-way initial reconciliation.

Every Virtuous contact is paged and cross-matched with the partner-side contacts we hold (by our
reference, then by e-mail): matched pairs become ``in_sync`` baselines, Virtuous-only contacts are
logged under the chosen policy, and partner-only contacts get a contact transaction on the bulk
budget. Every decision is logged in the ReconciliationLog; the run resumes from its last page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.common.parsing import to_int
from integrations.selectors import tenant_write_sources
from integrations.types import OutboundRequest
from integrations.virtuous import endpoints
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.records import contact_email
from sync.models import (
    ImportRun,
    Operation,
    Origin,
    OutboundItem,
    ReconciliationLog,
    SyncRecord,
)
from sync.ops.reconcile import ReconcileStopped, budgeted, reconciliation_log
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.models import Tenant

Category = ReconciliationLog.Category


@dataclass
class _Partner:
    """Partner-side contacts, from the contact transactions we hold (the latest one per record)."""

    by_key: dict[tuple[str, str], tuple[int, str, str]] = field(
        default_factory=dict
    )  # key → (item pk, state, email)
    by_email: dict[str, tuple[str, str]] = field(default_factory=dict)


def _partner_contacts(tenant: Tenant) -> _Partner:
    partner = _Partner()
    items = (
        OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION)
        .order_by("pk")
        .values_list("pk", "external_source", "external_id", "state", "payload__email")
    )
    for pk, source, external_id, state, email in items.iterator(chunk_size=2000):
        email = str(email or "").strip().lower()
        partner.by_key[(source, external_id)] = (pk, state, email)
        if email:
            partner.by_email.setdefault(email, (source, external_id))
    return partner


def initial_reconciliation_estimate(*, tenant: Tenant, client: VirtuousClient) -> dict[str, Any]:
    """Requests and hours this tenant's bulk budget needs: contact pages plus partner-only submissions."""
    total = client.contact_query([], take=1, full=False, include_archived=True)["total"]
    pages = max(1, math.ceil(total / endpoints.MAX_TAKE))
    partner = OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).count()
    submissions = math.ceil(partner / max(tenant.batch_size, 1)) if tenant.batching_enabled else partner
    hourly = tenant.usable_hourly_budget * (100 - min(tenant.bulk_reserve_percent, 99)) / 100
    requests = pages + submissions
    return {
        "virtuous_contacts": total,
        "partner_contacts": partner,
        "requests": requests,
        "bulk_requests_per_hour": int(hourly),
        "hours": round(requests / hourly, 2) if hourly else None,
    }


def initial_reconciliation_run(
    *,
    run: ImportRun,
    client: VirtuousClient,
    virtuous_only: str = "external_only",
    max_wait: float = 60.0,
    on_progress: Callable[[int], None] | None = None,
) -> ImportRun:
    """Page every Virtuous contact after the run's last contact id and cross-match it; then settle
    the partner-only records. Matched pairs become ``in_sync`` baselines; every decision is logged.

    Resumable: the position (last Virtuous contact id) and counters commit with each page.
    """
    if virtuous_only not in ("external_only", "create"):
        raise ValueError("virtuous_only must be 'external_only' or 'create'.")
    tenant = run.tenant
    ours = tenant_write_sources(tenant=tenant)
    partner = _partner_contacts(tenant)
    run.phase = ImportRun.Phase.MATCHING
    run.save(update_fields=["phase", "updated_at"])
    while True:
        conditions = [
            {
                "parameter": endpoints.QUERY_ID_PARAMETER["contact"],
                "operator": endpoints.QUERY_GREATER_THAN,
                "value": str(run.last_row_committed),
            }
        ]
        try:
            page = budgeted(
                lambda c=conditions: client.contact_query(
                    [{"conditions": c}], sort_by=endpoints.QUERY_SORT_BY_ID, include_archived=True
                ),
                max_wait,
            )
        except ReconcileStopped:
            run.phase = ImportRun.Phase.PAUSED
            run.note = "Paused: the bulk rate budget is spent; run the command again to resume."
            run.save(update_fields=["phase", "note", "updated_at"])
            raise
        contacts = page["list"]
        with transaction.atomic():
            counters = dict(run.counters)
            for contact in contacts:
                outcome = _match_contact(run, contact, ours, partner, virtuous_only)
                counters[outcome] = counters.get(outcome, 0) + 1
            if contacts:
                run.last_row_committed = max(to_int(c.get("id")) or 0 for c in contacts)
            run.counters = counters
            run.save(update_fields=["counters", "last_row_committed", "updated_at"])
        if on_progress:
            on_progress(sum(v for k, v in run.counters.items() if k.startswith(("matched", "virtuous_only"))))
        if len(contacts) < endpoints.MAX_TAKE:
            break
    _partner_only(run, partner)
    run.phase = ImportRun.Phase.COMPLETED
    run.finished_at = timezone.now()
    run.note = ""
    run.save(update_fields=["phase", "finished_at", "note", "updated_at"])
    return run


def _match_contact(
    run: ImportRun, contact: dict, ours: set[str], partner: _Partner, virtuous_only: str
) -> str:
    tenant = run.tenant
    virtuous_id = str(contact.get("id", ""))
    if contact.get("mergedIntoContactId"):
        return "skipped_merged"
    references = [
        (str(r.get("source")), str(r.get("id")))
        for r in contact.get("contactReferences") or []
        if r.get("source") in ours and r.get("id")
    ]
    if references:
        for source, partner_id in references:
            _baseline(run, source, partner_id, virtuous_id)
            reconciliation_log(
                tenant,
                Category.MATCHED_BY_REFERENCE,
                "in_sync baseline",
                run=run,
                resource_type="contact",
                partner_source=source,
                partner_id=partner_id,
                virtuous_id=virtuous_id,
            )
        return "matched_by_reference"
    email = contact_email(contact)
    key = partner.by_email.get(email) if email else None
    if key is not None:
        _baseline(run, key[0], key[1], virtuous_id)
        reconciliation_log(
            tenant,
            Category.MATCHED_BY_EMAIL,
            "in_sync baseline (reference added by the next contact transaction)",
            run=run,
            resource_type="contact",
            partner_source=key[0],
            partner_id=key[1],
            virtuous_id=virtuous_id,
            details={"email": email},
        )
        return "matched_by_email"
    resolution = "create partner-side (requested)" if virtuous_only == "create" else "external-only"
    reconciliation_log(
        tenant,
        Category.VIRTUOUS_ONLY,
        resolution,
        run=run,
        resource_type="contact",
        virtuous_id=virtuous_id,
        details={"name": contact.get("name", ""), "policy": virtuous_only},
    )
    return "virtuous_only"


def _baseline(run: ImportRun, source: str, partner_id: str, virtuous_id: str) -> None:
    now = timezone.now()
    SyncRecord.objects.update_or_create(
        tenant=run.tenant,
        resource_type=SyncRecord.ResourceType.CONTACT,
        partner_source=source,
        partner_id=partner_id,
        defaults={
            "virtuous_id": virtuous_id,
            "status": SyncRecord.Status.CONFIRMED,
            "sync_state": SyncRecord.SyncState.IN_SYNC,
            "last_synced_at": now,
        },
    )


def _partner_only(run: ImportRun, partner: _Partner) -> None:
    """Partner contacts no Virtuous contact matched in this run get a contact transaction (bulk)."""
    tenant = run.tenant
    matched = set(
        SyncRecord.objects.filter(
            tenant=tenant, resource_type=SyncRecord.ResourceType.CONTACT, last_synced_at__gte=run.started_at
        ).values_list("partner_source", "partner_id")
    )
    on_the_way = {OutboundItem.State.PENDING, OutboundItem.State.IN_FLIGHT, OutboundItem.State.SUBMITTED}
    requests: list[OutboundRequest] = []
    counters = dict(run.counters)
    for (source, partner_id), (pk, state, _email) in partner.by_key.items():
        if (source, partner_id) in matched:
            continue
        counters["partner_only"] = counters.get("partner_only", 0) + 1
        if state in on_the_way:
            resolution = "already on its way to Virtuous"
        else:
            payload = OutboundItem.objects.values_list("payload", flat=True).get(pk=pk)
            requests.append(
                OutboundRequest(
                    Operation.CONTACT_TRANSACTION,
                    source,
                    partner_id,
                    payload,
                    idempotency_key=f"{Operation.CONTACT_TRANSACTION}:{source}:{partner_id}:initial-{run.public_id}",
                )
            )
            resolution = "contact transaction submitted"
        reconciliation_log(
            tenant,
            Category.PARTNER_ONLY,
            resolution,
            run=run,
            resource_type="contact",
            partner_source=source,
            partner_id=partner_id,
        )
    for start in range(0, len(requests), 1000):
        counters["partner_only_submitted"] = counters.get(
            "partner_only_submitted", 0
        ) + outbound_enqueue_many(tenant=tenant, requests=requests[start : start + 1000], origin=Origin.BULK)
    run.counters = counters
    run.save(update_fields=["counters", "updated_at"])
