"""Customer success in a real browser: a stuck inbound event turns the tenant from Healthy to
Needs attention and back once fixed; a donor's gift is found by e-mail and its journey shows
webhook → attempts → confirmation. Screenshots for the customer-success guide go to docs/img/ when GIFTLINE_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from integrations.models import Connection
from integrations.sandbox.services import sandbox_batch_run, sandbox_org_create
from integrations.services import connection_create
from integrations.virtuous.services import virtuous_subscription_create
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from sync.outbound.drain import outbound_drain
from tenants import services
from tenants.models import Credential
from tests.e2e import test_admin_browser
from tests.e2e.test_admin_browser import go
from tests.sync.test_console_health import _donation

# The same browser, marks and skips as the other admin walk.
browser_page = test_admin_browser.browser_page
pytestmark = test_admin_browser.pytestmark


def shot(page, name: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    test_admin_browser.docs_shot(page, f"{name}.png")


def test_a_stuck_event_and_the_journey_of_a_gift(browser_page, live_server, settings, transactional_db):
    page, base = browser_page, live_server.url
    settings.PUBLIC_BASE_URL = base
    org, api_key = sandbox_org_create(name="Harbor Food Bank", time_zone="America/Chicago")
    tenant = services.tenant_create(
        slug="harbor", name="Harbor Food Bank", virtuous_base_url=f"{base}/sandbox/virtuous"
    )
    services.tenant_update(
        tenant=tenant, actor=services.SYSTEM, changes={"virtuous_time_zone": "America/Chicago"}
    )
    services.credential_set(
        tenant=tenant,
        platform=Credential.Platform.VIRTUOUS,
        purpose=Credential.Purpose.API_TOKEN,
        secret=api_key,
    )
    virtuous_subscription_create(tenant=tenant, base_url=base, actor=services.SYSTEM)
    donorbox = connection_create(tenant=tenant, provider="donorbox", name="Donorbox")
    ops = get_user_model().objects.create_superuser("ops", "ops@example.org", "pw-ops-admin")
    phone = TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)

    # given: staff log in and land on tenant health, which is Healthy
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-admin")
    page.fill(
        "#id_otp_token", f"{totp(phone.bin_key, step=phone.step, t0=phone.t0, digits=phone.digits):06d}"
    )
    go(page, "input[type=submit]")
    assert page.url.endswith("/admin/sync/tenanthealth/")
    assert page.inner_text("tr[data-slug=harbor] .health-cell") == "Healthy"

    # when: a donation arrives for a campaign with no Virtuous project
    event = _donation(donorbox, 1)
    inbound_drain(seconds=0)
    page.reload()
    assert page.inner_text("tr[data-slug=harbor] .health-cell") == "Needs attention"
    assert "1 inbound event needs review" in page.inner_text("tr[data-slug=harbor]")
    shot(page, "health-overview-needs-attention")
    go(page, "tr[data-slug=harbor] td a")
    assert page.inner_text("#health-verdict") == "Needs attention"
    shot(page, "health-dashboard-needs-attention")

    # then: the concern leads to the event; mapping its campaign re-runs it
    go(page, ".concern-inbound_review a")
    shot(page, "inbound-events-in-review")
    go(page, "#result_list tbody tr th a")
    go(page, "#review-link")
    assert page.input_value("#id_source_key") == "77"
    page.fill("#id_project_code", "WINTER")
    shot(page, "inbound-event-review")
    go(page, "#map-and-rerun")
    assert "it is processed" in page.content()
    page.goto(f"{base}/admin/")
    assert page.inner_text("tr[data-slug=harbor] .health-cell") == "Healthy"
    shot(page, "health-overview-healthy")

    # when: the workers send it, Virtuous's nightly batch records it and its webhook confirms it
    assert outbound_drain(tenant=tenant).submitted >= 1
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    gift = OutboundItem.objects.get(tenant=tenant, operation="gift_transaction")
    assert gift.state == "confirmed"

    # then: the donor's gift is found by e-mail and its journey tells the story
    page.goto(f"{base}/admin/sync/tenanthealth/{tenant.public_id}/")
    shot(page, "health-dashboard-healthy")
    page.fill("#donation-q", "ada@example.org")
    go(page, "#donation-search-submit")
    assert "1 gift found" in page.inner_text("#result-count")
    shot(page, "donation-search")
    go(page, "#donation-results .journey-link")
    assert gift.virtuous_id in page.inner_text("#journey-outcome")
    kinds = page.eval_on_selector_all("#timeline li", "els => els.map(e => e.className.split(' ')[0])")
    assert kinds.index("step-received") < kinds.index("step-attempt") < kinds.index("step-confirmed")
    assert "Webhook received from Donorbox" in page.inner_text("#timeline")
    shot(page, "donation-journey")
    assert Connection.objects.get(pk=donorbox.pk).project_code_map == {"77": "WINTER"}
    assert event.public_id
