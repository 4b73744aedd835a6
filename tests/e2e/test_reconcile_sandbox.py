"""Reconciliation, Pattern B and the import sign-off against the live Virtuous sandbox."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.sandbox.models import SandboxGift
from integrations.sandbox.services import sandbox_batch_run, sandbox_contact_create, sandbox_contact_edit
from integrations.types import Operation, OutboundRequest
from sync.models import ImportRun, Origin, OutboundItem, ReconciliationLog, SyncCheckpoint, SyncRecord
from sync.ops import reconcile, reconcile_report
from sync.ops.imports.signoff import import_signoff
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tenants.models import Tenant
from tenants.services import tenant_create

pytestmark = pytest.mark.slow
Category = ReconciliationLog.Category


def _contact(n, email=None):
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        "Giftline",
        f"donor-{n}",
        {
            "referenceSource": "Giftline",
            "referenceId": f"donor-{n}",
            "firstName": f"Donor{n}",
            "lastName": "Test",
            "email": email or f"d{n}@example.org",
        },
    )


def _gift(n, donor=None, amount="40.00"):
    donor = donor or n
    return OutboundRequest(
        Operation.GIFT_TRANSACTION,
        "Giftline",
        f"g-{n}",
        {
            "transactionSource": "Giftline",
            "transactionId": f"g-{n}",
            "contact": {"referenceId": f"donor-{donor}", "email": f"d{donor}@example.org"},
            "giftDate": "2026-11-20",
            "giftType": "Credit",
            "amount": Decimal(amount),
            "designations": [{"projectCode": "GEN", "amountDesignated": Decimal(amount)}],
        },
    )


def _person(first, last, email):
    return {
        "contactIndividuals": [
            {"firstName": first, "lastName": last, "contactMethods": [{"type": "Home Email", "value": email}]}
        ]
    }


@pytest.fixture
def world(sandboxed):
    """Two tenants on their own sandbox organisations; alpha has a known donor with one gift and an
    unmatchable gift (no such donor: it lands in the needs-update bucket)."""
    alpha = tenant_create(slug="alpha-e2e", name="Alpha Food Bank")
    bravo = tenant_create(slug="bravo-e2e", name="Bravo Animal Rescue")
    org = sandboxed(alpha)
    other_org = sandboxed(bravo)
    outbound_enqueue(tenant=alpha, request=_contact(1), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=alpha, request=_gift(1), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=alpha, request=_gift(2, donor=99), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=bravo, request=_gift(1), origin=Origin.WEBHOOK)
    outbound_drain(tenant=alpha)
    outbound_drain(tenant=bravo)
    sandbox_batch_run(organization=org)
    return alpha, bravo, org, other_org


def _backdate(tenant, external_id, hours):
    OutboundItem.objects.filter(tenant=tenant, external_id=external_id).update(
        submitted_at=timezone.now() - timedelta(hours=hours)
    )


def test_stuck_gift_is_recovered_and_a_long_missing_one_is_surfaced(world):
    alpha, bravo, org, _ = world
    # given no webhook arrived: one gift submitted 25 h ago exists, one submitted 73 h ago does not
    _backdate(alpha, "g-1", 25)
    _backdate(alpha, "g-2", 73)
    _backdate(bravo, "g-1", 73)
    # when the stuck pass runs for alpha
    reconcile.reconcile_run(tenant=alpha, passes=("stuck",))
    # then g-1 is confirmed with its Virtuous id, g-2 needs review, both are logged
    g1 = OutboundItem.objects.get(tenant=alpha, external_id="g-1")
    g2 = OutboundItem.objects.get(tenant=alpha, external_id="g-2")
    assert (g1.state, g1.note) == ("confirmed", "recovered by reconciliation") and g1.virtuous_id
    assert g2.state == "needs_review"
    logs = {(e.category, e.partner_id) for e in ReconciliationLog.objects.filter(tenant=alpha)}
    assert logs == {(Category.STUCK, "g-1"), (Category.NEEDS_UPDATE, "g-2")}
    # and the outsider's item was not touched
    assert OutboundItem.objects.get(tenant=bravo, external_id="g-1").state == "submitted"
    assert not ReconciliationLog.objects.filter(tenant=bravo).exists()
    report = reconcile_report.reconcile_report(tenant=alpha)
    assert (report["needs_review"], report["recovered"], report["submitted_over_24h"]) == (1, 1, 0)


def test_missed_webhooks_are_applied_through_the_inbound_handler_once(world):
    alpha, bravo, _, _ = world
    # when the missed-webhook pass reads what changed in Virtuous
    first = reconcile.reconcile_run(tenant=alpha, passes=("missed_webhooks",))["missed_webhooks"]
    # then our gift and contact are confirmed and logged, and the checkpoint moved
    assert first["confirmed"] == 2
    assert OutboundItem.objects.get(tenant=alpha, external_id="g-1").state == "confirmed"
    assert OutboundItem.objects.get(tenant=alpha, external_id="donor-1").state == "confirmed"
    assert ReconciliationLog.objects.filter(tenant=alpha, category=Category.MISSED_WEBHOOK).count() == 2
    assert SyncCheckpoint.objects.get(
        tenant=alpha, resource_type="gift", direction="inbound"
    ).last_processed_timestamp
    # and a second pass finds nothing new to log
    second = reconcile.reconcile_run(tenant=alpha, passes=("missed_webhooks",))["missed_webhooks"]
    assert second["confirmed"] == 0
    assert ReconciliationLog.objects.filter(tenant=alpha, category=Category.MISSED_WEBHOOK).count() == 2
    assert OutboundItem.objects.get(tenant=bravo, external_id="g-1").state == "submitted"


@pytest.mark.parametrize(
    "inbound_mode,expected_state,resolution",
    [
        ("off", "in_sync", "in_sync: Virtuous is canonical, its values accepted"),
        ("full", "conflict", "conflict: Virtuous is canonical, the partner side must change"),
    ],
)
def test_drift_follows_the_source_of_truth_rule(world, inbound_mode, expected_state, resolution):
    alpha, _, org, _ = world
    Tenant.objects.filter(pk=alpha.pk).update(inbound_mode=inbound_mode)
    alpha.refresh_from_db()
    reconcile.reconcile_run(tenant=alpha, passes=("missed_webhooks",))
    # given the donor was renamed in Virtuous and the gift's amount edited there
    contact_id = int(OutboundItem.objects.get(tenant=alpha, external_id="donor-1").virtuous_id)
    sandbox_contact_edit(
        organization=org, contact_id=contact_id, changes=_person("Dora", "Test", "d1@example.org")
    )
    SandboxGift.objects.filter(organization=org, transaction_id="g-1").update(amount=Decimal("45.00"))
    # when the drift pass compares every pair
    counts = reconcile.reconcile_run(tenant=alpha, passes=("drift",), drift_sample=10)["drift"]
    # then both differences are found, logged field by field, and resolved by the policy
    assert counts["checked"] == 2
    entries = {
        e.resource_type: e for e in ReconciliationLog.objects.filter(tenant=alpha, category=Category.DRIFT)
    }
    assert entries["contact"].details["differences"] == {"firstName": ["Donor1", "Dora"]}
    assert entries["gift"].details["differences"] == {"amount": ["40.00", "45.00"]}
    assert {e.resolution for e in entries.values()} == {resolution}
    states = set(
        SyncRecord.objects.filter(tenant=alpha, status="confirmed").values_list("sync_state", flat=True)
    )
    assert states == {expected_state}


def test_pattern_b_cross_matches_and_settles_each_category(world):
    alpha, bravo, org, _ = world
    # given: donor-1 is in Virtuous with our reference; donor-5 (partner side, never sent) exists in
    # Virtuous by e-mail only; a Virtuous-only contact; donor-6 is partner-only (its transaction died)
    outbound_enqueue(tenant=alpha, request=_contact(5), origin=Origin.WEBHOOK)
    sandbox_contact_create(organization=org, body=_person("Eve", "Five", "D5@example.org"))
    sandbox_contact_create(organization=org, body=_person("Olga", "Only", "olga@example.org"))
    outbound_enqueue(tenant=alpha, request=_contact(6), origin=Origin.WEBHOOK)
    OutboundItem.objects.filter(tenant=alpha, external_id="donor-6").update(state="dead")
    # when the initial reconciliation runs through the command
    out = io.StringIO()
    call_command("reconcile_initial", alpha.slug, "--virtuous-only", "create", stdout=out)
    # then each category is counted, matched pairs are in_sync baselines, decisions are logged
    run = ImportRun.objects.get(tenant=alpha, kind=ImportRun.Kind.INITIAL_RECONCILIATION)
    c = run.counters
    assert (c["matched_by_reference"], c["matched_by_email"], c["virtuous_only"]) == (1, 1, 1)
    assert (c["partner_only"], c["partner_only_submitted"]) == (1, 1)
    assert "Expected: 3 Virtuous contact(s)" in out.getvalue()
    records = dict(
        SyncRecord.objects.filter(tenant=alpha, resource_type="contact").values_list(
            "partner_id", "sync_state"
        )
    )
    assert records["donor-1"] == records["donor-5"] == "in_sync"
    only = ReconciliationLog.objects.get(tenant=alpha, category=Category.VIRTUOUS_ONLY)
    assert only.resolution == "create partner-side (requested)" and only.details["name"] == "Olga Only"
    resubmitted = OutboundItem.objects.get(tenant=alpha, external_id="donor-6", state="pending")
    assert (resubmitted.origin, resubmitted.priority) == (Origin.BULK, 10)
    assert not ReconciliationLog.objects.filter(tenant=bravo).exists()


def test_import_resolves_contacts_and_signs_off_per_project(world, tmp_path):
    alpha, bravo, org, _ = world
    reconcile.reconcile_run(tenant=alpha, passes=("missed_webhooks",))
    sandbox_contact_create(organization=org, body=_person("Ed", "Mail", "ed@example.org"))
    path = tmp_path / "history.csv"
    path.write_text(
        "donation_id,donor_id,email,amount,gift_date,project\n"
        "h-1,donor-1,d1@example.org,10.00,2025-01-02,food\n"
        "h-2,donor-1,d1@example.org,15.50,2025-02-02,shelter\n"
        "h-3,donor-7,ed@example.org,20.00,2025-03-02,food\n"
        "h-4,donor-8,new@example.org,5.00,2025-03-03,food\n"
    )
    (tmp_path / "map.csv").write_text("source_project,project_code\nfood,FOOD\nshelter,SHEL\n")
    out = io.StringIO()
    call_command(
        "import_historical_gifts",
        alpha.slug,
        "--file",
        str(path),
        "--project-map",
        str(tmp_path / "map.csv"),
        "--batch",
        "Historical-Import-2026-11",
        "--source",
        "Giftline",
        stdout=out,
    )
    assert "matched_by_email=1, matched_by_reference=2, will_create=1" in out.getvalue()
    outbound_drain(tenant=alpha)
    sandbox_batch_run(organization=org)
    # when Virtuous holds three of the four (donor-8's contact was just created; their gift waits
    # for the contact's confirmation, which this tenant has no webhook for yet)
    signoff = import_signoff(tenant=alpha, batch_label="Historical-Import-2026-11")
    rows = {r["project_code"]: r for r in signoff["projects"]}
    assert (rows["FOOD"]["imported_count"], rows["FOOD"]["imported_sum"]) == (3, Decimal("35.00"))
    assert (rows["FOOD"]["virtuous_count"], rows["FOOD"]["virtuous_sum"]) == (2, Decimal("30.00"))
    assert rows["FOOD"]["verdict"] == "Not balanced: 1 gift / $5.00 not in Virtuous yet"
    assert rows["SHEL"]["verdict"] == "Balanced." and not signoff["balanced"]
    (missing,) = signoff["missing"]
    assert (missing["transaction_id"], missing["donor_id"], missing["queue_state"]) == (
        "h-4",
        "donor-8",
        "waiting",
    )
    # and the CSV carries the same figures with a total, the verdict and the missing gift
    call_command(
        "import_signoff", alpha.slug, "--batch", "Historical-Import-2026-11", "--csv", str(tmp_path / "s.csv")
    )
    lines = list(csv.reader((tmp_path / "s.csv").open()))
    total = next(line for line in lines if line[:1] == ["TOTAL"])
    assert total == [
        "TOTAL",
        "4",
        "50.50",
        "3",
        "45.50",
        "1",
        "5.00",
        "Not balanced: 1 gift / $5.00 not in Virtuous yet",
    ]
    assert lines[-1][:5] == ["h-4", "donor-8", "5.00", "FOOD", "waiting"]
    assert ImportRun.objects.get(tenant=alpha, kind="historical_gifts").signoff["imported_gifts"] == 4
    assert import_signoff(tenant=bravo, batch_label="Historical-Import-2026-11")["virtuous_gifts"] == 0
