"""The historical import in the console: upload, report, start, progress, sign-off in words;
scoped to the user's tenants, passes queued as tasks, donor data masked, the file kept private."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from sync import tasks
from sync.models import ImportRun, Operation, Origin, OutboundItem
from sync.ops.imports import console
from sync.ops.imports.status import import_run_status, signoff_in_words
from tenants.models import AuditEvent

HEADER = "donation_id,donor_id,email,first_name,last_name,amount,gift_date,project\n"
GOOD = (
    "h-1,donor-1,ana@example.org,Ana,Ng,10.50,2025-03-01,Spring\nh-2,donor-2,,Bo,Li,20.00,2025-03-02,Spring\n"
)
BAD = "h-3,donor-3,not-an-address,Cy,Oz,5.00,2025-03-03,Spring\nh-4,donor-4,,Di,Po,abc,2025-03-04,Spring\n"


class FakeFinder:
    """Contact/Find: donor-1 is known by reference, nobody else."""

    def contact_find(self, **query):
        return {"id": 501} if query.get("reference_id") == "donor-1" else None


@pytest.fixture(autouse=True)
def spool(settings, tmp_path, monkeypatch):
    settings.IMPORT_SPOOL_DIR = tmp_path / "spool"
    monkeypatch.setattr(console, "virtuous_client", lambda tenant, keep_reserve=False: FakeFinder())
    return settings.IMPORT_SPOOL_DIR


@pytest.fixture
def queued(monkeypatch):
    """The tasks the views queue (after commit), to run as the worker would."""
    calls = []
    monkeypatch.setattr("sync.admin.imports.async_task", lambda func, *args, **kw: calls.append((func, args)))
    return calls


def run_queued(calls):
    while calls:
        func, args = calls.pop(0)
        getattr(tasks, func.rsplit(".", 1)[1])(*args)


def upload(client, tenant, body, name="gifts.csv", **extra):
    data = {
        "tenant": tenant.public_id,
        "file": SimpleUploadedFile(name, (HEADER + body).encode()),
        "project_map": "Spring, SPR",
        "batch_label": "Historical-Import-2026-11",
        "currency": "USD",
        "gift_type": "Other",
        **extra,
    }
    return client.post(reverse("admin:sync_importrun_upload"), data)


def test_upload_check_start_and_progress(
    client, superuser, tenant, queued, spool, django_capture_on_commit_callbacks
):
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, tenant, GOOD)
    run = ImportRun.objects.get(tenant=tenant)
    assert response.status_code == 302 and response["Location"].endswith(f"/{run.public_id}/")
    assert [f for f, _ in queued] == ["sync.tasks.import_run_validate"]
    assert (spool / f"{run.public_id}.csv").exists()  # outside the web root, under its run's id
    run_queued(queued)

    page = client.get(reverse("admin:sync_importrun_run", args=[run.public_id])).content.decode()
    assert "Checked: ready to import." in page
    assert "Import 2 gifts ($30.50)" in page
    assert "Donor already in Virtuous (matched by our donor id)" in page and "New donor" in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:sync_importrun_start", args=[run.public_id]))
        client.post(reverse("admin:sync_importrun_start", args=[run.public_id]))  # a double click
    assert [f for f, _ in queued] == ["sync.tasks.import_run_enqueue"]
    run_queued(queued)
    run.refresh_from_db()
    assert run.phase == ImportRun.Phase.COMPLETED
    assert not list(spool.iterdir())  # every row queued: the file is gone
    items = OutboundItem.objects.filter(
        tenant=tenant, origin=Origin.BULK, operation=Operation.GIFT_TRANSACTION
    )
    assert items.count() == 2
    items.filter(external_id="h-1").update(state=OutboundItem.State.CONFIRMED)

    progress = client.get(reverse("admin:sync_importrun_progress", args=[run.public_id])).json()
    stages = {s["key"]: s["count"] for s in progress["stages"]}
    # the new donor's gift waits behind its Contact Transaction (issue 14 §2)
    assert stages["waiting"] == 1 and stages["confirmed"] == 1
    assert progress["settled"] == 1 and progress["gifts_expected"] == 2 and not progress["done"]
    assert AuditEvent.objects.filter(action="import_run.started", tenant=tenant).count() == 1


def test_errors_are_counted_per_category_and_masked_without_pii(client, staff_user, tenant, queued):
    Group.objects.get(name="Customer success").user_set.add(staff_user)
    tenant.assigned_staff.add(staff_user)
    run, _ = console.import_upload_store(
        tenant=tenant,
        name="gifts.csv",
        chunks=[(HEADER + GOOD + BAD).encode()],
        import_settings=console.ImportSettings("Giftline", "B-1", {"Spring": "SPR"}),
        actor=console.SYSTEM,
    )
    tasks.import_run_validate(run.pk)
    client.force_login(staff_user)
    page = client.get(reverse("admin:sync_importrun_run", args=[run.public_id])).content.decode()
    assert "E-mail is not an address" in page and "Amount missing, not a number" in page
    assert "not-an-address" not in page  # the quoted value is donor data
    assert 'id="start-import"' not in page  # customer success sees, does not start
    assert client.post(reverse("admin:sync_importrun_start", args=[run.public_id])).status_code == 403
    assert client.get(reverse("admin:sync_importrun_upload")).status_code == 403


def test_blocked_run_starts_only_when_errors_are_skipped(tenant):
    run, _ = console.import_upload_store(
        tenant=tenant,
        name="gifts.csv",
        chunks=[(HEADER + GOOD + BAD).encode()],
        import_settings=console.ImportSettings("Giftline", "B-1", {"Spring": "SPR"}),
        actor=console.SYSTEM,
    )
    tasks.import_run_validate(run.pk)
    run.refresh_from_db()
    assert run.phase == ImportRun.Phase.BLOCKED
    assert not console.import_run_start(run=run, skip_invalid=False, actor=console.SYSTEM)
    assert console.import_run_start(run=run, skip_invalid=True, actor=console.SYSTEM)
    tasks.import_run_enqueue(run.pk)
    gifts = OutboundItem.objects.filter(
        tenant=tenant, origin=Origin.BULK, operation=Operation.GIFT_TRANSACTION
    )
    assert gifts.count() == 2  # the good rows only (a new donor's contact is queued beside them)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("gifts.pdf", HEADER, "upload a .csv or .xlsx file"),
        ("gifts.csv", "donation_id,amount\n1,2\n", "lacks the column(s): donor_id, gift_date"),
        ("gifts.xlsx", HEADER + GOOD, "is not a readable XLSX file"),
    ],
)
def test_a_wrong_file_is_refused_on_the_upload_page(
    client, superuser, tenant, queued, spool, name, body, message
):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:sync_importrun_upload"),
        {
            "tenant": tenant.public_id,
            "file": SimpleUploadedFile(name, body.encode()),
            "project_map": "Spring, SPR",
            "batch_label": "B-1",
            "currency": "USD",
            "gift_type": "Other",
        },
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert not ImportRun.objects.exists() and not queued
    assert not spool.exists() or not list(spool.iterdir())


def test_too_large_and_missing_map_are_refused(client, superuser, tenant, queued, settings):
    client.force_login(superuser)
    settings.IMPORT_UPLOAD_MAX_BYTES = 50
    assert "is larger than" in upload(client, tenant, GOOD).content.decode()
    settings.IMPORT_UPLOAD_MAX_BYTES = 10_000
    assert "needs a project map" in upload(client, tenant, GOOD, project_map="").content.decode()
    assert not ImportRun.objects.exists()


def test_another_tenants_run_and_connection_stay_hidden(
    client, staff_user, tenant, other_tenant, make_connection
):
    staff_user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="sync", codename__in=["view_importrun", "add_importrun"]
        )
    )
    tenant.assigned_staff.add(staff_user)
    theirs = make_connection(other_tenant, "donorbox")
    run, _ = console.import_upload_store(
        tenant=other_tenant,
        name="gifts.csv",
        chunks=[(HEADER + GOOD).encode()],
        import_settings=console.ImportSettings("Giftline", "B-1", {"Spring": "SPR"}),
        actor=console.SYSTEM,
    )
    client.force_login(staff_user)
    assert client.get(reverse("admin:sync_importrun_run", args=[run.public_id])).status_code == 404
    assert client.get(reverse("admin:sync_importrun_progress", args=[run.public_id])).status_code == 404
    response = upload(client, tenant, GOOD, connection=theirs.public_id)
    assert "Select a valid choice" in response.content.decode()


def test_signoff_reads_in_words():
    base = {"imported_gifts": 7, "virtuous_gifts": 2, "balanced": False}
    projects = [{"imported_sum": Decimal("1500.00"), "virtuous_sum": Decimal("294.50")}]
    assert signoff_in_words({**base, "projects": projects}) == (
        "Not balanced: 5 gifts / $1,205.50 not in Virtuous yet."
    )
    balanced = {"imported_gifts": 2, "virtuous_gifts": 2, "balanced": True, "projects": projects[:0]}
    assert signoff_in_words(balanced) == "Balanced: all 2 gifts ($0.00) are in Virtuous."


def test_a_paused_validation_says_why_and_resumes(tenant, monkeypatch):
    from integrations.virtuous.errors import ErrorClass, VirtuousError

    def unreachable(tenant, keep_reserve=False):
        raise VirtuousError(ErrorClass.TRANSIENT, "connection refused")

    monkeypatch.setattr(console, "virtuous_client", unreachable)
    run, _ = console.import_upload_store(
        tenant=tenant,
        name="gifts.csv",
        chunks=[(HEADER + GOOD).encode()],
        import_settings=console.ImportSettings("Giftline", "B-1", {"Spring": "SPR"}),
        actor=console.SYSTEM,
    )
    tasks.import_run_validate(run.pk)
    run.refresh_from_db()
    assert run.phase == ImportRun.Phase.PAUSED
    assert import_run_status(run)["phase_words"].startswith("Virtuous could not be reached")
    assert console.import_run_resume(run=run, actor=console.SYSTEM)
    monkeypatch.setattr(console, "virtuous_client", lambda tenant, keep_reserve=False: FakeFinder())
    tasks.import_run_validate(run.pk)
    run.refresh_from_db()
    assert run.phase == ImportRun.Phase.VALIDATED


def test_customer_success_group_may_see_import_runs(db):
    # The group is created by the migrations, as in production.
    permissions = Group.objects.get(name="Customer success").permissions
    assert permissions.filter(codename="view_importrun").exists()
    assert not permissions.filter(codename="add_importrun").exists()
