"""Customer success in a real browser: onboard a customer against the sandbox, fix a failed gift,
see it confirmed. Screenshots of every page go to tests/artifacts/admin/ (the README uses some).

The test thread stands in for the background workers between page visits (drain, nightly batch,
inbound processing), calling the same services they call.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.sandbox.models import SandboxGift, SandboxWebhook
from integrations.sandbox.services import sandbox_batch_run, sandbox_org_create
from integrations.types import Operation, OutboundRequest
from sync.inbound.drain import inbound_drain
from sync.models import DeadLetter, Origin, OutboundItem
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from tenants.models import AuditEvent, Credential, Tenant

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "admin"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run does)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"
    ),
]


@pytest.fixture
def browser_page(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between page visits are ordinary blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def go(page, selector: str) -> None:
    """Click something that loads a new page, and wait until it has loaded."""
    with page.expect_navigation():
        page.click(selector)


DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# The pages docs/customer-success.md shows are refreshed only when asked, so an ordinary test run
# never rewrites tracked files: GIFTLINE_DOCS_SCREENSHOTS=1 make test PYTEST_ARGS=tests/e2e
REFRESH_DOCS = os.environ.get("GIFTLINE_DOCS_SCREENSHOTS") == "1"
FOR_DOCS = {"08-dead-letter-detail", "09-fix-and-replay", "09b-fix-confirm-diff", "03-add-connection"}


def docs_shot(page, filename: str) -> None:
    """A screenshot for the guide, at the width it is read at, when refreshing was asked for."""
    if REFRESH_DOCS:
        DOCS_IMG.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / filename), full_page=True)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if name in FOR_DOCS:
        docs_shot(page, f"console-{name}.png")


def _contact() -> OutboundRequest:
    payload = {
        "referenceSource": "Donorbox",
        "referenceId": "dbx-donor-7",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.org",
    }
    return OutboundRequest(Operation.CONTACT_TRANSACTION, "Donorbox", "dbx-donor-7", payload)


def _bad_gift() -> OutboundRequest:
    """A gift whose designation does not add up to the amount: Virtuous answers 400."""
    payload = {
        "transactionSource": "Donorbox",
        "transactionId": "dbx-gift-7",
        "contact": {"referenceId": "dbx-donor-7", "email": "ada@example.org"},
        "giftDate": "2026-11-20",
        "giftType": "Credit",
        "amount": Decimal("50.00"),
        "designations": [{"projectCode": "GEN", "amountDesignated": Decimal("40.00")}],
    }
    return OutboundRequest(Operation.GIFT_TRANSACTION, "Donorbox", "dbx-gift-7", payload)


def test_customer_success_onboards_a_customer_and_fixes_a_failed_gift(
    browser_page, live_server, settings, transactional_db
):
    page = browser_page
    base = live_server.url
    settings.PUBLIC_BASE_URL = base
    org, api_key = sandbox_org_create(name="Harbor Food Bank", time_zone="America/Chicago")
    ops = get_user_model().objects.create_superuser("ops", "ops@example.org", "pw-ops-admin")
    phone = TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)

    # given: an integration admin signed in with a code from their authenticator app
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-admin")
    go(page, "input[type=submit]")
    assert "Enter the code from your authenticator app" in page.content()  # the password alone is not enough
    page.fill("#id_password", "pw-ops-admin")
    page.fill(
        "#id_otp_token", f"{totp(phone.bin_key, step=phone.step, t0=phone.t0, digits=phone.digits):06d}"
    )
    go(page, "input[type=submit]")
    page.goto(f"{base}/admin/sync/tenanthealth/")
    shot(page, "01-overview-empty")

    # when: they onboard a customer, first with a key Virtuous refuses
    go(page, "#onboard-link")
    page.fill("#id_name", "Harbor Food Bank")
    page.fill("#id_slug", "harbor")
    page.fill("#id_virtuous_base_url", f"{base}/sandbox/virtuous")
    page.fill("#id_api_key", "not-a-real-key")
    go(page, "#check-key")
    assert "Virtuous refused this key" in page.content()
    shot(page, "02-onboard-key-refused")
    assert not Tenant.objects.filter(slug="harbor").exists()

    # then with the right key: the organisation's name and time zone show; the subscription exists
    page.fill("#id_slug", "harbor")
    page.fill("#id_api_key", api_key)
    go(page, "#check-key")
    page.wait_for_selector("#org-name")
    assert page.inner_text("#org-name") == "Harbor Food Bank (Sandbox)"
    assert page.inner_text("#org-tz") == "America/Chicago"
    assert "Created the Virtuous webhook subscription" in page.content()
    tenant = Tenant.objects.get(slug="harbor")
    assert tenant.virtuous_webhook_id and SandboxWebhook.objects.filter(organization=org).count() == 1

    # and they add a Donorbox connection with its own fields; secrets are write-only
    go(page, "#add-donorbox")
    page.select_option("#id_capture_mode", "hybrid")
    page.fill("#id_setting_account_email", "finance@harbor.example.org")
    page.fill("#id_secret_webhook_secret", "dbx-signing-secret-4242")
    page.fill("#id_secret_api_token", "dbx-api-key-5151")
    shot(page, "03-add-connection")
    go(page, "#save-connection")
    page.wait_for_selector(".copy-url")
    html = page.content()
    assert "dbx-signing-secret-4242" not in html and "dbx-api-key-5151" not in html
    assert "Custom Webhooks" in html  # the provider's own setup steps
    page.click(".copy-url")
    page.wait_for_selector(".copy-url:text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()").startswith(f"{base}/hooks/")
    shot(page, "04-connection-webhook-url")
    assert Credential.objects.filter(tenant=tenant, platform="donorbox", state="active").count() == 2

    # and choose the rollout flags and start the reconciliation
    page.select_option("#id_inbound_mode", "observe")
    go(page, "#save-flags")
    go(page, "#start-reconcile")
    assert "Reconciliation: checked 0" in page.content()
    tenant.refresh_from_db()
    assert tenant.inbound_mode == "observe"
    shot(page, "05-setup-done")

    # when: a donation arrives whose designation does not add up, and the worker submits it
    outbound_enqueue(tenant=tenant, request=_contact(), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=tenant, request=_bad_gift(), origin=Origin.WEBHOOK)
    outbound_drain(tenant=tenant)
    dead = DeadLetter.objects.get(tenant=tenant)
    assert dead.status_code == 400

    # then: it is on the dashboard and in the dead letters
    go(page, "#to-dashboard")
    assert page.inner_text("#open-dead-letters") == "1"
    shot(page, "06-dashboard-with-dead-letter")
    page.goto(f"{base}/admin/sync/deadletter/?tenant={tenant.public_id}&resolution__exact=open")
    shot(page, "07-dead-letters")
    go(page, "#result_list tbody tr th a")
    page.wait_for_selector("#fix-and-replay")
    shot(page, "08-dead-letter-detail")

    assert page.inner_text("#dl-cause") == "designations do not add up to the amount"
    assert page.inner_text("#dl-summary").startswith("$50.00 from ada@example.org via Donorbox")

    # when: they fix the designation in the form, see the change, and replay
    go(page, "#fix-and-replay")
    page.fill("#id_designations-0-amount", "45.00")
    page.fill("#id_note", "Designation corrected to the gift amount")
    go(page, "#check-fix")
    assert "add up to 45.00 but the amount is 50.00" in page.content()  # checked before anything is queued
    page.fill("#id_designations-0-amount", "50.00")
    shot(page, "09-fix-and-replay")
    go(page, "#check-fix")
    assert "50.00" in page.inner_text("#fix-diff")
    shot(page, "09b-fix-confirm-diff")
    go(page, "#confirm-fix")
    assert "Fixed and replayed 1 dead letter" in page.content()
    shot(page, "10-dead-letter-resolved")
    dead.refresh_from_db()
    assert dead.resolution == "fixed_and_replayed" and dead.resolved_by.username == "ops"

    # and the workers submit it, Virtuous's nightly batch records it, its webhook confirms it
    assert outbound_drain(tenant=tenant).submitted == 1
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    gift = OutboundItem.objects.get(tenant=tenant, external_id="dbx-gift-7")
    assert gift.state == "confirmed"
    assert gift.virtuous_id == str(SandboxGift.objects.get(organization=org, transaction_id="dbx-gift-7").pk)

    # then: the confirmed gift and a healthy dashboard
    page.goto(f"{base}/admin/sync/outbounditem/?tenant={tenant.public_id}&state__exact=confirmed")
    assert "dbx-gift-7" in page.content()
    shot(page, "11-confirmed")
    page.goto(f"{base}/admin/sync/tenanthealth/{tenant.public_id}/")
    assert page.inner_text("#open-dead-letters") == "0"
    shot(page, "12-dashboard-healthy")
    assert AuditEvent.objects.filter(tenant=tenant, action="dead_letter.fixed_and_replayed").count() == 1
