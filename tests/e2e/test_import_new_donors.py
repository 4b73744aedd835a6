"""Issue 14 §2's measured case against the live sandbox over HTTP: 30 historical gifts from 10 new
donors, with a nightly batch that leaves unmatched gifts in needs-update for a person to resolve."""

import io
import logging

import pytest
from django.core.management import call_command

from integrations.sandbox.models import SandboxContact, SandboxGift, SandboxTransaction
from integrations.sandbox.services import sandbox_batch_run
from integrations.virtuous.services import virtuous_subscription_create
from sync.inbound.drain import inbound_drain
from sync.models import ImportRun, Operation, Origin, OutboundItem
from sync.ops.imports.files import ImportSettings
from sync.ops.imports.plan import contact_request, plan_counts
from sync.ops.imports.signoff import import_signoff
from sync.ops.imports.validate import ValidRow, gift_request
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.services import tenant_create

pytestmark = pytest.mark.slow
BATCH = "Historical-Import-2026-11"


def _history(tmp_path):
    path = tmp_path / "history.csv"
    lines = ["donation_id,donor_id,email,first_name,last_name,amount,gift_date,project"]
    for donor in range(1, 11):
        for gift in range(1, 4):
            project = "food" if gift < 3 else "shelter"
            lines.append(
                f"h-{donor}-{gift},donor-{donor},d{donor}@example.org,Dee,Nor{donor},"
                f"{donor * 10 + gift}.50,2025-0{gift}-1{donor % 10},{project}"
            )
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "map.csv").write_text("source_project,project_code\nfood,FOOD\nshelter,SHEL\n")
    return path


def _import(tenant, tmp_path, *extra):
    out = io.StringIO()
    call_command(
        "import_historical_gifts",
        tenant.slug,
        "--file",
        str(_history(tmp_path)),
        "--project-map",
        str(tmp_path / "map.csv"),
        "--batch",
        BATCH,
        "--source",
        "Giftline",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_thirty_gifts_from_ten_new_donors_all_reach_virtuous_and_the_signoff_balances(
    sandboxed, live_server, tmp_path, caplog
):
    tenant = tenant_create(slug="import-e2e", name="Import Shelter")
    outsider = tenant_create(slug="outsider-e2e", name="Outsider Rescue")
    org = sandboxed(tenant)
    other_org = sandboxed(outsider)
    virtuous_subscription_create(tenant=tenant, base_url=live_server.url)

    # given the dry run: every donor is unknown to Virtuous, and no lookup logs a warning
    with caplog.at_level(logging.INFO, logger="giftline.virtuous"):
        dry = _import(tenant, tmp_path, "--dry-run")
    assert "will_create: 10 donor(s), 30 gift(s) (Contact Transaction first, gifts wait for it)" in dry
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "giftline.virtuous"]
    run = ImportRun.objects.get(tenant=tenant)
    planned = plan_counts(run.counters, "plan")
    assert (planned["will_create_gifts"], planned["will_create_donors"], planned["contacts"]) == (30, 10, 10)

    # when the real run enqueues: what it did is what the dry run said
    real = _import(tenant, tmp_path)
    run.refresh_from_db()
    assert plan_counts(run.counters, "done") == planned
    assert "will_create contacts: 10 queued" in real and "will_create gifts: 30 waiting" in real

    # and the drain sends only the contacts; the nightly batch creates them, nothing lands in needs-update
    outbound_drain(tenant=tenant)
    gifts = OutboundItem.objects.filter(tenant=tenant, operation=Operation.GIFT_TRANSACTION)
    assert set(gifts.values_list("state", flat=True)) == {"waiting"}
    first = sandbox_batch_run(organization=org)
    assert (first["contacts_created"], first["gifts_created"], first["needs_update"]) == (10, 0, 0)
    signoff = import_signoff(tenant=tenant, batch_label=BATCH)
    assert signoff["verdict"] == "Not balanced: 30 gifts / $1,725.00 not in Virtuous yet"
    assert signoff["missing_count"] == 30 and signoff["missing"][0]["why"].startswith(
        "waiting for its contact"
    )

    # and the contactCreate webhooks confirm the contacts, which releases the gifts
    inbound_drain(seconds=0)
    assert set(gifts.values_list("state", flat=True)) == {"pending"}
    outbound_drain(tenant=tenant)
    second = sandbox_batch_run(organization=org)
    assert (second["gifts_created"], second["needs_update"]) == (30, 0)
    inbound_drain(seconds=0)

    # then Virtuous has 10 contacts and 30 gifts, and the sign-off balances, per project too
    assert SandboxContact.objects.filter(organization=org).count() == 10
    assert SandboxGift.objects.filter(organization=org, batch=BATCH).count() == 30
    assert not SandboxTransaction.objects.filter(organization=org, state="needs_update").exists()
    assert set(gifts.values_list("state", flat=True)) == {"confirmed"}
    signoff = import_signoff(tenant=tenant, batch_label=BATCH)
    assert signoff["balanced"] and signoff["verdict"] == "Balanced."
    assert {r["project_code"]: r["verdict"] for r in signoff["projects"]} == {
        "FOOD": "Balanced.",
        "SHEL": "Balanced.",
    }
    # and the outsider's organisation saw nothing
    assert not SandboxTransaction.objects.filter(organization=other_org).exists()


def test_the_sandbox_leaves_gifts_sent_without_their_contacts_in_needs_update(sandboxed):
    """What the import did before issue 14: gifts only. The strict sandbox keeps all of them in
    needs-update, even after their contacts arrive, so a regression cannot pass the test above."""
    tenant = tenant_create(slug="gifts-only", name="Gifts Only")
    org = sandboxed(tenant)
    settings = ImportSettings(transaction_source="Giftline", batch_label=BATCH, project_map={"food": "FOOD"})
    rows = [
        ValidRow(f"h-{n}", f"donor-{n % 10}", "", "Dee", "Nor", 10, "USD", "2025-01-01", "FOOD", "Other", "")
        for n in range(30)
    ]
    outbound_enqueue_many(
        tenant=tenant, requests=[gift_request(r, settings) for r in rows], origin=Origin.BULK
    )
    outbound_drain(tenant=tenant)
    assert sandbox_batch_run(organization=org)["needs_update"] == 30
    # when the contacts follow a day later
    contacts = {r.donor_id: contact_request(r, settings) for r in rows}
    outbound_enqueue_many(tenant=tenant, requests=list(contacts.values()), origin=Origin.BULK)
    outbound_drain(tenant=tenant)
    result = sandbox_batch_run(organization=org)
    # then the contacts exist, and the gifts still wait for a person in needs-update
    assert (result["contacts_created"], result["gifts_created"]) == (10, 0)
    assert SandboxTransaction.objects.filter(organization=org, state="needs_update").count() == 30
    assert import_signoff(tenant=tenant, batch_label=BATCH)["verdict"] == (
        "Not balanced: 30 gifts / $300.00 not in Virtuous yet"
    )
