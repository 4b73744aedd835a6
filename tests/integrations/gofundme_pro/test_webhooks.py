import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from svix.webhooks import Webhook

from integrations.gofundme_pro.mapping import HANDLERS
from integrations.models import InboundEvent
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tests.integrations.conftest import FIXTURES, fixture_bytes

SECRET = "whsec_" + base64.b64encode(b"giftline-gfm-current-key-01").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"giftline-gfm-previous-key-2").decode()


@pytest.fixture
def case(webhook_case):
    return webhook_case(
        "gofundme_pro", SECRET, default_project_code="", project_code_map={"40122": "P2P-RUN"}
    )


@pytest.fixture
def connection(case):
    return case.connection


def svix_headers(body: bytes, *secrets: str, msg_id="msg_2Nq8Lr0001", ts=None, prefix="svix") -> dict:
    """Sign with the official library, one signature per secret (as Svix does during a rotation)."""
    moment = datetime.fromtimestamp(ts or int(time.time()), tz=UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, moment, body.decode()) for s in secrets)
    return {
        f"HTTP_{prefix.upper()}_ID": msg_id,
        f"HTTP_{prefix.upper()}_TIMESTAMP": str(int(moment.timestamp())),
        f"HTTP_{prefix.upper()}_SIGNATURE": signatures,
    }


def _post(client, connection, body: bytes, headers: dict, content_type="application/json"):
    url = reverse("integrations:receive", args=[connection.webhook_token])
    return client.post(url, data=body, content_type=content_type, **headers)


def _send(client, connection, name: str, **kwargs):
    body = fixture_bytes("gofundme_pro", name)
    return _post(client, connection, body, svix_headers(body, SECRET, msg_id=f"msg_{name}", **kwargs))


def test_valid_delivery_is_stored_raw_with_svix_id_as_dedupe_key(client, connection):
    body = fixture_bytes("gofundme_pro", "transaction.created.json")
    response = _post(client, connection, body, svix_headers(body, SECRET))
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body
    assert (event.status, event.event_type, event.signature_valid) == ("pending", "transaction.created", True)
    assert event.dedupe_key == "svix:msg_2Nq8Lr0001"
    assert event.headers["Svix-Signature"] == "[redacted]"
    assert not OutboundItem.objects.exists()


def test_signature_computed_without_the_library_is_accepted(client, connection):
    """The documented algorithm by hand: HMAC-SHA256 over id.ts.body with the base64-decoded key."""
    body = fixture_bytes("gofundme_pro", "supporter.created.json")
    ts = str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_manual." + ts.encode() + b"." + body, hashlib.sha256).digest()
    headers = {
        "HTTP_SVIX_ID": "msg_manual",
        "HTTP_SVIX_TIMESTAMP": ts,
        "HTTP_SVIX_SIGNATURE": "v1," + base64.b64encode(digest).decode(),
    }
    assert _post(client, connection, body, headers).status_code == 200


def test_white_labelled_webhook_headers_are_accepted(client, connection):
    body = fixture_bytes("gofundme_pro", "supporter.created.json")
    assert _post(client, connection, body, svix_headers(body, SECRET, prefix="webhook")).status_code == 200
    assert InboundEvent.objects.get().dedupe_key == "svix:msg_2Nq8Lr0001"


def test_donation_maps_donor_fundraiser_team_and_gross_gift(client, connection, tenant):
    tenant.virtuous_time_zone = "America/Chicago"
    tenant.save()
    _send(client, connection, "transaction.created.json")
    assert inbound_drain(seconds=0) == {"processed": 1}
    gift = OutboundItem.objects.get(operation="gift_transaction")
    assert (gift.external_source, gift.external_id) == ("GoFundMe Pro", "88120345")
    assert gift.payload["amount"] == "100.00"  # gross, not the 96.80 net
    assert gift.payload["giftType"] == "Credit" and gift.payload["currencyCode"] == "USD"
    assert gift.payload["giftDate"] == "2026-11-20"  # 23:30 UTC is 17:30 in Chicago
    assert gift.payload["designations"] == [{"projectCode": "P2P-RUN", "amountDesignated": "100.00"}]
    assert gift.payload["customFields"] == {
        "Fundraiser Contact ID": "page-3301",
        "Fundraising Team Contact ID": "team-120",
        "Platform Fee": "3.20",
    }
    assert gift.payload["contact"]["referenceId"] == "supporter-5521009"
    contacts = {
        c.external_id: c.payload for c in OutboundItem.objects.filter(operation="contact_transaction")
    }
    assert set(contacts) == {"supporter-5521009", "page-3301", "team-120"}
    assert contacts["supporter-5521009"]["email"] == "grace@example.org"
    assert contacts["supporter-5521009"]["referenceSource"] == "GoFundMe Pro"
    assert "tags" not in contacts["supporter-5521009"]
    assert (contacts["page-3301"]["firstName"], contacts["page-3301"]["tags"]) == ("Ada", "Fundraiser")
    assert contacts["team-120"] == {
        "referenceSource": "GoFundMe Pro",
        "referenceId": "team-120",
        "contactType": "Organization",
        "name": "Analytical Engines",
        "tags": "Fundraiser",
    }


def test_refund_becomes_a_reversing_transaction_and_one_gift(client, connection):
    _send(client, connection, "transaction.created.json")
    _send(client, connection, "transaction.updated.json")
    inbound_drain(seconds=0)
    reversal = OutboundItem.objects.get(operation="reversing_transaction")
    assert reversal.external_id == "88120345-refund"
    assert reversal.payload["reversedTransaction"] == {
        "transactionSource": "GoFundMe Pro",
        "transactionId": "88120345",
    }
    assert reversal.payload["giftDate"] == "2026-11-23"
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_anonymous_donor_still_gets_a_tagged_contact(client, connection):
    data = json.loads(fixture_bytes("gofundme_pro", "transaction.created.json"))
    data["data"]["is_anonymous"] = True
    body = json.dumps(data).encode()
    _post(client, connection, body, svix_headers(body, SECRET))
    inbound_drain(seconds=0)
    donor = OutboundItem.objects.get(operation="contact_transaction", external_id="supporter-5521009")
    assert donor.payload["tags"] == "Anonymous Donor"
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_recurring_plan_is_created_then_cancelled(client, connection):
    _send(client, connection, "recurring_donation_plan.created.json")
    _send(client, connection, "recurring_donation_plan.updated.json")
    inbound_drain(seconds=0)
    schedule = OutboundItem.objects.get(operation="recurring_gift_create")
    assert schedule.external_id == "plan-61002"
    assert schedule.payload["contact"] == {
        "referenceSource": "GoFundMe Pro",
        "referenceId": "supporter-5521009",
        "email": "grace@example.org",
    }
    assert (schedule.payload["frequency"], schedule.payload["amount"]) == ("Monthly", "25.00")
    cancel = OutboundItem.objects.get(operation="recurring_gift_cancel")
    assert cancel.payload["recurringGiftTransaction"] == {
        "transactionSource": "GoFundMe Pro",
        "transactionId": "plan-61002",
    }


def test_supporter_events_update_the_contact(client, connection):
    _send(client, connection, "supporter.created.json")
    inbound_drain(seconds=0)
    contact = OutboundItem.objects.get(operation="contact_transaction")
    assert (contact.external_id, contact.payload["lastName"]) == ("supporter-5521010", "Kierkegaard")
    assert contact.payload["city"] == "København"


def test_same_message_twice_is_one_event_and_one_item(client, connection):
    body = fixture_bytes("gofundme_pro", "transaction.created.json")
    headers = svix_headers(body, SECRET)
    assert _post(client, connection, body, headers).status_code == 200
    assert _post(client, connection, body, headers).status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_rotation_pending_secret_and_several_signatures(client, case, connection):
    case.add_pending_secret(OLD_SECRET)
    body = fixture_bytes("gofundme_pro", "supporter.created.json")
    assert _post(client, connection, body, svix_headers(body, OLD_SECRET, msg_id="m1")).status_code == 200
    unknown = "whsec_" + base64.b64encode(b"some-other-endpoint-key").decode()
    both = svix_headers(body, unknown, SECRET, msg_id="m2")
    assert " " in both["HTTP_SVIX_SIGNATURE"]
    assert _post(client, connection, body, both).status_code == 200


def _tampered(body: bytes) -> tuple[bytes, dict]:
    return body.replace(b'"100.00"', b'"1000.00"'), svix_headers(body, SECRET)


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("wrong_secret", "does not match any configured secret"),
        ("tampered", "does not match any configured secret"),
        ("stale", "older than the 5-minute tolerance"),
        ("future", "more than 5 minutes in the future"),
        ("no_id", "missing svix-id"),
        ("no_timestamp", "missing svix-timestamp"),
        ("no_signature", "missing svix-signature"),
        ("garbled_signature", "malformed svix-signature"),
        ("garbled_timestamp", "malformed svix-timestamp"),
    ],
)
def test_bad_signatures_are_refused_recorded_and_change_nothing(client, connection, case, kind, reason):
    body = fixture_bytes("gofundme_pro", "transaction.created.json")
    headers = svix_headers(body, SECRET)
    if kind == "wrong_secret":
        headers = svix_headers(body, "whsec_" + base64.b64encode(b"not-our-key").decode())
    elif kind == "tampered":
        body, headers = _tampered(body)
    elif kind == "stale":
        headers = svix_headers(body, SECRET, ts=int(time.time()) - 301)
    elif kind == "future":
        headers = svix_headers(body, SECRET, ts=int(time.time()) + 600)
    elif kind.startswith("no_"):
        headers.pop(f"HTTP_SVIX_{kind.removeprefix('no_').upper()}")
    elif kind == "garbled_signature":
        headers["HTTP_SVIX_SIGNATURE"] = "v1"
    elif kind == "garbled_timestamp":
        headers["HTTP_SVIX_TIMESTAMP"] = "yesterday"
    case.assert_refused(_post(client, connection, body, headers), reason)


def test_an_unusable_configured_secret_is_reported(client, tenant, make_connection):
    broken = make_connection(tenant, "gofundme_pro", secret="whsec_!")
    body = fixture_bytes("gofundme_pro", "supporter.created.json")
    assert _post(client, broken, body, svix_headers(body, SECRET)).status_code == 400
    assert "no configured secret is a valid whsec_ secret" in InboundEvent.objects.get().status_reason


def test_valid_signature_on_another_tenants_url_is_refused(client, case, connection):
    other = case.outsider("whsec_" + base64.b64encode(b"bravo-endpoint-secret").decode())
    body = fixture_bytes("gofundme_pro", "transaction.created.json")
    case.assert_outsider_refuses_our_signature(_post(client, other, body, svix_headers(body, SECRET)))
    assert not InboundEvent.objects.filter(tenant=connection.tenant).exists()


def test_unknown_event_type_is_acknowledged_and_ignored(client, connection):
    body = b'{"type": "campaign.published", "data": {"id": 1}}'
    assert _post(client, connection, body, svix_headers(body, SECRET)).status_code == 200
    assert InboundEvent.objects.get().status == "ignored"


def test_malformed_json_is_kept_for_inspection(client, connection):
    body = b'{"type": "transaction.created", '
    assert _post(client, connection, body, svix_headers(body, SECRET)).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "malformed" and bytes(event.body) == body


def test_unmapped_campaign_goes_to_review_and_enqueues_nothing(client, connection):
    connection.project_code_map = {}
    connection.save()
    _send(client, connection, "transaction.created.json")
    inbound_drain(seconds=0)
    event = InboundEvent.objects.get()
    assert event.status == "needs_review" and "40122" in event.status_reason
    assert not OutboundItem.objects.exists()


def test_every_handled_event_type_has_a_fixture():
    names = {p.name.removesuffix(".json") for p in (FIXTURES / "gofundme_pro" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
