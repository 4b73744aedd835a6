"""Where a tenant's Virtuous token may go: allow-listed hosts only, and a URL change asks for the token."""

from io import StringIO

import pytest
import responses
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.urls import reverse

from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import ErrorClass, VirtuousError
from integrations.virtuous.services import virtuous_key_check
from tenants import selectors
from tenants.models import AuditEvent, Tenant
from tenants.services import SYSTEM, tenant_create, tenant_update, tenant_virtuous_url_change
from tests.conftest import VIRTUOUS_TOKEN


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example",
        "https://api.virtuoussoftware.com.attacker.example",
        "http://api.virtuoussoftware.com",
        "https://user:pw@api.virtuoussoftware.com",
        "ftp://api.virtuoussoftware.com",
    ],
)
def test_hosts_outside_the_allow_list_are_refused(db, url):
    with pytest.raises(ValidationError):
        tenant_create(slug="x", name="X", virtuous_base_url=url)


def test_the_sandbox_hosts_count_only_while_the_sandbox_is_on(tenant, settings):
    tenant_virtuous_url_change(
        tenant=tenant, base_url="http://127.0.0.1:8000/sandbox/virtuous", api_token="t", actor=SYSTEM
    )
    settings.SANDBOX_ENABLED = False
    with pytest.raises(ValidationError):
        tenant_virtuous_url_change(
            tenant=tenant, base_url="http://localhost:9/sandbox", api_token="t", actor=SYSTEM
        )


def test_tenant_update_cannot_change_the_url(tenant):
    with pytest.raises(ValueError, match="API token again"):
        tenant_update(tenant=tenant, actor=SYSTEM, changes={"virtuous_base_url": "https://virtuous.test"})


def test_a_url_change_takes_a_new_token_and_is_audited(tenant, other_tenant):
    with pytest.raises(ValueError):
        tenant_virtuous_url_change(
            tenant=tenant, base_url="https://virtuous.test", api_token=" ", actor=SYSTEM
        )
    tenant_virtuous_url_change(
        tenant=tenant, base_url="https://virtuous.test", api_token="new-token-1", actor=SYSTEM
    )
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == "new-token-1"
    )
    event = AuditEvent.objects.get(action="tenant.virtuous_url_changed")
    assert event.tenant == tenant and event.details == {"old": "", "new": "https://virtuous.test"}
    assert Tenant.objects.get(pk=other_tenant.pk).virtuous_base_url == ""


def test_the_admin_asks_for_the_token_again(client, staff_user, tenant):
    tenant.assigned_staff.add(staff_user)
    client.force_login(staff_user)
    data = {k: ("" if v is None else v) for k, v in model_to_dict(tenant).items() if k != "assigned_staff"}
    data.update({"assigned_staff": [staff_user.pk], "virtuous_base_url": "https://virtuous.test"})
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    response = client.post(url, data)
    assert response.status_code == 200 and "Enter the Virtuous API token" in response.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).virtuous_base_url == ""

    data["virtuous_base_url"] = "https://attacker.example"
    data["virtuous_api_token"] = "new-token-2"
    assert "not an allowed Virtuous host" in client.post(url, data).content.decode()

    data["virtuous_base_url"] = "https://virtuous.test"
    assert client.post(url, data).status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).virtuous_base_url == "https://virtuous.test"
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == "new-token-2"
    )
    assert AuditEvent.objects.get(action="tenant.virtuous_url_changed").actor == staff_user


def test_the_command_reads_the_token_from_stdin(tenant):
    out = StringIO()
    call_command(
        "tenant_set_virtuous_url",
        "alpha",
        "--url",
        "https://virtuous.test",
        stdin=StringIO("cli-token\n"),
        stdout=out,
    )
    assert selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == "cli-token"
    assert AuditEvent.objects.filter(action="tenant.virtuous_url_changed", via="cli").exists()


def test_a_stored_url_outside_the_list_never_gets_the_token(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(virtuous_base_url="https://attacker.example")
    tenant.refresh_from_db()
    with responses.RequestsMock() as mock, pytest.raises(VirtuousError) as caught:
        VirtuousClient.for_tenant(tenant).organization_current()
    assert caught.value.error_class == ErrorClass.NEEDS_ATTENTION and len(mock.calls) == 0


def test_onboarding_refuses_a_host_outside_the_list_before_sending(db):
    with responses.RequestsMock() as mock, pytest.raises(VirtuousError, match="not an allowed"):
        virtuous_key_check(api_key=VIRTUOUS_TOKEN, base_url="https://attacker.example")
    assert len(mock.calls) == 0
