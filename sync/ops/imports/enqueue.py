"""Opening or resuming an import run, and the enqueue pass that feeds the outbound queue in chunks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from integrations.types import OutboundRequest
from sync.models import ImportRun, Origin
from sync.ops.imports.files import CHUNK_SIZE, ImportSettings, ImportStopped, import_rows
from sync.ops.imports.validate import RowError, gift_request, row_validate
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
    """The enqueue pass, from the row after ``last_row_committed``: chunks of gifts into the queue.

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
    chunk: list[OutboundRequest] = []
    position = run.last_row_committed
    skipped = 0
    for number, row in import_rows(path):
        if number <= run.last_row_committed:
            continue
        try:
            chunk.append(gift_request(row_validate(row, settings, today=today), settings))
        except RowError:
            skipped += 1
        position = number
        if len(chunk) >= chunk_size:
            _commit_chunk(run, chunk, position, skipped)
            chunk, skipped = [], 0
            if on_progress:
                on_progress(position)
    _commit_chunk(run, chunk, position, skipped, finished=True)
    if on_progress:
        on_progress(position)
    return run


def _commit_chunk(
    run: ImportRun, chunk: list[OutboundRequest], position: int, skipped: int, *, finished=False
) -> None:
    with transaction.atomic():
        created = outbound_enqueue_many(tenant=run.tenant, requests=chunk, origin=Origin.BULK)
        counters = dict(run.counters)
        counters["enqueued"] = counters.get("enqueued", 0) + created
        counters["already_queued"] = counters.get("already_queued", 0) + len(chunk) - created
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
