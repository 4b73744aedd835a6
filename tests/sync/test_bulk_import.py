"""The historical gift import: validation categories, dry run, resume, idempotency and priority."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from integrations.virtuous.errors import BudgetExhausted
from sync.models import ImportRun, Operation, Origin, OutboundItem
from sync.ops.imports import enqueue as import_enqueue
from sync.ops.imports.enqueue import historical_import_enqueue, import_run_open
from sync.ops.imports.files import (
    ImportSettings,
    ImportStopped,
    historical_spool_from_connection,
    import_rows,
    input_fingerprint,
)
from sync.ops.imports.plan import plan_counts
from sync.ops.imports.validate import ContactResolver, RowError, historical_import_validate, row_validate
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tests.sync.conftest import gift_request

HEADER = ["donation_id", "donor_id", "email", "first_name", "last_name", "amount", "gift_date", "project"]
TODAY = dt.date(2026, 11, 20)


def _write(tmp_path, rows, name="gifts.csv"):
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _good(n, donor=None, project="spring"):
    donor = donor or n
    return [f"h-{n}", f"donor-{donor}", f"d{donor}@example.org", "Ana", "Ng", "10.50", "2025-03-01", project]


def _settings(**kw):
    return ImportSettings(
        transaction_source="Giftline",
        batch_label="Historical-Import-2026-11",
        project_map={"spring": "SPR", "fall": "FAL"},
        **kw,
    )


def _run(tenant, path, settings):
    return import_run_open(
        tenant=tenant,
        kind=ImportRun.Kind.HISTORICAL_GIFTS,
        source_label=str(path),
        fingerprint=input_fingerprint(path, settings),
        transaction_source=settings.transaction_source,
        batch_label=settings.batch_label,
    )[0]


class FindStub:
    """Contact/Find answers by reference and e-mail; counts calls."""

    def __init__(self, by_reference=(), by_email=(), exhaust_after=None):
        self.by_reference, self.by_email = set(by_reference), set(by_email)
        self.calls = 0
        self.exhaust_after = exhaust_after

    def contact_find(self, *, email=None, reference_source=None, reference_id=None):
        if self.exhaust_after is not None and self.calls >= self.exhaust_after:
            raise BudgetExhausted(retry_in=900)
        self.calls += 1
        if reference_id:
            return {"id": 1} if reference_id in self.by_reference else None
        return {"id": 2} if email in self.by_email else None


def test_each_structural_error_is_reported_in_its_category_and_blocks_the_run(tenant, tmp_path):
    # given one row per structural problem and one good row
    path = _write(
        tmp_path,
        [
            _good(1),
            ["", "donor-2", "", "", "", "5", "2025-01-01", "spring"],
            ["h-3", "", "", "", "", "5", "2025-01-01", "spring"],
            ["h-4", "donor-4", "", "", "", "-5", "2025-01-01", "spring"],
            ["h-5", "donor-5", "", "", "", "5.001", "2025-01-01", "spring"],
            ["h-6", "donor-6", "", "", "", "5", "01/02/2025", "spring"],
            ["h-7", "donor-7", "", "", "", "5", "2025-01-01", "winter"],
            ["h-8", "donor-8", "not-an-email", "", "", "5", "2025-01-01", "spring"],
            ["h-9", "donor-9", "", "", "", "5", "2027-01-01", "spring"],
        ],
    )
    settings = _settings()
    run = _run(tenant, path, settings)
    report = io.StringIO()
    # when it is validated
    historical_import_validate(run=run, path=path, settings=settings, report=report, today=TODAY)
    # then every category is counted, the report lists the rows, and the run is blocked
    run.refresh_from_db()
    c = run.counters
    assert (c["rows"], c["valid"], c["invalid"]) == (9, 1, 8)
    assert {k: v for k, v in c.items() if k.startswith("error_")} == {
        "error_missing_donation_id": 1,
        "error_missing_donor_id": 1,
        "error_bad_amount": 2,
        "error_bad_date": 2,
        "error_unmapped_project": 1,
        "error_bad_email": 1,
    }
    assert run.phase == ImportRun.Phase.BLOCKED
    lines = list(csv.reader(io.StringIO(report.getvalue())))
    assert lines[0] == ["row", "donation_id", "donor_id", "category", "detail"]
    assert lines[6][:4] == ["7", "h-7", "donor-7", "unmapped_project"]
    assert run.project_totals == {"SPR": [1, "10.50"]}
    # and nothing is enqueued without --skip-invalid
    with pytest.raises(ImportStopped):
        historical_import_enqueue(run=run, path=path, settings=settings, today=TODAY)
    assert not OutboundItem.objects.exists()


def test_contact_resolution_categories_look_each_donor_up_once(tenant, tmp_path):
    # given donors known by reference, by e-mail only, and unknown; donor 1 gives twice
    path = _write(tmp_path, [_good(1), _good(2, donor=1), _good(3, donor=2), _good(4, donor=3)])
    settings = _settings()
    run = _run(tenant, path, settings)
    stub = FindStub(by_reference={"donor-1"}, by_email={"d2@example.org"})
    resolver = ContactResolver(stub, reference_source="Giftline")
    # when validated with contact resolution
    historical_import_validate(run=run, path=path, settings=settings, resolver=resolver, today=TODAY)
    # then gifts are counted per category and each donor cost at most two lookups
    run.refresh_from_db()
    assert run.counters["contact_matched_by_reference"] == 2
    assert run.counters["contact_matched_by_email"] == 1
    assert run.counters["contact_will_create"] == 1
    assert stub.calls == 1 + 2 + 2
    assert run.phase == ImportRun.Phase.VALIDATED


def test_a_spent_budget_pauses_validation_and_the_rerun_resumes_after_the_committed_row(tenant, tmp_path):
    # given a file whose lookups outrun the bulk budget after three calls
    path = _write(tmp_path, [_good(n) for n in range(1, 7)])
    settings = _settings()
    run = _run(tenant, path, settings)
    stub = FindStub(by_reference={f"donor-{n}" for n in range(1, 7)}, exhaust_after=3)
    resolver = ContactResolver(stub, reference_source="Giftline", max_wait=0)
    # when the validation runs out of budget
    with pytest.raises(ImportStopped):
        historical_import_validate(
            run=run, path=path, settings=settings, resolver=resolver, chunk_size=2, today=TODAY
        )
    run.refresh_from_db()
    assert (run.phase, run.validated_through_row, run.counters["rows"]) == (ImportRun.Phase.PAUSED, 3, 3)
    # then the same input reopens the same run and finishes from row 4
    again = _run(tenant, path, settings)
    assert again.pk == run.pk
    stub.exhaust_after = None
    historical_import_validate(run=again, path=path, settings=settings, resolver=resolver, today=TODAY)
    again.refresh_from_db()
    assert (again.counters["rows"], again.counters["contact_matched_by_reference"]) == (6, 6)
    assert again.phase == ImportRun.Phase.VALIDATED


def test_gift_payload_carries_batch_transaction_id_contact_and_designation(tenant, tmp_path):
    path = _write(tmp_path, [_good(1, project="fall")])
    settings = _settings()
    run = _run(tenant, path, settings)
    historical_import_validate(run=run, path=path, settings=settings, today=TODAY)
    historical_import_enqueue(run=run, path=path, settings=settings, today=TODAY)
    item = OutboundItem.objects.get(tenant=tenant, operation=Operation.GIFT_TRANSACTION)
    assert (item.origin, item.priority, item.external_id) == (Origin.BULK, 10, "h-1")
    p = item.payload
    assert p["transactionSource"] == "Giftline" and p["transactionId"] == "h-1"
    assert p["batch"] == "Historical-Import-2026-11" and p["giftDate"] == "2025-03-01"
    assert p["contact"] == {
        "referenceId": "donor-1",
        "email": "d1@example.org",
        "firstName": "Ana",
        "lastName": "Ng",
    }
    assert Decimal(p["amount"]) == Decimal("10.50")
    assert p["designations"] == [{"projectCode": "FAL", "amountDesignated": "10.50"}]


def test_interrupted_enqueue_resumes_without_losing_or_doubling_a_gift(
    tenant, other_tenant, tmp_path, monkeypatch
):
    # given five rows enqueued two at a time, and a crash on the second chunk's gifts (its
    # contacts went into the queue in the same transaction: they roll back with it)
    path = _write(tmp_path, [_good(n) for n in range(1, 6)])
    settings = _settings()
    run = _run(tenant, path, settings)
    historical_import_validate(run=run, path=path, settings=settings, today=TODAY)
    real = import_enqueue.outbound_enqueue_many
    calls = {"n": 0}

    def crash_on_second(**kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # two calls a chunk: new donors' contacts, then the gifts
            raise RuntimeError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(import_enqueue, "outbound_enqueue_many", crash_on_second)
    with pytest.raises(RuntimeError):
        historical_import_enqueue(run=run, path=path, settings=settings, chunk_size=2, today=TODAY)
    run.refresh_from_db()
    assert (run.last_row_committed, _gifts(tenant).count()) == (2, 2)
    assert OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).count() == 2
    # when the run is resumed
    monkeypatch.setattr(import_enqueue, "outbound_enqueue_many", real)
    run = _run(tenant, path, settings)
    historical_import_enqueue(run=run, path=path, settings=settings, chunk_size=2, today=TODAY)
    # then every gift is queued exactly once, and the outsider has nothing
    run.refresh_from_db()
    ids = sorted(_gifts(tenant).values_list("external_id", flat=True))
    assert ids == [f"h-{n}" for n in range(1, 6)]
    contacts = OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION)
    assert sorted(contacts.values_list("external_id", flat=True)) == [f"donor-{n}" for n in range(1, 6)]
    assert (run.phase, run.counters["enqueued"]) == (ImportRun.Phase.COMPLETED, 5)
    assert not OutboundItem.objects.filter(tenant=other_tenant).exists()


def test_a_donor_across_chunks_is_one_donor_one_contact_and_every_gift_waits_for_it(
    tenant, other_tenant, tmp_path
):
    # given donor 1 giving twice in the first chunk and again in the second, beside donor 2
    rows = [_good(1), _good(2, donor=1), _good(3, donor=2), _good(4, donor=1), _good(5, donor=3)]
    path = _write(tmp_path, rows)
    settings = _settings()
    run = _run(tenant, path, settings)
    historical_import_validate(run=run, path=path, settings=settings, chunk_size=2, today=TODAY)
    # when
    historical_import_enqueue(run=run, path=path, settings=settings, chunk_size=2, today=TODAY)
    # then the pass did what the plan said: three donors, three contacts, five gifts
    run.refresh_from_db()
    assert plan_counts(run.counters, "done") == plan_counts(run.counters, "plan")
    assert plan_counts(run.counters, "done")["contacts"] == 3
    donors = {d.donor_id: d for d in run.donors.select_related("contact_item")}
    assert set(donors) == {"donor-1", "donor-2", "donor-3"}
    for donor_id, donor in donors.items():
        assert donor.enqueued and donor.contact_item.external_id == donor_id
        waiting = _gifts(tenant).filter(payload__contact__referenceId=donor_id)
        assert set(waiting.values_list("depends_on_id", flat=True)) == {donor.contact_item_id}
    assert not OutboundItem.objects.filter(tenant=other_tenant).exists()


def _gifts(tenant):
    return OutboundItem.objects.filter(tenant=tenant, operation=Operation.GIFT_TRANSACTION)


def _command(tenant, path, tmp_path, *extra):
    project_map = tmp_path / "map.json"
    project_map.write_text('{"spring": "SPR", "fall": "FAL"}')
    out = io.StringIO()
    call_command(
        "import_historical_gifts",
        tenant.slug,
        "--file",
        str(path),
        "--project-map",
        str(project_map),
        "--batch",
        "Historical-Import-2026-11",
        "--skip-contact-resolution",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_dry_run_reports_and_enqueues_nothing(tenant, tmp_path):
    path = _write(tmp_path, [_good(1), _good(2, project="fall")])
    out = _command(tenant, path, tmp_path, "--dry-run", "--report", str(tmp_path / "report.csv"))
    assert "2 row(s), 2 valid, 0 invalid" in out and "Dry run" in out
    assert not OutboundItem.objects.exists()
    assert ImportRun.objects.get(tenant=tenant).phase == ImportRun.Phase.VALIDATED
    # and the real run after it reuses the validated run
    _command(tenant, path, tmp_path)
    assert _gifts(tenant).count() == 2
    assert ImportRun.objects.filter(tenant=tenant).count() == 1


def test_rerunning_the_same_file_enqueues_nothing_twice(tenant, tmp_path):
    path = _write(tmp_path, [_good(n) for n in range(1, 4)])
    _command(tenant, path, tmp_path)
    out = _command(tenant, path, tmp_path, "--benchmark")
    assert "Enqueued 0 gift(s)" in out and "3 already queued" in out
    assert "rows_per_s=" in out and "peak_rss_mb=" in out
    assert _gifts(tenant).count() == 3
    assert OutboundItem.objects.filter(tenant=tenant, operation=Operation.CONTACT_TRANSACTION).count() == 3


def test_a_file_with_errors_is_refused_unless_invalid_rows_are_skipped(tenant, tmp_path):
    path = _write(tmp_path, [_good(1), _good(2, project="winter")])
    with pytest.raises(CommandError, match="invalid row"):
        _command(tenant, path, tmp_path)
    assert not OutboundItem.objects.exists()
    out = _command(tenant, path, tmp_path, "--skip-invalid")
    assert "Enqueued 1 gift(s)" in out and "1 invalid row(s) skipped" in out


def test_xlsx_is_read_in_streaming_mode(tenant, tmp_path):
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(HEADER)
    sheet.append(["h-1", "donor-1", "", "", "", 25.5, dt.date(2025, 2, 3), "spring"])
    workbook.save(tmp_path / "gifts.xlsx")
    rows = list(import_rows(tmp_path / "gifts.xlsx"))
    assert rows[0][1]["amount"] == "25.5" and rows[0][1]["gift_date"] == "2025-02-03"


def test_live_donations_are_submitted_before_queued_bulk_work(tenant, tmp_path, fake_virtuous):
    # given an imported backlog, then one live donation
    tenant.batching_enabled = False
    tenant.save()
    path = _write(tmp_path, [_good(n) for n in range(1, 6)])
    _command(tenant, path, tmp_path)
    outbound_enqueue(tenant=tenant, request=gift_request("live"), origin=Origin.WEBHOOK)
    # when the drain can afford one call
    fake_virtuous.outcomes.extend([None, BudgetExhausted(retry_in=600)])
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory, max_budget_wait=0)
    # then the live donation went first
    assert [body["transactionId"] for _, body in fake_virtuous.calls] == ["pi_live"]


def test_a_connection_window_is_read_through_its_mapper_and_unmapped_projects_fail(
    tenant, tmp_path, monkeypatch
):
    # given a provider whose poller yields two donations in the window and one outside it
    from dataclasses import replace

    from integrations.donorbox import mapping
    from integrations.donorbox.provider import PROVIDER
    from integrations.types import PolledRecord

    def poll(connection, ctx):
        for n, day, campaign in ((1, "2025-01-05", 10), (2, "2025-01-06", 99), (3, "2025-03-01", 10)):
            donation = {
                "id": n,
                "amount": "12.00",
                "donation_date": f"{day}T15:00:00Z",
                "currency": "usd",
                "campaign": {"id": campaign},
                "donor": {"id": 7, "email": "x@example.org", "first_name": "X", "last_name": "Y"},
            }
            ctx.emit(
                PolledRecord(
                    "donation.updated",
                    f"d{n}",
                    {"donation": donation, "created_at": donation["donation_date"]},
                    dt.datetime.fromisoformat(day + "T15:00:00+00:00"),
                    str(n),
                )
            )

    spec = replace(PROVIDER, poll=poll, handlers={"donation.updated": mapping.donation})
    monkeypatch.setattr("integrations.registry.provider_get", lambda key: spec)
    from integrations.models import Connection

    connection = Connection.objects.create(
        tenant=tenant,
        provider="donorbox",
        source_name="Donorbox",
        project_code_map={"10": "GEN"},
        default_project_code="FALLBACK",
    )
    spool = tmp_path / "spool.csv"
    written = historical_spool_from_connection(
        connection=connection, since=dt.date(2025, 1, 1), until=dt.date(2025, 1, 31), path=spool
    )
    # then the window's two donations are in the file, the unmapped one as a source error
    assert written == 2
    rows = dict(import_rows(spool))
    assert (
        rows[1]["donation_id"] == "1"
        and rows[1]["project_code"] == "GEN"
        and rows[1]["donor_id"] == "donor-7"
    )
    settings = ImportSettings("Donorbox", "Historical-Import-2026-11", {"10": "GEN"})
    assert row_validate(rows[1], settings, today=TODAY).amount == Decimal("12.00")
    with pytest.raises(RowError) as error:
        row_validate(rows[2], settings, today=TODAY)
    assert error.value.category == "source_mapping"


def test_progress_bar_draws_rate_and_eta_on_a_terminal_only():
    from sync.progress import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    bar = ProgressBar("validate", 100, stream=tty)
    bar.update(0, force=True)
    bar.update(50, force=True)
    bar.close(100)
    ProgressBar("validate", 100, stream=pipe).close(100)
    assert "100%" in tty.getvalue() and "/s" in tty.getvalue() and "ETA" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_admin_lists_only_the_users_tenants_runs_and_offers_the_signoff(
    tenant, other_tenant, staff_user, client
):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_importrun", "view_reconciliationlog"])
    )
    tenant.assigned_staff.add(staff_user)
    for t in (tenant, other_tenant):
        ImportRun.objects.create(
            tenant=t, kind="historical_gifts", source_label=f"{t.slug}.csv", fingerprint="x"
        )
    client.force_login(staff_user)
    page = client.get("/admin/sync/importrun/").content.decode()
    assert "alpha.csv" in page and "bravo.csv" not in page
    assert client.get("/admin/sync/reconciliationlog/").status_code == 200
