"""The sign-off: what we imported under a batch label against what Virtuous holds, per project."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

from django.db import transaction
from django.utils import timezone

from integrations.common.parsing import to_decimal, to_int
from integrations.virtuous import endpoints
from integrations.virtuous.client import VirtuousClient
from sync.clients import virtuous_client
from sync.models import ImportRun, Operation, OutboundItem
from sync.ops.imports.files import budgeted
from tenants.models import Tenant
from tenants.services import Actor, audit_record

MISSING_LISTED = 200


@dataclass
class _Side:
    gifts: int = 0
    donors: set[str] = field(default_factory=set)
    projects: dict[str, list] = field(default_factory=dict)
    transaction_ids: set[str] = field(default_factory=set)
    amounts: dict[str, Decimal] = field(default_factory=dict)

    def add(self, project: str, amount: Decimal) -> None:
        row = self.projects.setdefault(project or "(none)", [0, Decimal("0")])
        row[0] += 1
        row[1] += amount


def import_signoff(
    *, tenant: Tenant, batch_label: str, client: VirtuousClient | None = None, max_wait: float = 60.0
) -> dict[str, Any]:
    """Counts and sums per project: what we imported under a batch label against what Virtuous holds.

    Ours: the queue items whose payload carries the label (by state, too). Virtuous: every gift of
    the batch, paged through Gift/Query with an id cursor on the bulk budget.
    """
    ours = _Side()
    states: dict[str, int] = {}
    items = OutboundItem.objects.filter(
        tenant=tenant, operation=Operation.GIFT_TRANSACTION, payload__batch=batch_label
    ).values_list("state", "external_id", "payload")
    for state, external_id, payload in items.iterator(chunk_size=2000):
        states[state] = states.get(state, 0) + 1
        ours.gifts += 1
        ours.transaction_ids.add(external_id)
        ours.donors.add(str((payload.get("contact") or {}).get("referenceId", "")))
        ours.amounts[external_id] = Decimal("0")
        for designation in payload.get("designations") or []:
            amount = Decimal(str(designation.get("amountDesignated")))
            ours.add(str(designation.get("projectCode", "")), amount)
            ours.amounts[external_id] += amount
    theirs = _virtuous_batch(tenant, batch_label, client, max_wait)
    missing_ids = ours.transaction_ids - theirs.transaction_ids
    projects = sorted(set(ours.projects) | set(theirs.projects))
    rows = []
    for project in projects:
        a = ours.projects.get(project, [0, Decimal("0")])
        b = theirs.projects.get(project, [0, Decimal("0")])
        rows.append(
            {
                "project_code": project,
                "imported_count": a[0],
                "imported_sum": a[1],
                "virtuous_count": b[0],
                "virtuous_sum": b[1],
                "count_difference": a[0] - b[0],
                "sum_difference": a[1] - b[1],
            }
        )
        rows[-1]["verdict"] = _verdict(
            max(a[0] - b[0], 0),
            max(a[1] - b[1], Decimal("0")),
            max(b[0] - a[0], 0),
            max(b[1] - a[1], Decimal("0")),
        )
    balanced = (
        all(r["count_difference"] == 0 and r["sum_difference"] == 0 for r in rows)
        and ours.gifts == theirs.gifts
        and not missing_ids
    )
    missing = _missing(tenant, batch_label, missing_ids)
    missing_sum = sum((ours.amounts[i] for i in missing_ids), Decimal("0"))
    ours_sum = sum(ours.amounts.values(), Decimal("0"))
    theirs_sum = sum((p[1] for p in theirs.projects.values()), Decimal("0"))
    extra_count = max(theirs.gifts - (ours.gifts - len(missing_ids)), 0)
    extra_sum = max(theirs_sum - (ours_sum - missing_sum), Decimal("0"))
    return {
        "tenant": tenant.slug,
        "batch": batch_label,
        "generated_at": timezone.now().isoformat(),
        "imported_gifts": ours.gifts,
        "virtuous_gifts": theirs.gifts,
        "imported_donors": len(ours.donors - {""}),
        "virtuous_donors": len(theirs.donors),
        "queue_states": states,
        "projects": rows,
        "balanced": balanced,
        "verdict": "Balanced."
        if balanced
        else _verdict(len(missing_ids), missing_sum, extra_count, extra_sum),
        "missing_sum": missing_sum,
        "missing_count": len(missing_ids),
        "missing": missing,
    }


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _gifts(count: int) -> str:
    return f"{count} gift" if count == 1 else f"{count} gifts"


def _verdict(short: int, short_sum: Decimal, extra: int, extra_sum: Decimal) -> str:
    """The sign-off in words: what is not in Virtuous yet, and what Virtuous has beyond the import."""
    parts = []
    if short or short_sum:
        parts.append(f"{_gifts(short)} / {_money(short_sum)} not in Virtuous yet")
    if extra or extra_sum:
        parts.append(f"{_gifts(extra)} / {_money(extra_sum)} in Virtuous beyond this import")
    return "Not balanced: " + "; ".join(parts) if parts else "Balanced."


def _missing(tenant: Tenant, batch_label: str, transaction_ids: set[str]) -> list[dict[str, Any]]:
    """The first imported gifts Virtuous does not hold, with where each stands in our queue."""
    rows = (
        OutboundItem.objects.filter(
            tenant=tenant,
            operation=Operation.GIFT_TRANSACTION,
            payload__batch=batch_label,
            external_id__in=sorted(transaction_ids)[:MISSING_LISTED],
        )
        .select_related("depends_on")
        .order_by("external_id")
    )
    return [
        {
            "transaction_id": item.external_id,
            "donor_id": str((item.payload.get("contact") or {}).get("referenceId", "")),
            "amount": Decimal(str(item.payload.get("amount"))),
            "project_code": ",".join(
                str(d.get("projectCode", "")) for d in item.payload.get("designations") or []
            ),
            "queue_state": item.state,
            "why": _why_missing(item),
        }
        for item in rows
    ]


def _why_missing(item: OutboundItem) -> str:
    if item.state == OutboundItem.State.WAITING:
        return f"waiting for its contact ({item.depends_on.get_state_display().lower() if item.depends_on else 'gone'})"
    if item.state == OutboundItem.State.SUBMITTED:
        return "submitted; Virtuous has not made it yet (nightly batch, or the needs-update bucket)"
    return item.note or item.last_error[:200] or item.get_state_display()


def _virtuous_batch(
    tenant: Tenant, batch_label: str, client: VirtuousClient | None, max_wait: float
) -> _Side:
    client = client or virtuous_client(tenant, keep_reserve=True)
    side = _Side()
    last_id: int | None = None
    while True:
        conditions = [{"parameter": "Batch", "operator": "Is", "value": batch_label}]
        if last_id is not None:
            conditions.append(
                {
                    "parameter": endpoints.QUERY_ID_PARAMETER["gift"],
                    "operator": endpoints.QUERY_GREATER_THAN,
                    "value": str(last_id),
                }
            )
        page = budgeted(
            lambda c=conditions: client.gift_query(
                [{"conditions": c}], sort_by=endpoints.QUERY_SORT_BY_ID, take=endpoints.MAX_TAKE
            ),
            max_wait,
        )
        for gift in page["list"]:
            side.gifts += 1
            if gift.get("transactionId"):
                side.transaction_ids.add(str(gift["transactionId"]))
            side.donors.add(str(gift.get("contactId", "")))
            designations = gift.get("giftDesignations") or gift.get("designations") or []
            for d in designations:
                side.add(
                    str(d.get("projectCode") or ""), to_decimal(d.get("amountDesignated")) or Decimal("0")
                )
            if not designations:
                side.add("", to_decimal(gift.get("amount")) or Decimal("0"))
        if len(page["list"]) < endpoints.MAX_TAKE:
            return side
        last_id = max(to_int(g.get("id")) or 0 for g in page["list"])


SIGNOFF_COLUMNS = (
    "project_code",
    "imported_count",
    "imported_sum",
    "virtuous_count",
    "virtuous_sum",
    "count_difference",
    "sum_difference",
    "verdict",
)
MISSING_COLUMNS = ("transaction_id", "donor_id", "amount", "project_code", "queue_state", "why")


def signoff_csv_write(signoff: dict[str, Any], stream: TextIO) -> None:
    """The sign-off as CSV: one line per project and a TOTAL line."""
    writer = csv.writer(stream)
    writer.writerow(
        ["tenant", signoff["tenant"], "batch", signoff["batch"], "generated_at", signoff["generated_at"]]
    )
    writer.writerow(SIGNOFF_COLUMNS)
    for row in signoff["projects"]:
        writer.writerow([row[c] for c in SIGNOFF_COLUMNS])
    total = {
        c: sum((Decimal(str(r[c])) for r in signoff["projects"]), Decimal("0")) for c in SIGNOFF_COLUMNS[1:-1]
    }
    writer.writerow(
        [
            "TOTAL",
            signoff["imported_gifts"],
            total["imported_sum"],
            signoff["virtuous_gifts"],
            total["virtuous_sum"],
            signoff["imported_gifts"] - signoff["virtuous_gifts"],
            total["sum_difference"],
            signoff["verdict"],
        ]
    )
    writer.writerow(["donors", signoff["imported_donors"], "", signoff["virtuous_donors"]])
    if signoff["missing"]:
        writer.writerow([])
        writer.writerow(["missing", *MISSING_COLUMNS[1:]])
        for row in signoff["missing"]:
            writer.writerow([row[c] for c in MISSING_COLUMNS])


def signoff_lines(signoff: dict[str, Any]) -> list[str]:
    """The sign-off in words: the verdict, each project's, and the first missing gifts."""
    lines = [f"Batch {signoff['batch']}: {signoff['verdict']}"]
    for row in signoff["projects"]:
        lines.append(
            f"  project {row['project_code']}: {row['verdict']} "
            f"(imported {row['imported_count']} / {_money(row['imported_sum'])}, "
            f"in Virtuous {row['virtuous_count']} / {_money(row['virtuous_sum'])})"
        )
    if signoff["missing"]:
        shown = len(signoff["missing"])
        lines.append(f"Missing from Virtuous ({shown} of {signoff['missing_count']} listed):")
        for row in signoff["missing"]:
            lines.append(
                f"  {row['transaction_id']} donor {row['donor_id']} {_money(row['amount'])} "
                f"{row['project_code']}: {row['why']}"
            )
    return lines


def import_run_signoff_store(*, run: ImportRun, signoff: dict[str, Any]) -> None:
    """Keep the latest sign-off on the run, for the admin."""
    run.signoff = signoff
    run.signoff_at = timezone.now()
    run.save(update_fields=["signoff", "signoff_at", "updated_at"])


def import_run_signoff(
    *, run: ImportRun, actor: Actor, client: VirtuousClient | None = None, max_wait: float = 60.0
) -> dict[str, Any]:
    """Sign off a historical import run: compare it with Virtuous, keep the result on the run and
    record who asked (the admin's sign-off action and the ``import_signoff`` command)."""
    signoff = import_signoff(tenant=run.tenant, batch_label=run.batch_label, client=client, max_wait=max_wait)
    with transaction.atomic():
        import_run_signoff_store(run=run, signoff=signoff)
        audit_record(
            actor=actor,
            action="import_run.signed_off",
            tenant=run.tenant,
            target=run,
            details={
                "batch": run.batch_label,
                "balanced": signoff["balanced"],
                "imported_gifts": signoff["imported_gifts"],
                "virtuous_gifts": signoff["virtuous_gifts"],
            },
        )
    return signoff
