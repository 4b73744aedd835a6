"""The import plan: what one valid row makes, decided in one place for the dry run and the real run.

Validation resolves each donor (``Contact/Find`` by our reference, then e-mail) and keeps the
answer per donor (``ImportDonor``); both passes then ask ``row_plan`` what the row makes. The dry
run counts the plan under ``plan_*``; the real run executes it and counts what it did under
``done_*`` with the same ``plan_tally``, so the two reports cannot disagree unless the queue does.

A donor Virtuous does not know (``will_create``), or one nobody looked up (``not_checked``), gets
a Contact Transaction carrying our reference, enqueued ahead of their gifts; the gifts wait on it
(an explicit dependency) until Virtuous confirms the contact, because a gift the nightly batch
cannot match lands in the needs-update bucket (spec 4.4, 4.11).
"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.types import OutboundRequest
from sync.models import Operation
from sync.ops.imports.files import ImportSettings

MATCHED_BY_REFERENCE = "matched_by_reference"
MATCHED_BY_EMAIL = "matched_by_email"
WILL_CREATE = "will_create"
NOT_CHECKED = "not_checked"
CATEGORIES = (MATCHED_BY_REFERENCE, MATCHED_BY_EMAIL, WILL_CREATE, NOT_CHECKED)
# Donors for whom we send a Contact Transaction first.
CREATES_CONTACT = frozenset({WILL_CREATE, NOT_CHECKED})


class DonorWithoutIdentity(ValueError):
    """A donor to create has neither a name nor an e-mail: Virtuous cannot make a contact of it."""


@dataclass(frozen=True)
class RowPlan:
    category: str
    gift: OutboundRequest
    contact: OutboundRequest | None = None  # the new donor's Contact Transaction, ahead of the gift


def row_plan(valid, category: str, settings: ImportSettings) -> RowPlan:
    """What this valid row makes for a donor resolved as ``category`` (see the module docstring)."""
    from sync.ops.imports.validate import gift_request  # validate asks this module for plans

    gift = gift_request(valid, settings)
    if category not in CREATES_CONTACT:
        return RowPlan(category, gift)
    return RowPlan(category, gift, contact_request(valid, settings))


def contact_request(valid, settings: ImportSettings) -> OutboundRequest:
    """The Contact Transaction for a new donor: our reference pair and every matching signal."""
    if not (valid.first_name or valid.last_name or valid.email):
        raise DonorWithoutIdentity(
            f"donor {valid.donor_id} is not in Virtuous and has no name or e-mail to create them with"
        )
    payload = {
        "referenceSource": settings.transaction_source,
        "referenceId": valid.donor_id,
        "contactType": "Household",
        "firstName": valid.first_name,
        "lastName": valid.last_name,
        "emailType": "Home Email" if valid.email else "",
        "email": valid.email,
    }
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        settings.transaction_source,
        valid.donor_id,
        {k: v for k, v in payload.items() if v},
        # One contact write per donor and source, whatever run or row carries them first.
        idempotency_key=f"{Operation.CONTACT_TRANSACTION}:{settings.transaction_source}:{valid.donor_id}:import",
    )


def plan_tally(counters: dict[str, int], prefix: str, plan: RowPlan, *, new_donor: bool) -> None:
    """Count one row's plan: gifts per category, donors per category, contacts to create."""

    def add(key: str) -> None:
        counters[key] = counters.get(key, 0) + 1

    add(f"{prefix}_{plan.category}_gifts")
    if new_donor:
        add(f"{prefix}_{plan.category}_donors")
        if plan.contact is not None:
            add(f"{prefix}_contacts")


def plan_counts(counters: dict[str, int], prefix: str) -> dict[str, int]:
    """The ``prefix``'s counters with the prefix taken off (``plan`` or ``done``), zeros included."""
    keys = [f"{c}_{part}" for c in CATEGORIES for part in ("gifts", "donors")] + ["contacts"]
    return {key: counters.get(f"{prefix}_{key}", 0) for key in keys}


def plan_lines(counters: dict[str, int], prefix: str) -> list[str]:
    """The plan in words, one line per category that has gifts, then the contacts line."""
    counts = plan_counts(counters, prefix)
    lines = []
    for category in CATEGORIES:
        gifts = counts[f"{category}_gifts"]
        if not gifts:
            continue
        donors = counts[f"{category}_donors"]
        then = (
            "Contact Transaction first, gifts wait for it"
            if category in CREATES_CONTACT
            else "gifts attach to the existing contact"
        )
        lines.append(f"  {category}: {donors} donor(s), {gifts} gift(s) ({then})")
    lines.append(f"  contact transactions: {counts['contacts']}")
    return lines
