"""Customer success runs a historical import in a real browser against the live sandbox: upload,
read the check, start, watch the gifts reach Virtuous, sign off. Screenshots for the guide go to docs/img/ when GIFTLINE_DOCS_SCREENSHOTS=1.

The test thread stands in for the django-q2 workers: the tasks the pages queue are collected and
run here between page visits, as are the drain, Virtuous's nightly batch and the inbound drain.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.sandbox.services import sandbox_batch_run
from integrations.types import Operation, OutboundRequest
from integrations.virtuous.services import virtuous_subscription_create
from sync import tasks
from sync.inbound.drain import inbound_drain
from sync.models import ImportRun, Origin, OutboundItem
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tenants.services import SYSTEM, tenant_create
from tests.e2e.conftest import point_tenant_at_sandbox
from tests.e2e.test_admin_browser import ARTIFACTS, browser_page, docs_shot, go, pytestmark  # noqa: F401

CSV = (
    "donation_id,donor_id,email,first_name,last_name,amount,gift_date,project\n"
    "hist-1,donor-1,ada@example.org,Ada,Lovelace,25.00,2025-03-01,Spring Appeal\n"
    "hist-2,donor-2,grace@example.org,Grace,Hopper,100.50,2025-03-02,Spring Appeal\n"
    "hist-3,donor-3,,Alan,Turing,40.00,2025-03-03,Gala 2025\n"
    "hist-4,donor-4,edsger@example,Edsger,Dijkstra,abc,2025-03-04,Spring Appeal\n"
)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    docs_shot(page, f"console-{name}.png")


def login(page, base: str, username: str, password: str, device: TOTPDevice) -> None:
    from django_otp.oath import totp

    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    go(page, "input[type=submit]")
    page.fill("#id_password", password)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    page.fill("#id_otp_token", f"{code:06d}")
    go(page, "input[type=submit]")


def test_customer_success_imports_history_and_signs_off(
    browser_page,  # noqa: F811 (the fixture imported above)
    live_server,
    settings,
    transactional_db,
    tmp_path,
    monkeypatch,
):
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    base = live_server.url
    settings.IMPORT_SPOOL_DIR = tmp_path / "spool"
    queued: list[tuple[str, tuple]] = []
    monkeypatch.setattr("sync.admin.imports.async_task", lambda func, *a, **kw: queued.append((func, a)))

    def worker() -> None:
        while queued:
            func, args = queued.pop(0)
            getattr(tasks, func.rsplit(".", 1)[1])(*args)

    tenant = tenant_create(slug="harbor", name="Harbor Food Bank", actor=SYSTEM)
    org = point_tenant_at_sandbox(tenant, base)
    virtuous_subscription_create(tenant=tenant, base_url=base)
    tenant_create(slug="outsider", name="Outsider Trust", actor=SYSTEM)
    ops = get_user_model().objects.create_superuser("ops", "ops@example.org", "pw-ops-admin")
    login(
        page, base, "ops", "pw-ops-admin", TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)
    )

    # given: three donors Virtuous already knows (they gave online before), and a spreadsheet of
    # their past gifts with one amount that is not a number
    for n, (first, last) in enumerate(
        [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")], start=1
    ):
        donor = {
            "referenceSource": tenant.source_name,
            "referenceId": f"donor-{n}",
            "firstName": first,
            "lastName": last,
            "email": f"{first.lower()}@example.org",
        }
        outbound_enqueue(
            tenant=tenant,
            request=OutboundRequest(Operation.CONTACT_TRANSACTION, tenant.source_name, f"donor-{n}", donor),
            origin=Origin.WEBHOOK,
        )
    outbound_drain(tenant=tenant)
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    path = tmp_path / "harbor-history.csv"
    path.write_text(CSV)

    # when: they upload it with the project map typed as lines
    page.goto(f"{base}/admin/sync/importrun/")
    go(page, "#upload-import")
    page.select_option("#id_tenant", str(tenant.public_id))
    page.set_input_files("#id_file", str(path))
    page.fill("#id_project_map", "Spring Appeal, SPRING\nGala 2025, GALA")
    page.fill("#id_batch_label", "Historical-Import-Harbor")
    shot(page, "13-import-upload")
    go(page, "#upload-submit")
    assert "Checking the file" in page.inner_text("#phase-words")
    worker()  # the validation pass: every row checked, every donor looked up in the sandbox

    # then: the check reads as tables with counts per problem and the row in error
    page.reload()
    page.wait_for_selector("#start-import")
    assert page.inner_text("#rows-valid") == "3" and page.inner_text("#rows-invalid") == "1"
    assert "Amount missing, not a number" in page.inner_text("#error-categories")
    assert "hist-4" in page.inner_text("#error-rows")
    assert "matched by our donor id" in page.inner_text("#contact-categories")
    shot(page, "14-import-check")

    # when: they import the three good rows
    go(page, "#start-import")
    worker()  # the enqueue pass
    page.reload()
    assert page.inner_text("#phase-words") == "All gifts are in the queue."
    assert page.inner_text("#stage-queued") == "3"

    # and the workers send them, Virtuous's nightly batch records them, its webhooks confirm them
    while outbound_drain(tenant=tenant).submitted:
        pass
    page.wait_for_function("document.getElementById('stage-submitted').textContent === '3'")  # live update
    shot(page, "15-import-progress")
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(tenant=tenant, state="confirmed", origin="bulk").count() == 3
    page.wait_for_function("document.getElementById('stage-confirmed').textContent === '3'")

    # then: the sign-off reads in words
    go(page, "#sign-off")
    worker()
    page.reload()
    page.wait_for_selector("#signoff-words")
    assert page.inner_text("#signoff-words") == "Balanced: all 3 gifts ($165.50) are in Virtuous."
    shot(page, "16-import-signed-off")
    run = ImportRun.objects.get(tenant=tenant)
    assert run.signoff["balanced"] and run.phase == "completed"
    assert not list(settings.IMPORT_SPOOL_DIR.iterdir())  # the file is gone once every row is queued
