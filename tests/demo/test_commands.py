"""The demo app's commands (`make run`): the demo tenant pointed at the sandbox."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from integrations.sandbox.models import SandboxOrganization
from tenants import selectors
from tenants.models import Credential, Tenant
from tests.integrations.sandbox.conftest import BASE, SandboxApi


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_demo_setup_points_the_demo_tenant_at_the_sandbox(db, client, settings):
    settings.DEBUG = True
    first = _run("demo_setup")
    _run("demo_setup")
    tenant = Tenant.objects.get(slug="demo")
    assert tenant.virtuous_base_url == "http://127.0.0.1:8000/sandbox/virtuous"
    assert tenant.virtuous_org_name == "Demo Nonprofit (Sandbox)"
    assert "virtuous: Demo Nonprofit (Sandbox) at http://127.0.0.1:8000/sandbox/virtuous/" in first
    assert SandboxOrganization.objects.filter(name="Demo Nonprofit (Sandbox)").count() == 1
    token = selectors.credential_secret(
        tenant=tenant, platform=Credential.Platform.VIRTUOUS, purpose=Credential.Purpose.API_TOKEN
    )
    assert token not in first
    assert SandboxApi(client, token).get("Organization/Current").status_code == 200
    active = Credential.objects.filter(tenant=tenant, state="active")
    assert active.count() == 1 and Credential.objects.filter(tenant=tenant).count() == 1  # second run kept it

    active.update(state="retired")
    _run("demo_setup")
    new_token = selectors.credential_secret(
        tenant=tenant, platform=Credential.Platform.VIRTUOUS, purpose=Credential.Purpose.API_TOKEN
    )
    assert new_token != token
    assert client.get(BASE + "Health", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert SandboxApi(client, new_token).get("Health").status_code == 200


def test_demo_setup_keeps_a_sandbox_organisation_ready_for_trying_onboarding(db, client, settings, superuser):
    from django.urls import reverse

    from integrations.sandbox.demo import TRY_API_KEY, TRY_ORG_NAME

    settings.DEBUG = True
    client.force_login(superuser)
    onboard = reverse("admin:sync_tenanthealth_onboard")
    assert (
        'id="try-onboarding"' not in client.get(onboard).content.decode()
    )  # nothing offered before the demo
    out = _run("demo_setup")
    _run("demo_setup")
    assert f"API key:      {TRY_API_KEY}" in out and "name / slug:  Try onboarding / try-onboarding" in out
    assert SandboxOrganization.objects.filter(name=TRY_ORG_NAME).count() == 1
    assert (
        SandboxApi(client, TRY_API_KEY).get("Organization/Current").json()["organizationName"] == TRY_ORG_NAME
    )
    assert not Tenant.objects.filter(slug="try-onboarding").exists()  # onboarding makes it

    page = client.get(onboard).content.decode()
    assert 'id="try-onboarding"' in page and TRY_API_KEY in page and 'data-slug="try-onboarding"' in page
    assert f"{settings.PUBLIC_BASE_URL}/sandbox/virtuous" in page
    # once a tenant holds the slug, the next walk-through is offered the next one
    Tenant.objects.create(slug="try-onboarding", name="Try onboarding")
    assert 'data-slug="try-onboarding-2"' in client.get(onboard).content.decode()

    settings.SANDBOX_ENABLED = False
    assert 'id="try-onboarding"' not in client.get(onboard).content.decode()
