import json

import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.constant_contact import webhooks
from integrations.constant_contact.mapping import HANDLERS
from integrations.models import InboundEvent
from integrations.types import MalformedPayload, WebhookRequest
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tenants.services import credential_set
from tests.integrations.conftest import FIXTURES, fixture_bytes

from .conftest import CLIENT_ID, WEBHOOK_SECRET


def _post(client, connection, body, *, secret=WEBHOOK_SECRET):
    if secret is None:
        url = reverse("integrations:receive", args=[connection.webhook_token])
    else:
        url = reverse("integrations:receive-with-secret", args=[connection.webhook_token, secret])
    return client.post(url, data=body, content_type="application/json")


@pytest.mark.parametrize("topic", ["account.cancel", "account.disable"])
def test_account_loss_is_acknowledged_and_sent_to_a_person(client, cc_connection, topic):
    assert _post(client, cc_connection, fixture_bytes("constant_contact", f"{topic}.json")).status_code == 200
    assert InboundEvent.objects.get().event_type == topic
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "needs_review" and topic in event.status_reason
    assert not OutboundItem.objects.exists()


@pytest.mark.parametrize("topic", ["tier.increase", "tier.decrease"])
def test_tier_changes_are_noted_and_write_nothing(client, cc_connection, topic):
    _post(client, cc_connection, fixture_bytes("constant_contact", f"{topic}.json"))
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "processed" and "billing tier" in event.status_reason


def test_a_notification_about_another_account_is_only_noted(client, cc_connection):
    cc_connection.settings = {**cc_connection.settings, "account_id": "someoneelse"}
    cc_connection.save()
    _post(client, cc_connection, fixture_bytes("constant_contact", "account.cancel.json"))
    inbound_drain(seconds=0)
    assert InboundEvent.objects.get().status == "processed"


def test_retries_within_the_hour_are_duplicates(client, cc_connection):
    body = fixture_bytes("constant_contact", "account.disable.json")
    _post(client, cc_connection, body)
    _post(client, cc_connection, body)
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]


def test_unknown_topic_is_recorded_as_ignored(client, cc_connection):
    body = json.dumps(
        {"url": "https://api.cc.email/v3/partner/accounts/x/plan", "event_type": "plan.renamed"}
    )
    assert _post(client, cc_connection, body.encode()).status_code == 200
    assert InboundEvent.objects.get().status == "ignored"


def test_contacts_cannot_be_pushed_through_the_webhook(client, cc_connection):
    body = json.dumps({"type": "contact", "data": {"contact": {"contact_id": "1"}}}).encode()
    assert _post(client, cc_connection, body).status_code == 400
    assert InboundEvent.objects.get().status == "malformed"


@pytest.mark.parametrize(
    "secret,reason",
    [("wrong", "does not match"), (None, "missing secret"), (WEBHOOK_SECRET[:-1], "does not match")],
)
def test_wrong_or_missing_path_secret_is_refused(client, cc_connection, secret, reason):
    body = fixture_bytes("constant_contact", "account.cancel.json")
    assert _post(client, cc_connection, body, secret=secret).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "rejected" and reason in event.status_reason


def test_pending_secret_verifies_during_rotation_and_handshake(client, cc_connection, tenant):
    credential_set(
        tenant=tenant,
        platform="constant_contact",
        purpose="webhook_secret",
        secret="cc-next-secret-0042",
        scope=cc_connection.credential_scope,
        activate=False,
    )
    body = fixture_bytes("constant_contact", "tier.increase.json")
    assert _post(client, cc_connection, body, secret="cc-next-secret-0042").status_code == 200
    assert _post(client, cc_connection, body, secret=WEBHOOK_SECRET).status_code == 200
    url = reverse(
        "integrations:receive-with-secret", args=[cc_connection.webhook_token, "cc-next-secret-0042"]
    )
    assert client.get(url).status_code == 200
    url = reverse("integrations:receive-with-secret", args=[cc_connection.webhook_token, "nope"])
    assert client.get(url).status_code == 403


def test_another_tenants_url_refuses_this_tenants_secret(
    client, cc_connection, other_tenant, make_connection
):
    other = make_connection(
        other_tenant, "constant_contact", secret="bravo-cc-secret-99", capture_mode="polling"
    )
    body = fixture_bytes("constant_contact", "account.cancel.json")
    assert _post(client, other, body, secret=WEBHOOK_SECRET).status_code == 400
    event = InboundEvent.objects.get()
    assert event.tenant == other_tenant and event.status == "rejected"


def test_api_key_mode_checks_the_payload_key(client, cc_connection, tenant):
    cc_connection.settings = {**cc_connection.settings, "webhook_auth": "api_key"}
    cc_connection.save()
    credential_set(
        tenant=tenant,
        platform="constant_contact",
        purpose="webhook_secret",
        secret=CLIENT_ID,
        scope=cc_connection.credential_scope,
    )
    good = fixture_bytes("constant_contact", "account.cancel.json")
    forged = good.replace(CLIENT_ID.encode(), b"forged-key")
    assert _post(client, cc_connection, good, secret=None).status_code == 200
    assert _post(client, cc_connection, forged, secret=None).status_code == 400
    assert _post(client, cc_connection, b"not json", secret=None).status_code == 400
    reasons = list(InboundEvent.objects.order_by("id").values_list("status_reason", flat=True))
    assert "not one of the configured keys" in reasons[1] and "no api_key" in reasons[2]


def test_unknown_auth_mode_refuses_everything(client, cc_connection):
    cc_connection.settings = {**cc_connection.settings, "webhook_auth": "none"}
    cc_connection.save()
    assert (
        _post(client, cc_connection, fixture_bytes("constant_contact", "tier.increase.json")).status_code
        == 400
    )


@settings(max_examples=200)
@given(
    body=st.one_of(
        st.binary(max_size=80),
        st.recursive(
            st.none() | st.text(max_size=10) | st.integers(),
            lambda c: (
                st.lists(c, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["url", "event_type", "type", "data", "api_key"]), c, max_size=4
                )
            ),
            max_leaves=8,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_body_parses_or_is_malformed_never_crashes(body):
    request = WebhookRequest(
        body=body, headers={}, content_type="application/json", query={}, path_secret="s"
    )
    try:
        parsed = webhooks.parse(request)
    except MalformedPayload:
        return
    assert parsed.event_type and parsed.dedupe_key.startswith("cc:")


def test_every_handled_event_type_has_a_fixture():
    names = {p.stem for p in (FIXTURES / "constant_contact" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
