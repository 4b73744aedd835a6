from django.urls import reverse

from tenants.models import AuditEvent, Credential
from tests.conftest import OTHER_VIRTUOUS_TOKEN, VIRTUOUS_TOKEN


def test_credential_pages_never_render_the_secret(client, superuser, tenant):
    client.force_login(superuser)
    cred = Credential.objects.get(tenant=tenant, state="active")
    for url in (
        reverse("admin:tenants_credential_changelist"),
        reverse("admin:tenants_credential_change", args=[cred.pk]),
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
    ):
        html = client.get(url).content.decode()
        assert VIRTUOUS_TOKEN not in html
        assert cred.ciphertext not in html
    assert "••••1234" in client.get(reverse("admin:tenants_credential_changelist")).content.decode()


def test_adding_a_credential_in_the_admin_goes_through_the_service(
    client, superuser, tenant, make_connection
):
    connection = make_connection(tenant, "stripe", name="Main account")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:tenants_credential_add"),
        {
            "tenant": tenant.pk,
            "platform": "stripe",
            "purpose": "webhook_secret",
            "scope": str(connection.public_id),
            "secret": "whsec_admin_5555",
            "activate": "on",
        },
    )
    assert response.status_code == 302
    cred = Credential.objects.get(tenant=tenant, platform="stripe")
    assert cred.last4 == "5555" and cred.set_by == superuser and cred.scope == str(connection.public_id)
    assert AuditEvent.objects.filter(action="credential.set", actor=superuser, via="admin").exists()


def test_staff_cannot_see_unassigned_tenants_or_their_credentials(client, staff_user, tenant, other_tenant):
    tenant.assigned_staff.add(staff_user)
    client.force_login(staff_user)
    other_cred = Credential.objects.get(tenant=other_tenant, state="active")

    changelist = client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert "Alpha Food Bank" in changelist and "Bravo Animal Rescue" not in changelist
    assert client.get(reverse("admin:tenants_tenant_change", args=[other_tenant.pk])).status_code == 302
    assert client.get(reverse("admin:tenants_credential_change", args=[other_cred.pk])).status_code == 302
    creds = client.get(reverse("admin:tenants_credential_changelist")).content.decode()
    assert OTHER_VIRTUOUS_TOKEN not in creds and "bravo" not in creds.lower()


def test_tenant_flag_change_in_admin_is_audited(client, superuser, tenant):
    client.force_login(superuser)
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "assigned_staff"}
    data.update({"batching_enabled": "", "inbound_mode": "observe"})
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.updated")
    assert event.actor == superuser
    assert event.details["inbound_mode"] == {"old": "off", "new": "observe"}
    assert event.details["batching_enabled"] == {"old": True, "new": False}
