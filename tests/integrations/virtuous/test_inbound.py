import json

import pytest
from django.urls import reverse

from integrations.models import InboundEvent
from integrations.types import MalformedPayload
from integrations.virtuous.inbound import load, normalise_event_name
from integrations.virtuous.services import virtuous_connection_get_or_create
from integrations.virtuous.webhooks import sign
from sync.inbound.drain import inbound_drain
from sync.models import Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue
from tenants.services import credential_set
from tests.sync.conftest import gift_request

SECRET = "virtuous-webhook-secret-for-tests-0123456789"


@pytest.fixture
def web():
    """Django's test client (this folder's conftest names the Virtuous client `client`)."""
    from django.test import Client

    return Client()


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("giftCreate", "giftCreate"),
        ("GiftCreate", "giftCreate"),
        ("gift.created", "giftCreate"),
        ("GIFT_CREATED", "giftCreate"),
        ("contact.updated", "contactUpdate"),
        ("ContactNoteDelete", "contactNoteDelete"),
        ("somethingNew", "somethingNew"),
    ],
)
def test_event_names_are_normalised(raw, expected):
    assert normalise_event_name(raw) == expected


def test_observed_and_envelope_shapes_load_alike():
    observed = load(b'{"event": "GiftCreate", "gift": {"id": 5, "transactionSource": "Stripe"}}')
    envelope = load(
        b'{"eventType": "gift.created", "eventId": "e-1", "data": {"id": 5, "transactionSource": "Stripe"}}'
    )
    assert observed["event"] == envelope["event"] == "giftCreate"
    assert observed["record"] == envelope["record"] == {"id": 5, "transactionSource": "Stripe"}
    assert envelope["event_id"] == "e-1"


@pytest.mark.parametrize("body", [b"[1,2]", b"not json", b'{"gift": {}}', b'{"event": "GiftCreate"}'])
def test_malformed_deliveries_are_refused_by_the_parser(body):
    with pytest.raises(MalformedPayload):
        load(body)


@pytest.fixture
def connection(tenant):
    credential_set(tenant=tenant, platform="virtuous", purpose="webhook_secret", secret=SECRET)
    return virtuous_connection_get_or_create(tenant=tenant)


def _post(web, connection, payload, *, secret=SECRET, encoding="hex", header="X-Virtuous-Signature"):
    body = json.dumps(payload).encode()
    headers = {f"HTTP_{header.upper().replace('-', '_')}": sign(body, secret, encoding)}
    return web.post(
        reverse("integrations:receive", args=[connection.webhook_token]),
        data=body,
        content_type="application/json",
        **headers,
    )


def test_gift_create_with_our_source_confirms_the_item(web, tenant, connection):
    outbound_enqueue(tenant=tenant, request=gift_request(1, source="Giftline"), origin=Origin.WEBHOOK)
    gift = {
        "id": 991,
        "transactionSource": "Giftline",
        "transactionId": "pi_1",
        "modifiedDateTimeUtc": "2026-11-21T08:00:00Z",
    }
    assert _post(web, connection, {"event": "GiftCreate", "gift": gift}).status_code == 200
    assert _post(web, connection, {"event": "GiftCreate", "gift": gift}).status_code == 200  # redelivery
    inbound_drain(seconds=0)
    item = OutboundItem.objects.get()
    assert (item.state, item.virtuous_id) == ("confirmed", "991")
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "processed",
        "duplicate",
    ]


def test_changes_made_elsewhere_confirm_nothing(web, tenant, connection):
    outbound_enqueue(tenant=tenant, request=gift_request(1, source="Giftline"), origin=Origin.WEBHOOK)
    _post(
        web,
        connection,
        {"event": "GiftCreate", "gift": {"id": 5, "transactionSource": "Other", "transactionId": "pi_1"}},
    )
    inbound_drain(seconds=0)
    assert OutboundItem.objects.get().state == "pending"
    event = InboundEvent.objects.get()
    assert event.result == {"origin": "elsewhere", "confirmed": 0}


def test_contact_create_with_our_reference_confirms_the_contact_item(web, tenant, connection):
    from integrations.types import Operation, OutboundRequest

    outbound_enqueue(
        tenant=tenant,
        request=OutboundRequest(
            Operation.CONTACT_TRANSACTION,
            "Giftline",
            "donor-1",
            {"referenceSource": "Giftline", "referenceId": "donor-1"},
        ),
        origin=Origin.WEBHOOK,
    )
    contact = {
        "id": 44,
        "contactReferences": [{"source": "Giftline", "id": "donor-1"}, {"source": "Mailchimp", "id": "x"}],
    }
    _post(web, connection, {"event": "ContactCreate", "contact": contact})
    inbound_drain(seconds=0)
    assert OutboundItem.objects.get().virtuous_id == "44"


def test_tenant_signature_settings_are_honoured(web, tenant, connection):
    tenant.virtuous_signature_header = "X-Hook-Sig"
    tenant.virtuous_signature_encoding = "base64"
    tenant.save()
    payload = {"event": "ContactUpdate", "contact": {"id": 1}}
    assert _post(web, connection, payload, encoding="base64", header="X-Hook-Sig").status_code == 200
    assert _post(web, connection, payload, encoding="hex", header="X-Hook-Sig").status_code == 400
    assert _post(web, connection, payload, encoding="base64").status_code == 400  # default header absent


def test_unhandled_virtuous_events_are_acknowledged_and_ignored(web, connection):
    assert _post(web, connection, {"event": "ProjectUpdate", "project": {"id": 3}}).status_code == 200
    assert InboundEvent.objects.get().status == "ignored"


def test_another_tenants_secret_does_not_verify(web, connection, other_tenant):
    other = virtuous_connection_get_or_create(tenant=other_tenant)
    credential_set(
        tenant=other_tenant, platform="virtuous", purpose="webhook_secret", secret="bravo-secret-different"
    )
    assert _post(web, other, {"event": "GiftCreate", "gift": {"id": 1}}).status_code == 400
    assert InboundEvent.objects.get().tenant == other_tenant
