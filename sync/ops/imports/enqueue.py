"""Opening or resuming an import run, and the enqueue pass that feeds the outbound queue in chunks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from sync.models import ImportDonor, ImportRun, Origin, OutboundItem
from sync.ops.imports.files import CHUNK_SIZE, ImportSettings, ImportStopped, import_rows
from sync.ops.imports.plan import NOT_CHECKED, DonorWithoutIdentity, RowPlan, plan_tally, row_plan
from sync.ops.imports.validate import RowError, ValidRow, row_validate
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.models import Tenant


def import_run_open(
    *,
    tenant: Tenant,
    kind: str,
    source_label: str,
    fingerprint: str,
    transaction_source: str = "",
    batch_label: str = "",
) -> tuple[ImportRun, bool]:
    """The unfinished run for this input (resumed=True), or a new one."""
    existing = (
        ImportRun.objects.filter(tenant=tenant, kind=kind, fingerprint=fingerprint)
        .exclude(phase=ImportRun.Phase.COMPLETED)
        .order_by("-started_at")
        .first()
    )
    if existing is not None:
        return existing, True
    run = ImportRun.objects.create(
        tenant=tenant,
        kind=kind,
        source_label=source_label[:300],
        fingerprint=fingerprint,
        transaction_source=transaction_source,
        batch_label=batch_label,
        phase=ImportRun.Phase.VALIDATING
        if kind == ImportRun.Kind.HISTORICAL_GIFTS
        else ImportRun.Phase.MATCHING,
    )
    return run, False


def historical_import_enqueue(
    *,
    run: ImportRun,
    path: Path,
    settings: ImportSettings,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    today: dt.date | None = None,
) -> ImportRun:
    """The enqueue pass, from the row after ``last_row_committed``: executes the validation's plan
    (``row_plan`` with each donor's resolution) in chunks: new donors' Contact Transactions first,
    then the gifts, those of new donors waiting on their contact.

    Each chunk and the run's position commit together, so a crash loses nothing and repeats
    nothing; keys already in the queue (an earlier run, a live capture) are counted, not re-added.
    """
    if run.phase == ImportRun.Phase.BLOCKED and not skip_invalid:
        raise ImportStopped(run.note or "validation found invalid rows")
    if run.phase not in (ImportRun.Phase.VALIDATED, ImportRun.Phase.BLOCKED, ImportRun.Phase.ENQUEUING):
        raise ImportStopped(f"run is {run.phase}: validate first")
    today = today or timezone.localdate()
    run.phase = ImportRun.Phase.ENQUEUING
    run.save(update_fields=["phase", "updated_at"])
    chunk: list[ValidRow] = []
    position = run.last_row_committed
    skipped = 0
    for number, row in import_rows(path):
        if number <= run.last_row_committed:
            continue
        try:
            chunk.append(row_validate(row, settings, today=today))
        except RowError:
            skipped += 1
        position = number
        if len(chunk) >= chunk_size:
            _commit_chunk(run, settings, chunk, position, skipped)
            chunk, skipped = [], 0
            if on_progress:
                on_progress(position)
    _commit_chunk(run, settings, chunk, position, skipped, finished=True)
    if on_progress:
        on_progress(position)
    return run


def _commit_chunk(
    run: ImportRun,
    settings: ImportSettings,
    rows: list[ValidRow],
    position: int,
    skipped: int,
    *,
    finished: bool = False,
) -> None:
    counters = dict(run.counters)
    with transaction.atomic():
        donors = {
            d.donor_id: d
            for d in ImportDonor.objects.filter(
                run=run, donor_id__in={r.donor_id for r in rows}
            ).select_related("contact_item")
        }
        plans: list[RowPlan] = []
        for valid in rows:
            donor = donors.get(valid.donor_id)
            try:
                plans.append(row_plan(valid, donor.category if donor else NOT_CHECKED, settings))
            except DonorWithoutIdentity:
                skipped += 1  # validation reported it invalid; --skip-invalid leaves it out
        contact_items = _contacts_enqueue(run, plans, donors, counters)
        gifts = [p.gift for p in plans]
        created = outbound_enqueue_many(
            tenant=run.tenant,
            requests=gifts,
            origin=Origin.BULK,
            depends_on={
                p.gift.key: contact_items[p.gift.payload["contact"]["referenceId"]]
                for p in plans
                if p.contact
            },
        )
        # A donor is new to this pass at its first row not yet enqueued (``donors`` was read before
        # this chunk marks its donors enqueued; an earlier chunk's are marked already).
        tallied: set[str] = set()
        for plan in plans:
            donor_id = plan.gift.payload["contact"]["referenceId"]
            donor = donors.get(donor_id)
            new_donor = donor_id not in tallied and (donor is None or not donor.enqueued)
            tallied.add(donor_id)
            plan_tally(counters, "done", plan, new_donor=new_donor)
        ImportDonor.objects.filter(run=run, donor_id__in={r.donor_id for r in rows}).update(enqueued=True)
        counters["enqueued"] = counters.get("enqueued", 0) + created
        counters["already_queued"] = counters.get("already_queued", 0) + len(gifts) - created
        counters["skipped_invalid"] = counters.get("skipped_invalid", 0) + skipped
        run.counters = counters
        run.last_row_committed = position
        fields = ["counters", "last_row_committed", "updated_at"]
        if finished:
            run.phase = ImportRun.Phase.COMPLETED
            run.finished_at = timezone.now()
            run.note = ""
            fields += ["phase", "finished_at", "note"]
        run.save(update_fields=fields)


def _contacts_enqueue(
    run: ImportRun, plans: list[RowPlan], donors: dict[str, ImportDonor], counters: dict[str, int]
) -> dict[str, OutboundItem]:
    """Enqueue the Contact Transaction of every new donor in the chunk not yet given one (from their
    first row), and return each new donor's contact item, by donor id."""
    wanted = {}
    for plan in plans:
        donor_id = plan.gift.payload["contact"]["referenceId"]
        donor = donors.get(donor_id)
        if plan.contact is not None and (donor is None or donor.contact_item is None):
            wanted.setdefault(donor_id, plan.contact)
    created = outbound_enqueue_many(tenant=run.tenant, requests=list(wanted.values()), origin=Origin.BULK)
    counters["contacts_enqueued"] = counters.get("contacts_enqueued", 0) + created
    items = {
        item.external_id: item
        for item in OutboundItem.objects.filter(
            tenant=run.tenant, idempotency_key__in=[r.key for r in wanted.values()]
        )
    }
    given = []
    for donor_id, item in items.items():
        if (donor := donors.get(donor_id)) is not None:
            donor.contact_item = item
            given.append(donor)
    ImportDonor.objects.bulk_update(given, ["contact_item"], batch_size=500)
    known = {d: donor.contact_item for d, donor in donors.items() if donor.contact_item is not None}
    return {**known, **items}
