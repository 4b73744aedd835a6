"""What the console shows of an import run: its validation report, its gifts' stages in the
queue, and the sign-off in words (the per-category progress the command prints is progress.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Count, Q

from integrations.virtuous.errors import ErrorClass
from sync.models import ImportRun, Operation, Origin, OutboundItem

ERROR_LABELS = {
    "source_mapping": "Could not be read from the source",
    "missing_donation_id": "No donation id",
    "missing_donor_id": "No donor id",
    "bad_amount": "Amount missing, not a number, or not above zero",
    "bad_date": "Gift date missing, not YYYY-MM-DD, or in the future",
    "bad_email": "E-mail is not an address",
    "unmapped_project": "Project not in the project map",
    "missing_project": "No project",
    "unknown_project_code": "Project code not one of the mapped codes",
    "bad_currency": "Currency is not a three-letter code",
}
CONTACT_LABELS = {
    "matched_by_reference": "Donor already in Virtuous (matched by our donor id)",
    "matched_by_email": "Donor already in Virtuous (matched by e-mail)",
    "will_create": "New donor: Virtuous will create the contact",
    "not_checked": "Donor not looked up",
}
# The stages a gift goes through, in order, with what each means to the person watching.
STAGES = (
    ("queued", "Queued", "waiting for its turn to be sent"),
    ("waiting", "Waiting", "waiting for a record it depends on to exist in Virtuous"),
    ("submitted", "Submitted", "accepted by Virtuous, waiting for Virtuous's nightly batch"),
    ("confirmed", "Confirmed", "in Virtuous with its id"),
    ("in_review", "In review", "Virtuous holds it for a person to review (needs update)"),
    ("failed", "Failed", "Virtuous refused it: see the dead letters"),
)
PHASE_WORDS = {
    ImportRun.Phase.VALIDATING: "Checking the file and looking up donors in Virtuous…",
    ImportRun.Phase.VALIDATED: "Checked: ready to import.",
    ImportRun.Phase.BLOCKED: "Checked: some rows have errors.",
    ImportRun.Phase.ENQUEUING: "Putting the gifts in the queue…",
    ImportRun.Phase.PAUSED: "Paused.",
    ImportRun.Phase.COMPLETED: "All gifts are in the queue.",
}


def money(value: Decimal | str | int) -> str:
    return f"${Decimal(str(value)):,.2f}"


def import_run_report(run: ImportRun) -> dict[str, Any]:
    """The validation report: totals, rows in error per category, donors per category, projects."""
    counters = run.counters or {}
    errors = [
        {"category": key[len("error_") :], "label": ERROR_LABELS.get(key[len("error_") :], key), "count": n}
        for key, n in sorted(counters.items())
        if key.startswith("error_")
    ]
    contacts = [
        {
            "category": key[len("contact_") :],
            "label": CONTACT_LABELS.get(key[len("contact_") :], key),
            "count": n,
        }
        for key, n in sorted(counters.items())
        if key.startswith("contact_")
    ]
    projects = [
        {"code": code, "count": count, "total": money(total)}
        for code, (count, total) in sorted((run.project_totals or {}).items())
    ]
    return {
        "rows": counters.get("rows", 0),
        "valid": counters.get("valid", 0),
        "invalid": counters.get("invalid", 0),
        "errors": errors,
        "contacts": contacts,
        "projects": projects,
        "valid_total": money(
            sum((Decimal(str(t)) for _, t in (run.project_totals or {}).values()), Decimal(0))
        ),
    }


def _items(run: ImportRun):
    return OutboundItem.objects.filter(
        tenant_id=run.tenant_id,
        origin=Origin.BULK,
        operation=Operation.GIFT_TRANSACTION,
        payload__batch=run.batch_label,
    )


def import_run_status(run: ImportRun) -> dict[str, Any]:
    """Where the run is: its phase in words, rows checked and queued, its gifts per stage."""
    pending = Q(state=OutboundItem.State.PENDING)
    # Waiting: behind its new donor's contact (an explicit dependency), or deferred because a
    # record it names is not in Virtuous yet.
    waiting = Q(state=OutboundItem.State.WAITING) | (pending & Q(last_error_class=ErrorClass.NOT_FOUND))
    counts = _items(run).aggregate(
        queued=Count(
            "pk",
            filter=(pending & ~Q(last_error_class=ErrorClass.NOT_FOUND))
            | Q(state=OutboundItem.State.IN_FLIGHT),
        ),
        waiting=Count("pk", filter=waiting),
        submitted=Count("pk", filter=Q(state=OutboundItem.State.SUBMITTED)),
        confirmed=Count("pk", filter=Q(state=OutboundItem.State.CONFIRMED)),
        in_review=Count("pk", filter=Q(state=OutboundItem.State.NEEDS_REVIEW)),
        failed=Count("pk", filter=Q(state__in=(OutboundItem.State.DEAD, OutboundItem.State.DISCARDED))),
    )
    counters = run.counters or {}
    in_queue = sum(counts.values())
    expected = counters.get("enqueued", 0) + counters.get("already_queued", 0)
    settled = counts["confirmed"] + counts["failed"]
    return {
        "phase": run.phase,
        "phase_words": phase_in_words(run),
        "rows_checked": counters.get("rows", 0),
        "rows_queued": run.last_row_committed,
        "gifts_expected": max(expected, in_queue),
        "stages": [
            {"key": key, "label": label, "help": help_text, "count": counts[key]}
            for key, label, help_text in STAGES
        ],
        "settled": settled,
        "done": run.phase == ImportRun.Phase.COMPLETED and in_queue > 0 and settled == in_queue,
        "signoff_words": signoff_in_words(run.signoff) if run.signoff else "",
        "signoff_balanced": bool(run.signoff and run.signoff.get("balanced")),
        "signoff_at": run.signoff_at.isoformat() if run.signoff_at else None,
    }


def phase_in_words(run: ImportRun) -> str:
    """The phase as a sentence; a pause or a sign-off under way says why in the run's note."""
    if run.note and run.phase in (ImportRun.Phase.PAUSED, ImportRun.Phase.COMPLETED):
        return run.note
    return PHASE_WORDS.get(run.phase, run.get_phase_display())


def signoff_in_words(signoff: dict[str, Any]) -> str:
    """ "Balanced: …" or "Not balanced: 5 gifts / $1,205.50 not in Virtuous yet"."""
    imported = int(signoff.get("imported_gifts", 0))
    theirs = int(signoff.get("virtuous_gifts", 0))
    sums = [Decimal(str(r.get("imported_sum", 0))) for r in signoff.get("projects", [])]
    virtuous_sums = [Decimal(str(r.get("virtuous_sum", 0))) for r in signoff.get("projects", [])]
    total, virtuous_total = sum(sums, Decimal(0)), sum(virtuous_sums, Decimal(0))
    if signoff.get("balanced"):
        return f"Balanced: all {_gifts(imported)} ({money(total)}) are in Virtuous."
    if signoff.get("verdict"):  # the sign-off's own words, per gift missing or extra
        return signoff["verdict"].rstrip(".") + "."
    missing, missing_sum = imported - theirs, total - virtuous_total
    if missing > 0 or (missing == 0 and missing_sum > 0):
        return f"Not balanced: {_gifts(missing)} / {money(missing_sum)} not in Virtuous yet."
    if missing < 0 or missing_sum < 0:
        return (
            f"Not balanced: Virtuous holds {_gifts(-missing)} / {money(-missing_sum)} more in this batch "
            "than were imported."
        )
    return "Not balanced: the totals match but the projects differ; see the table."


def _gifts(n: int) -> str:
    return f"{n} gift" if n == 1 else f"{n} gifts"
