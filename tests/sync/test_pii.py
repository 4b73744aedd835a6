"""Stored bodies shown in the admin: secrets masked for everyone, at any depth, in any spelling."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from integrations.models import InboundEvent
from sync.pii import MASK, is_secret_key, mask_for_display, mask_pii, mask_secrets

BODY = {
    "api_key": "cc-api-key-LEAK-1",
    "event": {
        "Authorization": "Bearer LEAK-2",
        "client_secret": "LEAK-3",
        "nested": [{"Refresh-Token": "LEAK-4"}, {"PASSWORD": "LEAK-5"}],
        "credentials": {"user": "x", "value": "LEAK-6"},
        "accessToken": "LEAK-7",
    },
    "amount": "25.00",
    "id": "evt_1",
    "email": "donor@example.org",
}


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API-KEY",
        "apiKey",
        "token",
        "x_auth_token",
        "Secret",
        "password",
        "Authorization",
        "client_secret",
        "refresh_token",
        "ACCESS_TOKEN",
        "private_key",
        "webhookSigningKey",
        "key",
    ],
)
def test_secret_like_keys_are_recognised(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["amount", "id", "designation", "monkey_business", "donor_id"])
def test_ordinary_keys_are_not(key):
    assert not is_secret_key(key)


def test_mask_secrets_keeps_everything_else_and_reaches_every_depth():
    masked = mask_secrets(BODY)
    assert "LEAK" not in json.dumps(masked)
    assert masked["amount"] == "25.00" and masked["id"] == "evt_1" and masked["email"] == "donor@example.org"
    assert masked["event"]["credentials"] == MASK


def test_mask_pii_masks_secrets_too():
    masked = mask_pii(BODY)
    assert "LEAK" not in json.dumps(masked) and "donor@example.org" not in json.dumps(masked)
    assert masked["amount"] == "25.00"


def _user(name, group):
    user = get_user_model().objects.create_user(name, f"{name}@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_mask_for_display_depends_on_the_pii_permission(db):
    admin = _user("int-admin", "Integration admin")
    cs = _user("cs", "Customer success")
    for_admin = mask_for_display(admin, BODY)
    assert "LEAK" not in json.dumps(for_admin) and for_admin["email"] == "donor@example.org"
    assert "LEAK" not in json.dumps(mask_for_display(cs, BODY))
    assert mask_for_display(cs, BODY)["email"] == MASK


@pytest.fixture
def event(tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret="whsec_x")
    return InboundEvent.objects.create(
        tenant=tenant, connection=connection, provider="stripe", body=json.dumps(BODY).encode()
    )


def test_the_inbound_event_page_masks_secrets_without_the_pii_permission(client, event, tenant):
    cs = _user("cs-alpha", "Customer success")
    tenant.assigned_staff.add(cs)
    client.force_login(cs)
    html = client.get(reverse("admin:integrations_inboundevent_change", args=[event.pk])).content.decode()
    assert "evt_1" in html and "LEAK" not in html


def test_the_inbound_event_page_masks_secrets_for_pii_viewers(client, event):
    admin = _user("int-admin", "Integration admin")
    client.force_login(admin)
    html = client.get(reverse("admin:integrations_inboundevent_change", args=[event.pk])).content.decode()
    assert "evt_1" in html and "LEAK" not in html
