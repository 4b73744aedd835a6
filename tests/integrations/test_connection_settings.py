"""Issue 14 §4: connection settings are declared per provider, validated where typed, and read with
defaults and clamping where used, so no stored value can switch a check off or break a receiver."""

from __future__ import annotations

import dataclasses
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from integrations.admin import ConnectionForm
from integrations.auction import webhooks as auction_webhooks
from integrations.common.connection_settings import Int, Map, SettingsInvalid, Text
from integrations.donorbox import webhooks as donorbox_webhooks
from integrations.models import Connection, InboundEvent
from integrations.registry import connection_settings, provider_get, provider_keys
from integrations.services import connection_create
from integrations.stripe import webhooks as stripe_webhooks
from tenants.models import AuditEvent
from tests.integrations.conftest import fixture_bytes

# Per provider: settings a person might type that are fine, and ones that must be refused (with
# the keys the errors must name).
CASES = {
    "stripe": (
        {"tolerance_seconds": 300, "campaign_metadata_key": "appeal", "charges_initial_days": "90"},
        {"tolerance_seconds": "five", "max_network_retries": 50, "webhook_auth": "x"},
        {"tolerance_seconds", "max_network_retries", "webhook_auth"},
    ),
    "donorbox": (
        {"account_email": "ops@alpha.org", "tolerance_seconds": 120, "base_url": "https://donorbox.org"},
        {"account_email": "not-an-address", "tolerance_seconds": 0, "rescan_days": -1},
        {"account_email", "tolerance_seconds", "rescan_days"},
    ),
    "mailchimp": (
        {"audiences": {"abc123": "Newsletter"}, "field_owners": {"tags": "virtuous"}, "overlap_seconds": 30},
        {"audiences": ["abc123"], "field_owners": {"tags": "nobody"}, "overlap_seconds": True},
        {"audiences", "field_owners", "overlap_seconds"},
    ),
    "constant_contact": (
        {"webhook_auth": "api_key", "client_id": "cid", "account_id": "a07e1ikxyomh"},
        {"webhook_auth": "none", "client_id": {"x": 1}, "field_owners": {"email": "partner"}},
        {"webhook_auth", "client_id", "field_owners"},
    ),
    "gofundme_pro": (
        {"client_id": "gfm-client-1", "organization_id": "7001", "initial_days": 10},
        {"organization_id": "seven", "base_url": "ftp://example.org", "initial_days": 0},
        {"organization_id", "base_url", "initial_days"},
    ),
    "auction": (
        {"signature_algorithm": "SHA512", "signature_encoding": "base64", "premium_map": {"LOT-12": 302}},
        {"signature_algorithm": "md5", "signature_header": "X Sig: 1", "premium_map": {"LOT-12": "gold"}},
        {"signature_algorithm", "signature_header", "premium_map"},
    ),
}


def test_every_provider_declares_its_settings_and_their_defaults_are_valid():
    assert set(CASES) == {k for k in provider_keys() if provider_get(k).kind == "source"}
    for key in provider_keys():
        schema = provider_get(key).settings_schema
        for setting in schema.fields:
            if setting.default not in ("", None, {}):
                assert setting.clean(setting.default) == setting.default, (key, setting.name)
        # the onboarding form's fields are declared settings too
        assert set(provider_get(key).settings_fields) <= set(schema.names), key


@pytest.mark.parametrize("provider", CASES)
def test_each_provider_accepts_good_settings_and_names_every_bad_one(provider):
    good, bad, bad_keys = CASES[provider]
    schema = provider_get(provider).settings_schema
    cleaned = schema.validate(good)
    assert set(cleaned) == set(good)
    with pytest.raises(SettingsInvalid) as info:
        schema.validate({**good, **bad})
    assert set(info.value.errors) == bad_keys
    # and whatever is stored, reading never raises and always yields every declared key
    assert set(schema.read({**good, **bad})) == set(schema.names)
    assert set(schema.read(["not", "an", "object"])) == set(schema.names)


def test_numbers_are_clamped_at_use_and_words_fall_back_to_the_default():
    tolerance = provider_get("stripe").settings_schema.get("tolerance_seconds")
    assert tolerance.read("five") == 300
    assert tolerance.read(0) == 60  # 0 would switch Stripe's timestamp check off
    assert tolerance.read(-5) == 60
    assert tolerance.read(10**9) == 900
    assert tolerance.read("120") == 120
    assert tolerance.read(True) == 300
    with pytest.raises(ValueError, match="between 60 and 900"):
        tolerance.clean(0)
    with pytest.raises(ValueError, match="whole number"):
        tolerance.clean("five")


def test_a_map_keeps_its_good_entries_at_use():
    premiums = Map("premium_map", values=Int("premium id", minimum=1))
    assert premiums.read({"A": 1, "B": "gold", "C": 0, "D": "4"}) == {"A": 1, "D": 4}
    assert premiums.read("gold") == {}
    assert Text("t", max_length=3).read("abcdef") == ""


def test_a_null_value_unsets_and_no_settings_is_fine():
    schema = provider_get("stripe").settings_schema
    assert schema.validate({"tolerance_seconds": None}) == {}
    assert schema.validate(None) == {}
    with pytest.raises(SettingsInvalid) as info:
        schema.validate("tolerance=5")
    assert set(info.value.errors) == {"settings"}


# --- the services, the admin form and the commands ---------------------------------------------


def test_connection_create_refuses_bad_settings_and_stores_nothing(tenant):
    with pytest.raises(SettingsInvalid) as info:
        connection_create(tenant=tenant, provider="stripe", settings={"tolerance_seconds": "five"})
    assert "tolerance_seconds" in info.value.errors
    assert not Connection.objects.filter(tenant=tenant).exists()
    created = connection_create(tenant=tenant, provider="stripe", settings={"tolerance_seconds": "120"})
    assert created.settings == {"tolerance_seconds": 120}


def test_the_admin_form_shows_one_error_per_bad_setting(tenant):
    connection = connection_create(tenant=tenant, provider="stripe")
    form = ConnectionForm(
        data={"settings": '{"tolerance_seconds": "five", "tolerance": 5}'}, instance=connection
    )
    assert not form.is_valid()
    messages = form.errors["settings"]
    assert len(messages) == 2
    assert any(m.startswith("tolerance_seconds: must be a whole number") for m in messages)
    assert any(m.startswith("tolerance: unknown setting") for m in messages)
    form = ConnectionForm(data={"settings": '{"tolerance_seconds": 600}'}, instance=connection)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["settings"] == {"tolerance_seconds": 600}


def test_the_admin_change_page_refuses_a_bad_setting_and_lists_the_schema(client, superuser, tenant):
    connection = connection_create(tenant=tenant, provider="stripe", source_name="Stripe")
    client.force_login(superuser)
    url = reverse("admin:integrations_connection_change", args=[connection.pk])
    page = client.get(url)
    assert page.status_code == 200 and b"tolerance_seconds (whole number 60" in page.content
    data = {
        "name": "",
        "is_active": "on",
        "capture_mode": "webhook",
        "polling_role": "primary",
        "poll_interval_minutes": "15",
        "backstop_interval_minutes": "1440",
        "source_name": "Stripe",
        "default_project_code": "",
        "settings": '{"tolerance_seconds": 0}',
    }
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assert b"tolerance_seconds: must be between 60 and 900, not 0" in response.content
    connection.refresh_from_db()
    assert connection.settings == {}
    response = client.post(url, {**data, "settings": '{"tolerance_seconds": 600}'})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.settings == {"tolerance_seconds": 600}


def test_connection_create_command_takes_settings_and_names_bad_ones(tenant, other_tenant):
    with pytest.raises(CommandError) as info:
        call_command(
            "connection_create", "alpha", "stripe", "--setting", "tolerance_seconds=five", stdout=StringIO()
        )
    text = str(info.value)
    assert "tolerance_seconds: must be a whole number" in text and "Settings this provider takes" in text
    assert not Connection.objects.exists()
    call_command(
        "connection_create",
        "alpha",
        "mailchimp",
        "--setting",
        'audiences={"abc123": "Newsletter"}',
        "--setting",
        "overlap_seconds=30",
        stdout=StringIO(),
    )
    connection = Connection.objects.get(tenant=tenant)
    assert connection.settings == {"audiences": {"abc123": "Newsletter"}, "overlap_seconds": 30}
    assert not Connection.objects.filter(tenant=other_tenant).exists()


def test_connection_settings_command_sets_unsets_validates_and_audits(tenant, other_tenant):
    connection = connection_create(tenant=tenant, provider="stripe", settings={"campaign_metadata_key": "x"})
    out = StringIO()
    call_command(
        "connection_settings",
        "alpha",
        str(connection.public_id),
        "--set",
        "tolerance_seconds=120",
        "--unset",
        "campaign_metadata_key",
        stdout=out,
    )
    connection.refresh_from_db()
    assert connection.settings == {"tolerance_seconds": 120}
    assert '"campaign_metadata_key": "campaign"' in out.getvalue()  # in use: the default
    audit = AuditEvent.objects.get(action="connection.settings_changed")
    assert audit.details == {"set": ["tolerance_seconds"], "unset": ["campaign_metadata_key"]}
    with pytest.raises(CommandError, match="tolerance_seconds: must be between"):
        call_command(
            "connection_settings", "alpha", str(connection.public_id), "--set", "tolerance_seconds=0"
        )
    connection.refresh_from_db()
    assert connection.settings == {"tolerance_seconds": 120}
    # another tenant's connection is not reachable through this tenant
    with pytest.raises(CommandError, match="no connection"):
        call_command("connection_settings", "bravo", str(connection.public_id), stdout=StringIO())


# --- receivers with settings stored before validation existed -----------------------------------


def _corrupt(connection: Connection, settings) -> None:
    """Store settings the way an old release or a database edit could: no validation."""
    Connection.objects.filter(pk=connection.pk).update(settings=settings)
    connection.refresh_from_db()


def _stripe_post(client, connection, body, ts, secret="whsec_alpha_current_0001"):
    url = reverse("integrations:receive", args=[connection.webhook_token])
    return client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_webhooks.sign(body, secret, ts),
    )


@pytest.mark.parametrize("stored", [{"tolerance_seconds": "five"}, {"tolerance_seconds": None}, ["x"], "x"])
def test_a_stripe_receiver_with_a_corrupt_setting_still_verifies_and_records(
    client, tenant, make_connection, stored
):
    connection = make_connection(tenant, "stripe", secret="whsec_alpha_current_0001")
    _corrupt(connection, stored)
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    response = _stripe_post(client, connection, body, int(time.time()))
    assert response.status_code == 200
    assert InboundEvent.objects.get().status == "pending"


def test_a_stored_tolerance_of_zero_does_not_switch_the_timestamp_check_off(client, tenant, make_connection):
    connection = make_connection(tenant, "stripe", secret="whsec_alpha_current_0001")
    _corrupt(connection, {"tolerance_seconds": 0})
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    # a delivery signed ten minutes ago is stale under the smallest safe tolerance (60 s)
    response = _stripe_post(client, connection, body, int(time.time()) - 600)
    assert response.status_code == 400
    event = InboundEvent.objects.get()
    assert (event.status, event.status_reason) == (
        "rejected",
        "Signature check failed: timestamp outside the 60 s tolerance",
    )


def test_a_donorbox_receiver_with_a_corrupt_tolerance_still_verifies(client, tenant, make_connection):
    connection = make_connection(tenant, "donorbox", secret="donorbox-secret")
    _corrupt(connection, {"tolerance_seconds": "five"})
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    url = reverse("integrations:receive", args=[connection.webhook_token])
    header = donorbox_webhooks.sign(body, "donorbox-secret", int(time.time()))
    response = client.post(url, data=body, content_type="application/json", HTTP_DONORBOX_SIGNATURE=header)
    assert response.status_code == 200 and InboundEvent.objects.get().status == "pending"


def test_an_auction_receiver_with_a_corrupt_tolerance_clamps_it(client, tenant, make_connection):
    connection = make_connection(tenant, "auction", secret="auction-secret")
    _corrupt(connection, {"timestamp_header": "X-Ts", "tolerance_seconds": "abc"})
    body = fixture_bytes("auction", "order.completed.json")
    url = reverse("integrations:receive", args=[connection.webhook_token])
    ts = int(time.time())
    header = auction_webhooks.sign(body, "auction-secret", {"timestamp_header": "X-Ts"}, ts)
    response = client.post(
        url, data=body, content_type="application/json", HTTP_X_SIGNATURE=header, HTTP_X_TS=str(ts)
    )
    assert response.status_code == 200
    stale = client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_X_SIGNATURE=auction_webhooks.sign(
            body, "auction-secret", {"timestamp_header": "X-Ts"}, ts - 400
        ),
        HTTP_X_TS=str(ts - 400),
    )
    assert stale.status_code == 400  # "abc" read as the 300 s default
    assert "outside the 300 s tolerance" in InboundEvent.objects.order_by("-id").first().status_reason


def test_a_verify_that_raises_records_the_delivery_and_never_answers_500(
    client, tenant, make_connection, monkeypatch
):
    connection = make_connection(tenant, "stripe", secret="whsec_alpha_current_0001")

    def broken(request, conn, secrets):
        raise ValueError("invalid literal for int() with base 10: 'five'")

    spec = dataclasses.replace(provider_get("stripe"), verify=broken)
    monkeypatch.setattr("integrations.services.provider_get", lambda key: spec)
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    response = _stripe_post(client, connection, body, int(time.time()))
    assert response.status_code == 503  # the sender retries once the bug is fixed
    event = InboundEvent.objects.get()
    assert event.status == "rejected" and "Could not check the signature: ValueError" in event.status_reason


def test_pollers_and_mapping_read_settings_through_the_schema(tenant):
    connection = connection_create(tenant=tenant, provider="donorbox")
    _corrupt(connection, {"rescan_days": "seven", "initial_days": 10_000, "account_email": "ops@alpha.org"})
    used = connection_settings(connection)
    assert (used["rescan_days"], used["initial_days"], used["account_email"]) == (7, 365, "ops@alpha.org")
