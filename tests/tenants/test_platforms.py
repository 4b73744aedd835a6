"""Credential platforms come from the provider registry through a settings hook, never model choices."""

import pytest

from integrations.registry import provider_get, provider_keys
from tenants import services
from tenants.checks import giftline_settings_check
from tenants.models import Credential
from tenants.platforms import credential_platforms


def only_newcomer_and_virtuous() -> dict[str, str]:
    return {"newcomer": "A provider added later", "virtuous": "Virtuous CRM+"}


def test_every_registered_provider_is_a_credential_platform():
    expected = {provider_get(key).credential_platform for key in provider_keys()}
    assert set(credential_platforms()) == expected
    assert Credential.Platform.VIRTUOUS in expected


def test_a_new_provider_needs_no_change_in_tenants(tenant, other_tenant, settings):
    settings.CREDENTIAL_PLATFORMS = "tests.tenants.test_platforms.only_newcomer_and_virtuous"
    stored = services.credential_set(tenant=tenant, platform="newcomer", purpose="api_token", secret="nc-1")
    assert stored.platform == "newcomer"
    with pytest.raises(ValueError, match="one of: newcomer, virtuous"):
        services.credential_set(tenant=other_tenant, platform="stripe", purpose="api_token", secret="x")
    assert not Credential.objects.filter(tenant=other_tenant, platform="stripe").exists()


@pytest.mark.parametrize("hook", ["nowhere.at_all", "tests.tenants.test_platforms.missing_function"])
def test_a_hook_that_does_not_answer_fails_the_startup_check(settings, hook):
    settings.CREDENTIAL_PLATFORMS = hook
    assert "giftline.E004" in [e.id for e in giftline_settings_check(None)]


def test_a_hook_without_virtuous_fails_the_startup_check(settings):
    settings.CREDENTIAL_PLATFORMS = "tests.tenants.test_platforms.only_newcomer_and_virtuous"
    assert "giftline.E004" not in [e.id for e in giftline_settings_check(None)]
    settings.CREDENTIAL_PLATFORMS = "tests.tenants.test_platforms.no_virtuous"
    assert "giftline.E004" in [e.id for e in giftline_settings_check(None)]


def no_virtuous() -> dict[str, str]:
    return {"newcomer": "A provider added later"}


def test_the_admin_form_offers_the_registry_platforms(superuser, client):
    from django.urls import reverse

    client.force_login(superuser)
    html = client.get(reverse("admin:tenants_credential_add")).content.decode()
    for platform in credential_platforms():
        assert f'<option value="{platform}">' in html
