"""Dependencies between queue items: a new donor's gifts wait on their Contact Transaction.

Import dependencies release on the contact's confirmation (webhook or lookup); steady-state ones
on its submission; both go to review when the contact is discarded or after the wait limit."""

import csv
import datetime as dt
import io
import logging
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.db import connections as db_connections
from django.urls import reverse
from django.utils import timezone

from integrations.types import Operation, OutboundRequest
from sync.models import ImportRun, Origin, OutboundItem, SyncRecord
from sync.ops.imports.enqueue import historical_import_enqueue, import_run_open
from sync.ops.imports.files import ImportSettings, input_fingerprint
from sync.ops.imports.plan import plan_counts
from sync.ops.imports.progress import import_run_progress
from sync.ops.imports.validate import ContactResolver, historical_import_validate
from sync.outbound import enqueue as enqueue_module
from sync.outbound.confirm import outbound_confirm, outbound_reconcile_submitted
from sync.outbound.dependencies import RELEASE_SUBMITTED, dependents_release, outbound_dependencies_check
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue

TODAY = dt.date(2026, 11, 20)
HEADER = ["donation_id", "donor_id", "email", "first_name", "last_name", "amount", "gift_date", "project"]
SETTINGS = ImportSettings(
    transaction_source="Giftline", batch_label="Historical-Import-2026-11", project_map={"food": "FOOD"}
)


def _file(tmp_path, rows):
    path = tmp_path / "history.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _rows(donors, gifts_each, *, first=1):
    return [
        [f"h-{d}-{g}", f"donor-{d}", f"d{d}@example.org", "Ana", f"Ng{d}", "10.00", "2025-03-01", "food"]
        for d in range(first, first + donors)
        for g in range(1, gifts_each + 1)
    ]


def _import(tenant, path, resolver=None):
    run, _ = import_run_open(
        tenant=tenant,
        kind=ImportRun.Kind.HISTORICAL_GIFTS,
        source_label=str(path),
        fingerprint=input_fingerprint(path, SETTINGS),
        transaction_source="Giftline",
        batch_label=SETTINGS.batch_label,
    )
    historical_import_validate(run=run, path=path, settings=SETTINGS, resolver=resolver, today=TODAY)
    run.refresh_from_db()
    plan = plan_counts(run.counters, "plan")
    historical_import_enqueue(run=run, path=path, settings=SETTINGS, today=TODAY, chunk_size=4)
    run.refresh_from_db()
    return run, plan


class _Find:
    """Contact/Find: donors in ``known`` match by reference."""

    def __init__(self, known=()):
        self.known = set(known)

    def contact_find(self, *, email=None, reference_source=None, reference_id=None):
        return {"id": 500} if reference_id in self.known else None


def _items(tenant, operation):
    return OutboundItem.objects.filter(tenant=tenant, operation=operation)


# --- the import's plan ----------------------------------------------------------------------


def test_the_real_run_does_exactly_what_the_dry_run_planned(tenant, other_tenant, tmp_path):
    # given 3 donors known by reference (2 gifts each) and 4 new donors (3 gifts each)
    path = _file(tmp_path, _rows(3, 2) + _rows(4, 3, first=10))
    resolver = ContactResolver(_Find({"donor-1", "donor-2", "donor-3"}), reference_source="Giftline")
    # when the run is validated (the dry run) and then enqueued (the real run)
    run, plan = _import(tenant, path, resolver)
    # then the plan counted per category, and the real run's counts are the same
    assert plan == {
        "matched_by_reference_gifts": 6,
        "matched_by_reference_donors": 3,
        "matched_by_email_gifts": 0,
        "matched_by_email_donors": 0,
        "will_create_gifts": 12,
        "will_create_donors": 4,
        "not_checked_gifts": 0,
        "not_checked_donors": 0,
        "contacts": 4,
    }
    assert plan_counts(run.counters, "done") == plan
    # and the queue holds exactly that: 4 contacts, 12 gifts waiting on them, 6 gifts ready
    contacts = _items(tenant, Operation.CONTACT_TRANSACTION)
    assert sorted(contacts.values_list("external_id", flat=True)) == [f"donor-{d}" for d in range(10, 14)]
    assert contacts.get(external_id="donor-10").payload == {
        "referenceSource": "Giftline",
        "referenceId": "donor-10",
        "contactType": "Household",
        "firstName": "Ana",
        "lastName": "Ng10",
        "emailType": "Home Email",
        "email": "d10@example.org",
    }
    gifts = _items(tenant, Operation.GIFT_TRANSACTION)
    waiting = gifts.filter(state=OutboundItem.State.WAITING)
    assert waiting.count() == 12 and gifts.filter(state=OutboundItem.State.PENDING).count() == 6
    assert {(g.depends_on.external_id, g.release_on) for g in waiting.select_related("depends_on")} == {
        (f"donor-{d}", "confirmed") for d in range(10, 14)
    }
    waiting = OutboundItem.objects.filter(state=OutboundItem.State.WAITING)
    assert waiting.filter(tenant=tenant).count() == 12 and not waiting.filter(tenant=other_tenant).exists()
    # and the run's report shows where each category stands
    assert import_run_progress(run) == {
        "matched_by_reference": {"gifts": {"queued": 6}, "contacts": {}},
        "will_create": {"gifts": {"waiting": 12}, "contacts": {"queued": 4}},
    }


def test_a_rerun_after_completion_adds_no_second_contact_or_gift(tenant, tmp_path):
    path = _file(tmp_path, _rows(2, 2))
    _import(tenant, path)
    path.write_text(path.read_text() + "h-new,donor-1,d1@example.org,Ana,Ng1,5.00,2025-04-01,food\n")
    run, plan = _import(tenant, path)
    # donor-1's contact is the one queued by the first run; the new gift waits on it
    assert _items(tenant, Operation.CONTACT_TRANSACTION).count() == 2
    assert plan_counts(run.counters, "done") == plan
    new = _items(tenant, Operation.GIFT_TRANSACTION).get(external_id="h-new")
    assert (new.state, new.depends_on.external_id) == ("waiting", "donor-1")


def test_a_new_donor_without_name_or_email_is_an_invalid_row(tenant, tmp_path):
    path = _file(tmp_path, [["h-1", "donor-1", "", "", "", "5.00", "2025-03-01", "food"]])
    run, _ = import_run_open(
        tenant=tenant, kind=ImportRun.Kind.HISTORICAL_GIFTS, source_label="x", fingerprint="f"
    )
    historical_import_validate(run=run, path=path, settings=SETTINGS, resolver=None, today=TODAY)
    run.refresh_from_db()
    assert run.phase == ImportRun.Phase.BLOCKED
    assert run.counters["error_new_donor_without_identity"] == 1


# --- release: by webhook, by lookup; review: by timeout, by discard -----------------------------


@pytest.fixture
def imported(tenant, other_tenant, tmp_path, fake_virtuous):
    """Two new donors with two gifts each, their contacts submitted; the outsider has the same."""
    for t in (tenant, other_tenant):
        (tmp_path / t.slug).mkdir()
        _import(t, _file(tmp_path / t.slug, _rows(2, 2)))
        outbound_drain(tenant=t, client_factory=fake_virtuous.factory)
    assert [path for path, _ in fake_virtuous.calls] == ["/api/Contact/Batch"] * 2  # no gift went out
    return tenant, other_tenant


def test_the_contact_webhook_releases_its_gifts_and_they_go_out(imported, fake_virtuous):
    tenant, other = imported
    # when Virtuous confirms donor-1 (contactCreate, through outbound_confirm)
    outbound_confirm(
        tenant=tenant, kind="contact", external_source="Giftline", external_id="donor-1", virtuous_id="77"
    )
    # then donor-1's gifts are pending again, donor-2's still wait, the outsider's are untouched
    gifts = _items(tenant, Operation.GIFT_TRANSACTION)
    assert set(gifts.filter(state="pending").values_list("external_id", flat=True)) == {"h-1-1", "h-1-2"}
    assert gifts.filter(state="waiting").count() == 2
    assert _items(other, Operation.GIFT_TRANSACTION).filter(state="waiting").count() == 4
    released = gifts.get(external_id="h-1-1")
    assert released.note == "Released: the contact it waited for was confirmed"
    # and the next drain sends just those two
    fake_virtuous.calls.clear()
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    sent = [t["transactionId"] for _, body in fake_virtuous.calls for t in body]
    assert sorted(sent) == ["h-1-1", "h-1-2"]


def test_a_lookup_by_reference_releases_the_gifts_when_the_webhook_never_came(imported, fake_virtuous):
    tenant, _ = imported
    OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).update(
        submitted_at=timezone.now() - timedelta(hours=25)
    )
    fake_virtuous.contacts[("Giftline", "donor-2")] = {"id": 88}
    counts = outbound_reconcile_submitted(tenant=tenant, client=fake_virtuous.factory(tenant))
    assert counts["recovered"] == 1 and counts["waiting"] == 1
    gifts = _items(tenant, Operation.GIFT_TRANSACTION)
    assert set(gifts.filter(state="pending").values_list("external_id", flat=True)) == {"h-2-1", "h-2-2"}


def test_gifts_that_waited_too_long_go_to_review_with_their_contacts_state(imported, settings):
    tenant, other = imported
    settings.OUTBOUND_DEPENDENCY_WAIT_HOURS = 48
    old = timezone.now() - timedelta(hours=49)
    _items(tenant, Operation.GIFT_TRANSACTION).filter(external_id__startswith="h-1-").update(
        waiting_since=old
    )
    counts = outbound_dependencies_check()
    assert counts["dependency_timeout"] == 2
    reviewed = _items(tenant, Operation.GIFT_TRANSACTION).get(external_id="h-1-1")
    assert reviewed.state == "needs_review"
    assert (
        reviewed.note == "Waited 48 h for its contact (contact submitted (accepted, awaiting confirmation))"
    )
    assert SyncRecord.objects.get(tenant=tenant, partner_id="h-1-1").status == "needs_review"
    # the others keep waiting, the outsider's too
    assert _items(tenant, Operation.GIFT_TRANSACTION).filter(state="waiting").count() == 2
    assert _items(other, Operation.GIFT_TRANSACTION).filter(state="waiting").count() == 4


def test_a_discarded_contact_sends_its_gifts_to_review_at_once(imported):
    tenant, _ = imported
    _items(tenant, Operation.CONTACT_TRANSACTION).filter(external_id="donor-2").update(state="discarded")
    assert outbound_dependencies_check()["dependency_gone"] == 2
    assert set(
        _items(tenant, Operation.GIFT_TRANSACTION)
        .filter(state="needs_review")
        .values_list("external_id", flat=True)
    ) == {"h-2-1", "h-2-2"}


def test_a_missed_release_is_repaired_by_maintenance(imported):
    tenant, _ = imported
    # the contact got confirmed by a path that did not release (a race between read and insert)
    _items(tenant, Operation.CONTACT_TRANSACTION).update(state="confirmed")
    assert outbound_dependencies_check()["released"] == 4
    assert not _items(tenant, Operation.GIFT_TRANSACTION).filter(state="waiting").exists()


# --- steady state --------------------------------------------------------------------------


def _contact(ref, *, key_suffix="1"):
    return OutboundRequest(
        Operation.CONTACT_TRANSACTION,
        "Stripe",
        ref,
        {"referenceSource": "Stripe", "referenceId": ref, "firstName": "Ana", "lastName": "Ng"},
        idempotency_key=f"contact_transaction:Stripe:{ref}:{key_suffix}",
    )


def _gift(n, ref):
    return OutboundRequest(
        Operation.GIFT_TRANSACTION,
        "Stripe",
        f"pi_{n}",
        {
            "transactionSource": "Stripe",
            "transactionId": f"pi_{n}",
            "contact": {"referenceId": ref},
            "giftDate": "2026-11-20",
            "giftType": "Credit",
            "amount": "25.00",
            "designations": [{"projectCode": "GEN", "amountDesignated": "25.00"}],
        },
    )


def test_a_webhook_gift_waits_for_the_contact_write_we_still_hold_then_follows_it(tenant, fake_virtuous):
    # given a new donor's contact still in our queue, then their gift
    outbound_enqueue(tenant=tenant, request=_contact("cus_new"), origin=Origin.WEBHOOK)
    gift, _ = outbound_enqueue(tenant=tenant, request=_gift(1, "cus_new"), origin=Origin.WEBHOOK)
    assert (gift.state, gift.release_on, gift.depends_on.external_id) == ("waiting", "submitted", "cus_new")
    # when the drain runs: the contact goes first, then the gift it released, in the same drain
    tenant.batching_enabled = False
    tenant.save()
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    assert [path for path, _ in fake_virtuous.calls] == [
        "/api/Contact/Transaction",
        "/api/v2/Gift/Transaction",
    ]
    gift.refresh_from_db()
    assert gift.state == "submitted"


def test_a_gift_for_a_donor_virtuous_already_has_does_not_wait(tenant, other_tenant):
    # given donor cus_known is confirmed in Virtuous, and a newer contact change is queued
    outbound_enqueue(tenant=tenant, request=_contact("cus_known"), origin=Origin.WEBHOOK)
    outbound_confirm(
        tenant=tenant, kind="contact", external_source="Stripe", external_id="cus_known", virtuous_id="5"
    )
    outbound_enqueue(tenant=tenant, request=_contact("cus_known", key_suffix="2"), origin=Origin.WEBHOOK)
    gift, _ = outbound_enqueue(tenant=tenant, request=_gift(2, "cus_known"), origin=Origin.WEBHOOK)
    assert (gift.state, gift.depends_on) == ("pending", None)
    # and a gift whose donor has no contact write in our queue goes straight out (nothing to wait on)
    lone, _ = outbound_enqueue(tenant=tenant, request=_gift(3, "cus_other"), origin=Origin.WEBHOOK)
    assert lone.state == "pending"
    # and another tenant's pending contact for the same reference never holds this tenant's gift
    outbound_enqueue(tenant=other_tenant, request=_contact("cus_x"), origin=Origin.WEBHOOK)
    mine, _ = outbound_enqueue(tenant=tenant, request=_gift(4, "cus_x"), origin=Origin.WEBHOOK)
    assert mine.state == "pending"


@pytest.mark.skipif(
    db_connection.vendor != "postgresql", reason="needs PostgreSQL row locks: SQLite serialises writers"
)
@pytest.mark.django_db(transaction=True)
def test_a_contact_recorded_while_its_gift_is_enqueued_still_releases_the_gift(tenant, monkeypatch):
    """The gift's enqueue reads its contact write as in flight; the contact's 2xx record and the
    release after it then run before the gift commits. Unlocked, that release found no gift and
    left it waiting for the minute's check; locked, the record waits for the gift's commit."""
    contact, _ = outbound_enqueue(tenant=tenant, request=_contact("cus_race"), origin=Origin.WEBHOOK)
    OutboundItem.objects.filter(pk=contact.pk).update(state="in_flight")
    read, go = threading.Event(), threading.Event()
    real_waiting_fields = enqueue_module.waiting_fields

    def pause_after_the_read(*args, **kwargs):
        read.set()
        go.wait(timeout=5)
        return real_waiting_fields(*args, **kwargs)

    monkeypatch.setattr(enqueue_module, "waiting_fields", pause_after_the_read)

    def enqueue_gift():
        try:
            outbound_enqueue(tenant=tenant, request=_gift(9, "cus_race"), origin=Origin.WEBHOOK)
        finally:
            db_connections.close_all()

    def record_the_contact():
        try:
            OutboundItem.objects.filter(pk=contact.pk).update(state="submitted")
            dependents_release(dependency_ids=[contact.pk], reached=RELEASE_SUBMITTED)
        finally:
            db_connections.close_all()

    gift_thread = threading.Thread(target=enqueue_gift)
    gift_thread.start()
    assert read.wait(timeout=5)
    record_thread = threading.Thread(target=record_the_contact)
    record_thread.start()
    record_thread.join(timeout=1)  # unlocked it finishes here; locked it waits for the gift
    go.set()
    gift_thread.join(timeout=10)
    record_thread.join(timeout=10)
    assert not gift_thread.is_alive() and not record_thread.is_alive()
    gift = OutboundItem.objects.get(tenant=tenant, operation=Operation.GIFT_TRANSACTION)
    assert gift.state == "pending"  # released at once, not left to the minute's check


# --- the command: refusal, sign-off words, logging -----------------------------------------


def test_a_refused_run_names_the_way_forward(tenant, tmp_path):
    path = _file(tmp_path, _rows(1, 1) + [["h-x", "donor-x", "", "A", "B", "5", "2025-01-01", "winter"]])
    (tmp_path / "map.json").write_text('{"food": "FOOD"}')
    report = tmp_path / "report.csv"
    args = [
        "import_historical_gifts",
        tenant.slug,
        "--file",
        str(path),
        "--project-map",
        str(tmp_path / "map.json"),
    ]
    with pytest.raises(CommandError) as refused:
        call_command(*args, "--skip-contact-resolution", "--report", str(report), stdout=io.StringIO())
    message = str(refused.value)
    assert "1 invalid row(s); nothing was enqueued" in message
    assert str(report.resolve()) in message and "--skip-invalid" in message and "1 valid row(s)" in message
    assert "unmapped_project" in report.read_text()
    assert not OutboundItem.objects.exists()


def test_dry_run_prints_the_plan_and_the_real_run_prints_what_it_did(tenant, tmp_path):
    path = _file(tmp_path, _rows(2, 3))
    (tmp_path / "map.json").write_text('{"food": "FOOD"}')
    args = [
        "import_historical_gifts",
        tenant.slug,
        "--file",
        str(path),
        "--project-map",
        str(tmp_path / "map.json"),
    ]
    dry = io.StringIO()
    call_command(*args, "--skip-contact-resolution", "--dry-run", stdout=dry)
    assert (
        "not_checked: 2 donor(s), 6 gift(s) (Contact Transaction first, gifts wait for it)" in dry.getvalue()
    )
    assert "contact transactions: 2" in dry.getvalue() and not OutboundItem.objects.exists()
    real = io.StringIO()
    call_command(*args, "--skip-contact-resolution", stdout=real)
    out = real.getvalue()
    assert "2 new donor contact(s) enqueued ahead of their gifts" in out
    assert "Done (per contact category):\n  not_checked: 2 donor(s), 6 gift(s)" in out
    assert "not_checked contacts: 2 queued" in out and "not_checked gifts: 6 waiting" in out


def test_contact_resolution_logs_a_not_found_without_a_warning(tenant, caplog):
    import responses

    from integrations.virtuous.client import VirtuousClient
    from integrations.virtuous.errors import VirtuousError

    client = VirtuousClient(base_url="https://virtuous.test", token="t", budget=None, tenant_label="alpha")
    with responses.RequestsMock() as mock:
        mock.get("https://virtuous.test/api/Contact/Find", status=404, json={"error": {"code": "NOT_FOUND"}})
        mock.get("https://virtuous.test/api/Contact/Find", status=503)
        with caplog.at_level(logging.INFO, logger="giftline.virtuous"):
            assert client.contact_find(reference_source="Giftline", reference_id="donor-1") is None
            with pytest.raises(VirtuousError):
                client.contact_find(email="x@example.org")
    levels = [r.levelname for r in caplog.records if r.getMessage().startswith("virtuous.error")]
    assert levels == ["INFO", "WARNING"]


# --- the console ---------------------------------------------------------------------------


def test_the_item_page_shows_what_it_waits_for_and_the_list_filters_waiting_items(
    imported, client, superuser
):
    tenant, other = imported
    client.force_login(superuser)
    gift = _items(tenant, Operation.GIFT_TRANSACTION).get(external_id="h-1-1")
    page = client.get(reverse("admin:sync_outbounditem_change", args=[gift.pk])).content.decode()
    contact = gift.depends_on
    assert reverse("admin:sync_outbounditem_change", args=[contact.pk]) in page
    assert "Giftline/donor-1" in page and "until it is confirmed in Virtuous" in page
    contact_page = client.get(reverse("admin:sync_outbounditem_change", args=[contact.pk])).content.decode()
    assert "2 item(s)</a>, 2 still waiting" in contact_page
    listing = client.get(reverse("admin:sync_outbounditem_changelist") + "?dependency=waiting")
    assert "Waiting on a dependency" in listing.content.decode()
    shown = [(i.tenant_id, i.external_id, i.state) for i in listing.context["cl"].result_list]
    assert len(shown) == 8 and {s for _, _, s in shown} == {"waiting"}  # a superuser sees both tenants
    dependents = client.get(reverse("admin:sync_outbounditem_changelist") + f"?dependency=of-{contact.pk}")
    assert {(i.tenant_id, i.external_id) for i in dependents.context["cl"].result_list} == {
        (tenant.pk, "h-1-1"),
        (tenant.pk, "h-1-2"),
    }


def test_a_staff_member_sees_only_their_tenants_waiting_items(imported, client):
    tenant, other = imported
    user = get_user_model().objects.create_user("cs", "cs@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Customer success"))
    tenant.assigned_staff.add(user)
    client.force_login(user)
    listing = client.get(reverse("admin:sync_outbounditem_changelist") + "?dependency=waiting")
    ids = {i.pk for i in listing.context["cl"].result_list}
    assert ids == set(_items(tenant, Operation.GIFT_TRANSACTION).values_list("pk", flat=True))


def test_the_import_run_page_shows_the_plan_and_where_each_category_stands(
    tenant, tmp_path, client, superuser
):
    run, _ = _import(tenant, _file(tmp_path, _rows(2, 2)))
    client.force_login(superuser)
    page = client.get(reverse("admin:sync_importrun_change", args=[run.pk]), follow=True).content.decode()
    assert "not_checked: 2 donor(s), 4 gift(s)" in page
    assert "not_checked contacts: 2 queued" in page and "not_checked gifts: 4 waiting" in page
