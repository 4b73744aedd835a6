"""A connection set up end to end with no shell, in a real browser against the live sandbox:
onboard the demo's ready "Try onboarding" organisation with its published key, add a Donorbox
connection with its secret, map its campaign to a project, read the webhook URL and the real
setup steps on the page, send a signed test webhook to that URL and watch the donation arrive.
Screenshots for docs/customer-success.md go to docs/img/ when GIFTLINE_DOCS_SCREENSHOTS=1.

The test thread stands in for the background workers between page visits (inbound processing,
the drain), calling the same services they call.
"""

from __future__ import annotations

import json
import time

import requests
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.donorbox.webhooks import sign
from integrations.models import Connection, InboundEvent
from integrations.sandbox.demo import TRY_API_KEY, TRY_ORG_NAME, try_onboarding_org_ensure
from integrations.sandbox.models import SandboxTransaction
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from sync.outbound.drain import outbound_drain
from tenants.models import AuditEvent, Credential, Tenant
from tests.e2e.test_admin_browser import browser_page, go, pytestmark  # noqa: F401
from tests.e2e.test_import_browser import login, shot

SIGNING_SECRET = "dbx-try-signing-secret-8080"


def _donation(donation_id: int, campaign_id: int) -> bytes:
    """A Donorbox v2 donation.created delivery, as Donorbox's test button sends one."""
    return json.dumps(
        {
            "event_id": f"evt-{donation_id}",
            "event_name": "donation.created",
            "donation": {
                "id": donation_id,
                "status": "paid",
                "amount": "35.00",
                "currency": "usd",
                "donation_date": "2026-11-20T15:00:00.000Z",
                "campaign": {"id": campaign_id, "name": "Winter Appeal"},
                "designation": "",
                "donor": {
                    "id": 5150,
                    "first_name": "Grace",
                    "last_name": "Hopper",
                    "email": "grace@example.org",
                },
                "recurring": False,
                "amount_refunded": "0.00",
            },
        }
    ).encode()


def test_a_connection_is_set_up_end_to_end_with_no_shell(
    browser_page,  # noqa: F811 (the fixture imported above)
    live_server,
    settings,
    transactional_db,
):
    page = browser_page
    base = live_server.url
    settings.PUBLIC_BASE_URL = base
    try_onboarding_org_ensure()  # what make run's demo_setup prepares
    ops = get_user_model().objects.create_superuser("cs-lead", "cs@example.org", "pw-cs-lead-1")
    login(
        page,
        base,
        "cs-lead",
        "pw-cs-lead-1",
        TOTPDevice.objects.create(user=ops, name="phone", confirmed=True),
    )

    # given: the onboarding page offers the demo's practice organisation and its published key
    page.goto(f"{base}/admin/sync/tenanthealth/")
    go(page, "#onboard-link")
    assert TRY_ORG_NAME in page.inner_text("#try-onboarding")
    assert page.inner_text("#try-api-key") == TRY_API_KEY
    page.click("#try-fill")
    assert page.input_value("#id_slug") == "try-onboarding"
    assert page.input_value("#id_virtuous_base_url") == f"{base}/sandbox/virtuous"
    shot(page, "setup-1-try-onboarding")

    # when: they check the key, the practice organisation is recognised and the tenant exists
    go(page, "#check-key")
    page.wait_for_selector("#org-name")
    assert page.inner_text("#org-name") == TRY_ORG_NAME
    tenant = Tenant.objects.get(slug="try-onboarding")

    # and they add a Donorbox connection, pasting its signing secret into the form
    go(page, "#add-donorbox")
    page.select_option("#id_capture_mode", "webhook")
    page.fill("#id_name", "Winter appeal")
    page.fill("#id_secret_webhook_secret", SIGNING_SECRET)
    go(page, "#save-connection")
    connection = Connection.objects.get(tenant=tenant, provider="donorbox")
    card = page.inner_text(f"#connection-{connection.public_id}")
    assert SIGNING_SECRET not in page.content()
    assert "Webhook signing secret: set" in card and "default project none" in card
    # then: the page shows the real webhook URL and the real setup steps, no placeholders
    url = page.inner_text(f"#url-{connection.public_id}")
    assert url.startswith(f"{base}/hooks/") and str(connection.webhook_token) in url
    assert "Custom Webhooks" in card and str(connection.public_id) in card
    assert "TENANT" not in card and "CONNECTION_ID" not in card
    shot(page, "setup-2-connection-added")

    # and the card's secret link opens the credential form with this connection chosen by its name
    go(page, f"#secret-{connection.public_id}")
    assert page.locator("#id_scope option:checked").inner_text() == "Donorbox — Winter appeal"
    assert page.locator("#id_platform option:checked").inner_text() == "Donorbox"
    shot(page, "setup-3-credential-by-connection")
    page.go_back()

    # when: they map the campaign to a project on the connection's page, as rows
    go(page, f"#projects-{connection.public_id}")
    rows = page.locator("input[name='project_code_map-key']")
    assert rows.count() == 3  # no rows yet, three blank ones
    rows.nth(0).fill("4411")
    page.locator("input[name='project_code_map-value']").nth(0).fill("WINTER")
    page.fill("#id_default_project_code", "GEN")
    shot(page, "setup-4-project-map")
    go(page, "input[name=_continue]")
    assert "was changed successfully" in page.content()
    connection.refresh_from_db()
    assert connection.project_code_map == {"4411": "WINTER"} and connection.default_project_code == "GEN"
    assert AuditEvent.objects.filter(
        action="connection.project_map_changed", target_id=str(connection.public_id)
    ).exists()

    # and they send a signed test delivery to the URL the page showed (Donorbox's test button does this)
    body = _donation(9901001, 4411)
    response = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "Donorbox-Signature": sign(body, SIGNING_SECRET, int(time.time())),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # and the workers process it and submit the gift to the sandbox
    inbound_drain(seconds=0)
    outbound_drain(tenant=tenant)
    event = InboundEvent.objects.get(tenant=tenant, provider="donorbox", signature_valid=True)
    assert event.status == InboundEvent.Status.PROCESSED
    gift = OutboundItem.objects.get(tenant=tenant, external_id="9901001")
    assert gift.payload["designations"][0]["projectCode"] == "WINTER"
    assert SandboxTransaction.objects.filter(organization__name=TRY_ORG_NAME).exists()

    # then: the dashboard shows the webhook received and the gift sent
    page.goto(f"{base}/admin/sync/tenanthealth/{tenant.public_id}/")
    connections = page.inner_text("#connections")
    assert (
        "Winter appeal" in connections
        and "none yet" not in connections.split("Winter appeal")[1].split("\n")[0]
    )
    shot(page, "setup-5-webhook-arrived")
    # a delivery signed with the wrong secret is refused and counted, not processed
    bad = requests.post(
        url,
        data=_donation(9901002, 4411),
        headers={
            "Content-Type": "application/json",
            "Donorbox-Signature": sign(body, "wrong", int(time.time())),
        },
        timeout=10,
    )
    assert bad.status_code in (400, 401, 403)

    # and the inbound events list shows the delivery, processed, and the refused one with its reason
    page.set_viewport_size({"width": 1400, "height": 900})  # the console's columns fit 1,400 pixels
    page.goto(f"{base}/admin/integrations/inboundevent/?tenant={tenant.public_id}")
    events = page.inner_text("#result_list")
    assert "donation.created" in events and "Processed" in events
    assert "signature does not match" in events
    shot(page, "setup-6-inbound-events")
    assert (
        Credential.objects.filter(tenant=tenant, platform="donorbox", scope=str(connection.public_id)).count()
        == 1
    )
