"""Setting a customer up in the console: every secret a capture mode needs is asked for, the
steps show real values, onboarding errors say what happened next to the right field."""

import pytest
from django.urls import reverse

from integrations.models import Connection
from integrations.virtuous.errors import ErrorClass, VirtuousError
from sync.admin.health import onboarding_error


def test_a_connection_is_refused_without_the_secrets_its_capture_mode_needs(client, superuser, tenant):
    client.force_login(superuser)
    url = reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id]) + "?provider=donorbox"
    post = {
        "step": "connection",
        "provider": "donorbox",
        "capture_mode": "hybrid",
        "secret_webhook_secret": "sig",
    }
    html = client.post(url, post).content.decode()
    assert "Needed for webhooks and polling" in html
    assert not Connection.objects.filter(tenant=tenant).exists()
    response = client.post(url, {**post, "secret_api_token": "key"})
    assert response.status_code == 302
    connection = Connection.objects.get(tenant=tenant)
    page = client.get(reverse("admin:sync_tenanthealth_setup", args=[tenant.public_id])).content.decode()
    assert f"credential_set alpha donorbox webhook_secret --scope {connection.public_id}" in page
    assert "TENANT" not in page and "CONNECTION_ID" not in page


@pytest.mark.parametrize(
    ("error", "field", "words"),
    [
        (
            VirtuousError(ErrorClass.NEEDS_ATTENTION, "Unauthorized", status_code=401),
            "api_key",
            "refused this key",
        ),
        (
            VirtuousError(ErrorClass.TRANSIENT, "Request failed: ConnectionError"),
            "virtuous_base_url",
            "could not be reached",
        ),
        (VirtuousError(ErrorClass.TRANSIENT, "oops", status_code=503), "virtuous_base_url", "had a problem"),
    ],
)
def test_onboarding_errors_say_what_happened_without_internal_labels(error, field, words):
    where, message = onboarding_error(error)
    assert where == field and words in message
    assert "transient" not in message.lower() and "needs_attention" not in message
