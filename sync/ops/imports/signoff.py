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


@dataclass
class _Side:
    gifts: int = 0
    donors: set[str] = field(default_factory=set)
    projects: dict[str, list] = field(default_factory=dict)

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
    ).values_list("state", "payload")
    for state, payload in items.iterator(chunk_size=2000):
        states[state] = states.get(state, 0) + 1
        ours.gifts += 1
        ours.donors.add(str((payload.get("contact") or {}).get("referenceId", "")))
        for designation in payload.get("designations") or []:
            ours.add(
                str(designation.get("projectCode", "")), Decimal(str(designation.get("amountDesignated")))
            )
    theirs = _virtuous_batch(tenant, batch_label, client, max_wait)
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
        "balanced": all(r["count_difference"] == 0 and r["sum_difference"] == 0 for r in rows)
        and ours.gifts == theirs.gifts,
    }


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
)


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
        c: sum((Decimal(str(r[c])) for r in signoff["projects"]), Decimal("0")) for c in SIGNOFF_COLUMNS[1:]
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
        ]
    )
    writer.writerow(["donors", signoff["imported_donors"], "", signoff["virtuous_donors"]])


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
