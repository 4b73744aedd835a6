"""The operations console: scoping by assigned tenant, PII masking, resolutions, confirmations."""

import json

import pytest
import responses
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from integrations.models import Connection
from integrations.services import connection_onboard
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.models import DeadLetter, OutboundItem, SyncCheckpoint
from sync.outbound.drain import outbound_drain
from tenants.models import AuditEvent, Credential, Tenant
from tests.conftest import OTHER_VIRTUOUS_TOKEN, VIRTUOUS_TOKEN
from tests.sync.conftest import enqueue_gifts


def _dead_letter(tenant, fake_virtuous, n: int) -> DeadLetter:
    enqueue_gifts(tenant, 1, start=n)
    fake_virtuous.outcomes.append(
        VirtuousError(ErrorClass.PERMANENT, "designations do not add up", status_code=400)
    )
    outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    return DeadLetter.objects.get(tenant=tenant, item__external_id=f"pi_{n}")


@pytest.fixture
def letters(tenant, other_tenant, fake_virtuous):
    return _dead_letter(tenant, fake_virtuous, 1), _dead_letter(other_tenant, fake_virtuous, 2)


def _user(name: str, group: str, *tenants: Tenant):
    user = get_user_model().objects.create_user(name, f"{name}@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    for t in tenants:
        t.assigned_staff.add(user)
    return user


@pytest.fixture
def cs_user(tenant):
    """Customer success, assigned to tenant A (``tenant``) only."""
    return _user("cs-alpha", "Customer success", tenant)


@pytest.fixture
def integration_admin():
    return _user("int-admin", "Integration admin")


def test_the_migration_creates_both_groups_with_least_privilege_for_customer_success(db):
    cs = set(Group.objects.get(name="Customer success").permissions.values_list("codename", flat=True))
    full = set(Group.objects.get(name="Integration admin").permissions.values_list("codename", flat=True))
    assert {"change_deadletter", "view_deadletter", "view_tenanthealth", "change_inboundevent"} <= cs
    assert not {c for c in cs if "credential" in c} and "view_all_tenants" not in cs
    assert "view_donor_pii" not in cs
    assert {"view_credential", "add_credential", "view_all_tenants", "view_donor_pii", "add_tenant"} <= full


def test_every_declared_action_is_offered(superuser):
    request = RequestFactory().get("/")
    request.user = superuser
    declared = {
        m: a
        for m, a in admin.site._registry.items()
        if m._meta.app_label in {"sync", "integrations", "tenants"}
    }
    checked = 0
    for model_admin in declared.values():
        for name in model_admin.actions or ():
            assert name in model_admin.get_actions(request), f"{type(model_admin).__name__}.{name}"
            checked += 1
    assert checked >= 7


def test_customer_success_sees_only_its_tenant_everywhere(client, cs_user, letters, tenant, other_tenant):
    mine, theirs = letters
    client.force_login(cs_user)
    listing = client.get(reverse("admin:sync_deadletter_changelist")).content.decode()
    assert str(tenant) in listing and other_tenant.name not in listing  # nor in the tenant filter
    assert client.get(reverse("admin:sync_deadletter_change", args=[mine.pk])).status_code == 200
    assert (
        client.get(reverse("admin:sync_deadletter_change", args=[theirs.pk])).status_code == 302
    )  # "not found"
    overview = client.get(reverse("admin:sync_tenanthealth_changelist")).content.decode()
    assert tenant.name in overview and other_tenant.name not in overview
    assert (
        client.get(reverse("admin:sync_tenanthealth_change", args=[other_tenant.public_id])).status_code
        == 404
    )
    assert client.get(reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])).status_code == 200
    items = client.get(reverse("admin:sync_outbounditem_changelist")).content.decode()
    assert "pi_1" in items and "pi_2" not in items


def test_customer_success_cannot_act_on_another_tenant(client, cs_user, letters):
    mine, theirs = letters
    client.force_login(cs_user)
    assert client.post(reverse("admin:sync_deadletter_replay", args=[theirs.public_id])).status_code == 404
    assert (
        client.post(
            reverse("admin:sync_deadletter_discard", args=[theirs.public_id]), {"reason": "x"}
        ).status_code
        == 404
    )
    client.post(
        reverse("admin:sync_deadletter_changelist"),
        {"action": "discard_selected", "_selected_action": [theirs.pk], "post": "yes", "reason": "nope"},
    )
    theirs.refresh_from_db()
    assert theirs.resolution == "open"
    assert not AuditEvent.objects.filter(action__startswith="dead_letter.").exists()


def test_customer_success_cannot_read_any_credential(client, cs_user, tenant, other_tenant):
    connection = connection_onboard(
        tenant=tenant,
        provider="donorbox",
        capture_mode="hybrid",
        settings={"account_email": "ops@alpha.org"},
        secrets={"webhook_secret": "dbx_sig_SECRET_7777", "api_token": "dbx_api_SECRET_8888"},
    )
    client.force_login(cs_user)
    assert client.get(reverse("admin:tenants_credential_changelist")).status_code == 403
    cred = Credential.objects.filter(tenant=tenant).first()
    assert client.get(reverse("admin:tenants_credential_change", args=[cred.pk])).status_code == 403
    pages = [
        reverse("admin:integrations_connection_change", args=[connection.pk]),
        reverse("admin:sync_tenanthealth_change", args=[tenant.public_id]),
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        reverse("admin:tenants_auditevent_changelist"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in (VIRTUOUS_TOKEN, OTHER_VIRTUOUS_TOKEN, "SECRET_7777", "SECRET_8888", "7777", "8888"):
            assert secret not in html, (url, secret)
    assert client.get(reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id])).status_code == 403


def test_donor_data_is_masked_without_the_pii_permission(client, cs_user, integration_admin, letters, tenant):
    mine, _ = letters
    integration_admin.assigned_tenants.add(tenant)
    url = reverse("admin:sync_deadletter_change", args=[mine.pk])
    client.force_login(cs_user)
    masked = client.get(url).content.decode()
    assert "donor1@example.org" not in masked and "•••" in masked and "pi_1" in masked
    assert client.get(reverse("admin:sync_deadletter_fix", args=[mine.public_id])).status_code == 403
    client.force_login(integration_admin)
    assert "donor1@example.org" in client.get(url).content.decode()


def test_customer_success_replays_its_own_dead_letter_and_is_recorded(client, cs_user, letters):
    mine, _ = letters
    client.force_login(cs_user)
    response = client.post(reverse("admin:sync_deadletter_replay", args=[mine.public_id]), follow=True)
    assert "Replayed 1 dead letter" in response.content.decode()
    mine.refresh_from_db()
    assert (mine.resolution, mine.resolved_by) == ("replayed", cs_user) and mine.resolved_at
    assert OutboundItem.objects.get(pk=mine.item_id).state == "pending"


def test_fix_and_replay_validates_the_json_and_refuses_identity_changes(client, superuser, letters):
    mine, _ = letters
    client.force_login(superuser)
    url = reverse("admin:sync_deadletter_fix", args=[mine.public_id])
    assert "Not valid JSON" in client.post(url, {"payload": "{oops"}).content.decode()
    changed = {**mine.original_payload, "transactionId": "pi_999"}
    assert "cannot be changed" in client.post(url, {"payload": json.dumps(changed)}).content.decode()
    mine.refresh_from_db()
    assert mine.resolution == "open"
    fixed = {**mine.original_payload, "designations": [{"projectCode": "GEN", "amountDesignated": "25.00"}]}
    response = client.post(url, {"payload": json.dumps(fixed), "note": "designation fixed"})
    assert response.status_code == 302
    mine.refresh_from_db()
    assert (mine.resolution, mine.resolution_note, mine.resolved_by) == (
        "fixed_and_replayed",
        "designation fixed",
        superuser,
    )
    assert OutboundItem.objects.get(pk=mine.item_id).payload["designations"][0]["amountDesignated"] == "25.00"


def test_bulk_discard_goes_through_a_confirmation_page_and_needs_a_reason(client, superuser, letters):
    mine, theirs = letters
    client.force_login(superuser)
    url = reverse("admin:sync_deadletter_changelist")
    selected = {"action": "discard_selected", "_selected_action": [mine.pk, theirs.pk]}
    page = client.post(url, selected)
    assert page.status_code == 200 and "Yes, discard dead letters" in page.content.decode()
    client.post(url, {**selected, "post": "yes", "reason": ""})
    assert DeadLetter.objects.filter(resolution="open").count() == 2
    response = client.post(url, {**selected, "post": "yes", "reason": "test donations"}, follow=True)
    assert "Discarded 2 dead letter(s)" in response.content.decode()
    assert set(DeadLetter.objects.values_list("resolution", "resolved_by")) == {("discarded", superuser.pk)}


def test_checkpoint_reset_action_asks_first_then_resets(client, superuser, tenant):
    from django.utils import timezone

    cp = SyncCheckpoint.objects.create(
        tenant=tenant,
        scope="",
        resource_type="gift",
        direction="inbound",
        last_processed_timestamp=timezone.now(),
    )
    client.force_login(superuser)
    url = reverse("admin:sync_synccheckpoint_changelist")
    client.post(url, {"action": "reset_checkpoints", "_selected_action": [cp.pk]})
    cp.refresh_from_db()
    assert cp.last_processed_timestamp is not None
    client.post(url, {"action": "reset_checkpoints", "_selected_action": [cp.pk], "post": "yes", "to": ""})
    cp.refresh_from_db()
    assert cp.last_processed_timestamp is None
    assert AuditEvent.objects.filter(action="checkpoint.reset", actor=superuser).count() == 1


def test_pause_and_resume_from_the_dashboard(client, superuser, tenant, other_tenant):
    client.force_login(superuser)
    client.post(
        reverse("admin:sync_tenanthealth_pause", args=[tenant.public_id]), {"reason": "customer asked"}
    )
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert (tenant.status, tenant.paused_reason, other_tenant.status) == (
        "paused",
        "customer asked",
        "active",
    )
    assert (
        "customer asked"
        in client.get(reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])).content.decode()
    )
    client.post(reverse("admin:sync_tenanthealth_resume", args=[tenant.public_id]))
    tenant.refresh_from_db()
    assert tenant.status == "active"


def test_onboarding_refuses_a_key_virtuous_rejects(client, superuser):
    client.force_login(superuser)
    with responses.RequestsMock() as mock:
        mock.add("GET", "https://virtuous.test/api/Organization/Current", status=401, json={})
        response = client.post(
            reverse("admin:sync_tenanthealth_onboard"),
            {
                "name": "Nope",
                "slug": "nope",
                "virtuous_base_url": "https://virtuous.test",
                "api_key": "bad-key-0000",
            },
        )
    assert "Virtuous refused this key" in response.content.decode()
    assert not Tenant.objects.filter(slug="nope").exists() and not Credential.objects.exists()


def test_the_connection_page_shows_the_webhook_url_and_setup_steps(client, superuser, tenant):
    connection = connection_onboard(tenant=tenant, provider="donorbox", capture_mode="webhook")
    client.force_login(superuser)
    html = client.get(reverse("admin:integrations_connection_change", args=[connection.pk])).content.decode()
    assert f"/hooks/{connection.webhook_token}/" in html and "Custom Webhooks" in html and "Copy" in html
    assert Connection.objects.get(pk=connection.pk).settings == {}
