"""Where a historical import run stands, per contact category: what was submitted, confirmed, is
waiting on its contact, or is in review. Read by the command after enqueuing and by the admin."""

from __future__ import annotations

from typing import Any

from sync.models import ImportDonor, ImportRun, Operation, OutboundItem
from sync.ops.imports.plan import CATEGORIES, NOT_CHECKED, plan_lines

BUCKETS = ("queued", "waiting", "submitted", "confirmed", "in_review", "discarded")
BUCKET_OF_STATE = {
    OutboundItem.State.PENDING: "queued",
    OutboundItem.State.IN_FLIGHT: "queued",
    OutboundItem.State.WAITING: "waiting",
    OutboundItem.State.SUBMITTED: "submitted",
    OutboundItem.State.CONFIRMED: "confirmed",
    OutboundItem.State.NEEDS_REVIEW: "in_review",
    OutboundItem.State.DEAD: "in_review",
    OutboundItem.State.DISCARDED: "discarded",
}


def import_run_progress(run: ImportRun) -> dict[str, dict[str, dict[str, int]]]:
    """``{category: {"gifts": {bucket: n}, "contacts": {bucket: n}}}`` for the categories present."""
    categories = dict(ImportDonor.objects.filter(run=run).values_list("donor_id", "category"))
    result: dict[str, dict[str, dict[str, int]]] = {}

    def add(category: str, kind: str, state: str) -> None:
        buckets = result.setdefault(category, {"gifts": {}, "contacts": {}})[kind]
        bucket = BUCKET_OF_STATE[state]
        buckets[bucket] = buckets.get(bucket, 0) + 1

    gifts = OutboundItem.objects.filter(
        tenant=run.tenant,
        operation=Operation.GIFT_TRANSACTION,
        external_source=run.transaction_source,
        payload__batch=run.batch_label,
    ).values_list("state", "payload__contact__referenceId")
    for state, donor_id in gifts.iterator(chunk_size=2000):
        add(categories.get(str(donor_id), NOT_CHECKED), "gifts", state)
    contacts = ImportDonor.objects.filter(run=run, contact_item__isnull=False).values_list(
        "category", "contact_item__state"
    )
    for category, state in contacts.iterator(chunk_size=2000):
        add(category, "contacts", state)
    return {c: result[c] for c in CATEGORIES if c in result}


def progress_lines(progress: dict[str, Any]) -> list[str]:
    """One line per category and kind: ``will_create gifts: 30 waiting, 0 confirmed``."""
    lines = []
    for category, kinds in progress.items():
        for kind in ("contacts", "gifts"):
            buckets = kinds[kind]
            if buckets:
                parts = ", ".join(f"{buckets[b]} {b.replace('_', ' ')}" for b in BUCKETS if buckets.get(b))
                lines.append(f"  {category} {kind}: {parts}")
    return lines


def import_run_category_lines(run: ImportRun) -> list[str]:
    """The dry run's plan, what the real run did, and each category's gifts and contacts now."""
    counters = run.counters or {}
    lines = ["Plan:", *plan_lines(counters, "plan")]
    if any(k.startswith("done_") for k in counters):
        lines += ["Done:", *plan_lines(counters, "done"), "Now:", *progress_lines(import_run_progress(run))]
    return lines
