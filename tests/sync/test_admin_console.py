"""The operations console: scoping by assigned tenant, PII masking, resolutions, confirmations."""

import json
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import responses
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, InboundEvent
from integrations.services import connection_onboard
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.admin import health
from sync.models import DeadLetter, ImportRun, OutboundItem, SyncCheckpoint
from sync.outbound.confirm import tenant_reconcile
from sync.outbound.drain import outbound_drain
from tenants.models import AuditEvent, Credential, Tenant
from tenants.services import Actor
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
    url = reverse("admin:sync_deadletter_fix_json", args=[mine.public_id])
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


# --- every state change the console makes goes through a service, with exactly one audit row ------


def test_the_console_changes_nothing_itself_and_writes_no_audit_row_of_its_own():
    """Saves, updates, deletes and audit writes belong in the services the views call."""
    package = Path(__file__).resolve().parents[2] / "sync" / "admin"
    assert (package / "__init__.py").exists() and not package.with_suffix(".py").exists()
    offenders = [
        f"{path.name}: {needle}"
        for path in sorted(package.glob("*.py"))
        for needle in (".save(", ".update(", ".delete(", ".create(", "bulk_", "audit_record", "AuditEvent")
        if needle in path.read_text()
    ]
    assert offenders == []
    assert max(len(p.read_text().splitlines()) for p in package.glob("*.py")) <= 600


def test_dead_letter_resolutions_in_the_console_write_one_audit_row_each(
    client, cs_user, letters, tenant, fake_virtuous
):
    mine, theirs = letters
    second = _dead_letter(tenant, fake_virtuous, 3)
    client.force_login(cs_user)
    client.post(reverse("admin:sync_deadletter_replay", args=[mine.public_id]))
    client.post(reverse("admin:sync_deadletter_discard", args=[second.public_id]), {"reason": "a test gift"})
    client.post(reverse("admin:sync_deadletter_replay", args=[mine.public_id]))  # already resolved: refused
    rows = AuditEvent.objects.filter(action__startswith="dead_letter.").order_by("pk")
    assert [(e.action, e.actor, e.via, e.tenant, e.target_id) for e in rows] == [
        ("dead_letter.replayed", cs_user, "admin", tenant, str(mine.public_id)),
        ("dead_letter.discarded", cs_user, "admin", tenant, str(second.public_id)),
    ]
    theirs.refresh_from_db()
    assert theirs.resolution == "open"


def test_replaying_inbound_events_in_the_console_writes_one_audit_row_per_event(
    client, cs_user, tenant, other_tenant
):
    connection = connection_onboard(tenant=tenant, provider="donorbox", capture_mode="webhook")
    outsider = connection_onboard(tenant=other_tenant, provider="donorbox", capture_mode="webhook")
    events = [
        InboundEvent.objects.create(
            tenant=c.tenant,
            connection=c,
            provider="donorbox",
            event_type="donation",
            dedupe_key=f"k{n}",
            body=b"{}",
            status=status,
            signature_valid=True,
        )
        for n, (c, status) in enumerate(
            [(connection, "failed"), (connection, "rejected"), (outsider, "failed")]
        )
    ]
    client.force_login(cs_user)
    response = client.post(
        reverse("admin:integrations_inboundevent_changelist"),
        {"action": "replay_events", "_selected_action": [e.pk for e in events], "post": "yes"},
        follow=True,
    )
    assert "Queued 1 event(s) for replay." in response.content.decode()
    rows = AuditEvent.objects.filter(action="inbound_event.replayed")
    assert [(e.actor, e.via, e.target_id) for e in rows] == [(cs_user, "admin", str(events[0].public_id))]


def test_run_reconciliation_now_is_audited_once_through_the_service(
    client, cs_user, tenant, other_tenant, monkeypatch
):
    cs_user.user_permissions.add(Permission.objects.get(codename="change_tenant"))
    calls = []
    real = health.tenant_reconcile
    monkeypatch.setattr(health, "tenant_reconcile", lambda **kw: calls.append(kw) or real(**kw))
    client.force_login(cs_user)
    url = reverse("admin:sync_tenanthealth_reconcile", args=[tenant.public_id])
    response = client.post(url, follow=True)
    assert "Reconciliation: checked 0, recovered 0" in response.content.decode()
    assert [c["tenant"] for c in calls] == [tenant]
    (row,) = AuditEvent.objects.filter(action="tenant.reconciled")
    assert (row.actor, row.via, row.tenant, row.details["checked"]) == (cs_user, "admin", tenant, 0)
    assert (
        client.get(url).status_code == 302
        and AuditEvent.objects.filter(action="tenant.reconciled").count() == 1
    )
    outsider = reverse("admin:sync_tenanthealth_reconcile", args=[other_tenant.public_id])
    assert client.post(outsider).status_code == 404
    assert AuditEvent.objects.filter(action="tenant.reconciled").count() == 1


def test_the_reconcile_service_confirms_found_items_and_records_who_asked(tenant, fake_virtuous):
    enqueue_gifts(tenant, 1)
    OutboundItem.objects.filter(tenant=tenant).update(
        state="submitted", submitted_at=timezone.now() - timedelta(hours=30)
    )
    fake_virtuous.gifts_by_transaction[("Stripe", "pi_1")] = {"id": 4242}
    counts = tenant_reconcile(tenant=tenant, actor=Actor(via="test"), client=fake_virtuous.factory(tenant))
    assert (counts["checked"], counts["recovered"]) == (1, 1)
    assert OutboundItem.objects.get(tenant=tenant).virtuous_id == "4242"
    (row,) = AuditEvent.objects.filter(action="tenant.reconciled")
    assert (row.via, row.details) == ("test", counts)


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example", "javascript:alert(1)", "https://evil.example/admin/"],
)
def test_an_external_next_is_refused_and_the_dashboard_shown_instead(client, superuser, tenant, target):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:sync_tenanthealth_reconcile", args=[tenant.public_id]), {"next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:sync_tenanthealth_change", args=[tenant.public_id])


def test_an_internal_next_is_kept(client, superuser, tenant):
    client.force_login(superuser)
    setup = reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id])
    response = client.post(
        reverse("admin:sync_tenanthealth_reconcile", args=[tenant.public_id]), {"next": setup}
    )
    assert (response.status_code, response["Location"]) == (302, setup)


def _signoff_run(tenant):
    enqueue_gifts(tenant, 2)
    OutboundItem.objects.filter(tenant=tenant).update(
        payload={"batch": "Hist-1", "designations": [{"projectCode": "GEN", "amountDesignated": "10.00"}]}
    )
    return ImportRun.objects.create(
        tenant=tenant,
        kind="historical_gifts",
        source_label="gifts.csv",
        fingerprint="x",
        batch_label="Hist-1",
    )


def _virtuous_batch_of_two(mock) -> None:
    designations = [{"projectCode": "GEN", "amountDesignated": "10.00"}]
    gifts = [
        {
            "id": n,
            "contactId": n,
            "amount": "10.00",
            "giftDesignations": designations,
            "transactionId": f"pi_{n}",
        }
        for n in (1, 2)
    ]
    mock.add(
        "POST",
        re.compile(r"https://api\.virtuoussoftware\.com/api/Gift/Query/FullGift.*"),
        json={"list": gifts},
    )


def test_the_signoff_action_and_command_store_it_through_one_audited_service(
    client, superuser, tenant, other_tenant
):
    run = _signoff_run(tenant)
    client.force_login(superuser)
    with responses.RequestsMock() as mock:
        _virtuous_batch_of_two(mock)
        response = client.post(
            reverse("admin:sync_importrun_changelist"),
            {"action": "signoff_csv", "_selected_action": [run.pk]},
        )
    assert (
        response["Content-Type"] == "text/csv"
        and "TOTAL,2,20.00,2,20.00,0,0.00,Balanced." in response.content.decode()
    )
    run.refresh_from_db()
    assert run.signoff["balanced"] is True and run.signoff_at is not None
    (row,) = AuditEvent.objects.filter(action="import_run.signed_off")
    assert (row.actor, row.via, row.tenant, row.target_id) == (superuser, "admin", tenant, str(run.public_id))
    assert row.details == {"batch": "Hist-1", "balanced": True, "imported_gifts": 2, "virtuous_gifts": 2}

    with responses.RequestsMock() as mock:
        _virtuous_batch_of_two(mock)
        call_command("import_signoff", tenant.slug, "--batch", "Hist-1", stdout=StringIO(), stderr=StringIO())
    assert list(
        AuditEvent.objects.filter(action="import_run.signed_off").order_by("pk").values_list("via", flat=True)
    ) == [
        "admin",
        "cli",
    ]


def test_a_status_filter_that_is_not_a_number_is_refused_not_a_crash(client, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:sync_attempt_changelist"), {"status": "abc"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
