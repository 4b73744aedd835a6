import time

import pytest
from django.urls import reverse

from integrations.donorbox import webhooks
from integrations.donorbox.mapping import HANDLERS
from integrations.models import InboundEvent
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tests.integrations.conftest import FIXTURES, fixture_bytes

SECRET = "dbx_sig_secret_current_0001"
OLD_SECRET = "dbx_sig_secret_previous_0002"


@pytest.fixture
def case(webhook_case):
    return webhook_case("donorbox", SECRET, project_code_map={"4411": "WINTER"})


@pytest.fixture
def connection(case):
    return case.connection


def _post(case, body: bytes, *, connection=None, secret=SECRET, ts=None, header=None, content_type=None):
    ts = ts or int(time.time())
    headers = {} if header == "" else {"HTTP_DONORBOX_SIGNATURE": header or webhooks.sign(body, secret, ts)}
    return case.post(body, connection=connection, headers=headers, content_type=content_type)


def test_valid_v1_donation_is_stored_raw_and_acknowledged(case):
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    response = _post(case, body)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body
    assert (event.status, event.event_type, event.signature_valid) == ("pending", "donation.created", True)
    assert event.dedupe_key == "donation:7771001:paid:0.00"
    assert event.headers["Donorbox-Signature"] == "[redacted]"
    assert not OutboundItem.objects.exists()  # nothing but capture happens in the request


def test_processing_maps_to_contact_and_gift_in_the_tenant_time_zone(case, tenant):
    tenant.virtuous_time_zone = "America/Chicago"
    tenant.save()
    _post(case, fixture_bytes("donorbox", "donation.created.v1.json"))
    assert inbound_drain(seconds=0) == {"processed": 1}
    gift = OutboundItem.objects.get(operation="gift_transaction")
    assert gift.external_id == "7771001" and gift.external_source == "Donorbox"
    assert gift.payload["amount"] == "50.00" and gift.payload["currencyCode"] == "USD"
    assert gift.payload["giftDate"] == "2026-11-20"  # 23:30 UTC is 17:30 in Chicago
    assert gift.payload["designations"] == [{"projectCode": "WINTER", "amountDesignated": "50.00"}]
    contact = OutboundItem.objects.get(operation="contact_transaction")
    assert (contact.external_id, contact.payload["email"]) == ("donor-90210", "ada@example.org")


def test_refund_becomes_a_reversing_transaction(case):
    _post(case, fixture_bytes("donorbox", "donation.created.v1.json"))
    _post(case, fixture_bytes("donorbox", "donation.updated.json"))
    inbound_drain(seconds=0)
    reversal = OutboundItem.objects.get(operation="reversing_transaction")
    assert reversal.payload["reversedTransaction"] == {
        "transactionSource": "Donorbox",
        "transactionId": "7771001",
    }
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_same_delivery_twice_is_one_event_and_one_item(case):
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    assert _post(case, body).status_code == 200
    assert _post(case, body).status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_rotated_secrets_both_verify(case):
    case.add_pending_secret(OLD_SECRET)
    body = fixture_bytes("donorbox", "plan.created.json")
    assert _post(case, body, secret=OLD_SECRET).status_code == 200
    assert _post(case, fixture_bytes("donorbox", "plan.updated.json"), secret=SECRET).status_code == 200


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"secret": "wrong-secret"}, "does not match"),
        ({"ts": int(time.time()) - 3600}, "tolerance"),
        ({"header": ""}, "missing Donorbox-Signature"),
        ({"header": "not-a-number,abc"}, "malformed signature"),
    ],
)
def test_bad_signatures_are_refused_recorded_and_change_nothing(case, kwargs, reason):
    response = _post(case, fixture_bytes("donorbox", "donation.created.v1.json"), **kwargs)
    case.assert_refused(response, reason)


def test_tampered_body_is_refused(case):
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    ts = int(time.time())
    header = webhooks.sign(body, SECRET, ts)
    response = _post(case, body.replace(b"50.00", b"5000.00"), header=header)
    assert response.status_code == 400


def test_valid_signature_on_another_tenants_url_is_refused(case):
    other = case.outsider("bravo-secret-xyz")
    response = _post(
        case, fixture_bytes("donorbox", "donation.created.v1.json"), connection=other, secret=SECRET
    )
    case.assert_outsider_refuses_our_signature(response)


def test_unknown_event_type_is_acknowledged_and_ignored(case):
    body = b'{"event_id": "evt_x", "event_name": "donor.merged", "donation": {"id": 1}}'
    assert _post(case, body).status_code == 200
    assert InboundEvent.objects.get().status == "ignored"


def test_malformed_json_is_kept_for_inspection(case):
    body = b'{"event_name": "donation.created", '
    assert _post(case, body).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "malformed" and bytes(event.body) == body


def test_wrong_content_type_and_oversize_are_refused(case, settings):
    body = fixture_bytes("donorbox", "donation.created.v1.json")
    assert _post(case, body, content_type="text/plain").status_code == 415
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    assert _post(case, body).status_code == 413
    assert list(InboundEvent.objects.values_list("status", flat=True)) == ["rejected", "rejected"]


def test_unknown_webhook_url_is_404_and_get_is_405(client, connection):
    import uuid

    assert (
        client.post(
            reverse("integrations:receive", args=[uuid.uuid4()]), data=b"{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert client.get(reverse("integrations:receive", args=[connection.webhook_token])).status_code == 405


def test_unmapped_project_without_default_goes_to_review(case, connection):
    connection.project_code_map = {}
    connection.default_project_code = ""
    connection.save()
    _post(case, fixture_bytes("donorbox", "donation.created.v1.json"))
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "needs_review" and "No Virtuous project code" in event.status_reason
    assert not OutboundItem.objects.exists()


def test_every_handled_event_type_has_a_fixture():
    names = {
        p.name.split(".json")[0].removesuffix(".v1")
        for p in (FIXTURES / "donorbox" / "fixtures").glob("*.json")
    }
    assert set(HANDLERS) == names
