"""Issue 16: in the console a connection's secret is chosen by the connection's name (grouped by
tenant), never typed as a UUID, and one stored where nothing would read it is refused."""

from __future__ import annotations

from django.urls import reverse

from tenants.models import Credential


def _post(client, tenant, **fields):
    data = {"tenant": tenant.pk, "purpose": "webhook_secret", "secret": "sig_secret_7777", "activate": "on"}
    return client.post(reverse("admin:tenants_credential_add"), {**data, **fields})


def test_the_connection_is_offered_by_name_under_its_tenant(
    client, superuser, tenant, other_tenant, make_connection
):
    mine = make_connection(tenant, "donorbox", name="Spring appeal")
    theirs = make_connection(other_tenant, "stripe", name="Bravo card payments")
    client.force_login(superuser)
    page = client.get(reverse("admin:tenants_credential_add")).content.decode()
    assert f'<optgroup label="{tenant.name}">' in page
    assert f'<option value="{mine.public_id}">Donorbox — Spring appeal</option>' in page
    assert f'<option value="{theirs.public_id}">Stripe — Bravo card payments</option>' in page
    assert 'name="scope"' in page and '<input type="text" name="scope"' not in page


def test_staff_are_offered_only_their_tenants_connections(
    client, staff_user, tenant, other_tenant, make_connection
):
    tenant.assigned_staff.add(staff_user)
    make_connection(tenant, "donorbox", name="Spring appeal")
    theirs = make_connection(other_tenant, "donorbox", name="Bravo appeal")
    client.force_login(staff_user)
    page = client.get(reverse("admin:tenants_credential_add")).content.decode()
    assert "Spring appeal" in page
    assert "Bravo appeal" not in page and str(theirs.public_id) not in page


def test_a_secret_chosen_by_name_is_stored_for_that_connection(client, superuser, tenant, make_connection):
    connection = make_connection(tenant, "donorbox", name="Spring appeal")
    client.force_login(superuser)
    response = _post(client, tenant, platform="donorbox", scope=str(connection.public_id))
    assert response.status_code == 302
    credential = Credential.objects.get(tenant=tenant, platform="donorbox")
    assert credential.scope == str(connection.public_id)
    page = client.get(reverse("admin:tenants_credential_change", args=[credential.pk])).content.decode()
    assert "Donorbox — Spring appeal" in page


def test_a_secret_is_refused_where_nothing_would_read_it(
    client, superuser, tenant, other_tenant, make_connection
):
    donorbox = make_connection(tenant, "donorbox", name="Spring appeal")
    theirs = make_connection(other_tenant, "donorbox", name="Bravo appeal")
    client.force_login(superuser)
    cases = [
        (
            {"platform": "donorbox", "scope": ""},
            "A Donorbox secret belongs to one connection: choose which (Donorbox — Spring appeal).",
        ),
        ({"platform": "stripe", "scope": ""}, "Alpha Food Bank has no Stripe connection yet"),
        (
            {"platform": "stripe", "scope": str(donorbox.public_id)},
            "Donorbox — Spring appeal takes Donorbox secrets",
        ),
        (
            {"platform": "donorbox", "scope": str(theirs.public_id)},
            "That connection is not Alpha Food Bank&#x27;s",
        ),
        (
            {"platform": "donorbox", "scope": str(donorbox.public_id), "purpose": "oauth_client_secret"},
            "A donorbox connection takes these secrets: webhook_secret, api_token; not oauth_client_secret.",
        ),
    ]
    for fields, message in cases:
        response = _post(client, tenant, **fields)
        assert response.status_code == 200, fields
        assert message in response.content.decode(), fields
    assert not Credential.objects.filter(platform__in=["donorbox", "stripe"]).exists()
