"""Webhook subscriptions and signed deliveries, checked with our own HMAC in the test."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from decimal import Decimal

import pytest
import requests
import responses

from integrations.sandbox import services
from integrations.sandbox.models import SandboxWebhook
from tests.integrations.sandbox.conftest import contact_item, counters, gift_item

HOOK_URL = "https://receiver.example.org/hooks/virtuous"
SECRET = "whsec-" + "k" * 40


def _subscribe(api, **toggles):
    body = {"payloadUrl": HOOK_URL, "secret": SECRET, "active": True, **toggles}
    response = api.post("Webhook", body)
    assert response.status_code == 200
    return response.json()


def _expected_signature(body: bytes, encoding: str) -> str:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode() if encoding == "base64" else digest.hexdigest()


def test_subscription_create_get_update_activate_delete(api, org):
    created = _subscribe(api, giftCreate=True, contactCreate=True)
    assert created["giftCreate"] is True and created["giftUpdate"] is False and created["active"] is True
    assert "secret" not in created
    assert api.get(f"Webhook/{created['id']}").json() == created

    updated = api.put(f"Webhook/{created['id']}", {"payloadUrl": HOOK_URL, "contactUpdate": True}).json()
    assert (updated["giftCreate"], updated["contactCreate"], updated["contactUpdate"]) == (False, False, True)
    assert SandboxWebhook.objects.get().secret == SECRET  # not sent, so kept

    paused = api.put(f"Webhook/{created['id']}/Active", active="false").json()
    assert paused["active"] is False
    assert api.put(f"Webhook/{created['id']}/Active", active="maybe").status_code == 400

    assert api.call("DELETE", f"Webhook/{created['id']}").status_code == 200
    assert api.get(f"Webhook/{created['id']}").status_code == 404
    assert counters(org)["writes_total"] == 4


def test_subscription_validation(api):
    assert api.post("Webhook", {"payloadUrl": "ftp://x", "secret": "s"}).status_code == 400
    assert api.post("Webhook", {"payloadUrl": HOOK_URL}).status_code == 400
    assert not SandboxWebhook.objects.exists()


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@responses.activate
def test_batch_fires_signed_observed_webhooks(api, org, encoding):
    org.webhook_signature_encoding = encoding
    org.save()
    responses.post(HOOK_URL, status=200)
    _subscribe(api, contactCreate=True, giftCreate=True)
    api.post("Contact/Transaction", contact_item())
    api.post("v2/Gift/Transaction", gift_item())
    assert len(responses.calls) == 0  # nothing fires while held

    result = services.sandbox_batch_run(organization=org)

    assert (result["webhooks_sent"], result["webhooks_failed"]) == (2, 0)
    bodies = []
    for call in responses.calls:
        raw = call.request.body
        assert call.request.headers["X-Virtuous-Signature"] == _expected_signature(raw, encoding)
        bodies.append(json.loads(raw))
    assert [b["event"] for b in bodies] == ["ContactCreate", "GiftCreate"]
    assert bodies[0]["contact"]["contactReferences"] == [{"source": "Giftline", "id": "cus_1"}]
    gift = bodies[1]["gift"]
    assert (gift["transactionSource"], gift["transactionId"], gift["amount"]) == ("Giftline", "ch_1", "25.00")
    assert gift["contactId"] == bodies[0]["contact"]["id"]
    assert counters(org)["webhooks_sent"] == 2


@responses.activate
def test_envelope_style_and_custom_header(api, org):
    org.webhook_payload_style = "envelope"
    org.webhook_signature_header = "X-Signature"
    org.save()
    responses.post(HOOK_URL, status=204)
    _subscribe(api, contactCreate=True)
    api.post("Contact", {"name": "Direct"})  # direct creates fire at once
    (call,) = responses.calls
    body = json.loads(call.request.body)
    assert call.request.headers["X-Signature"] == _expected_signature(call.request.body, "hex")
    assert "X-Virtuous-Signature" not in call.request.headers
    assert body["eventType"] == "contact.created" and body["organizationId"] == org.pk
    assert uuid.UUID(body["eventId"]) and body["timestamp"].endswith("Z")
    assert body["data"]["name"] == "Direct"


@responses.activate
def test_only_subscribed_active_hooks_receive_and_failures_are_counted(api, org):
    responses.post(HOOK_URL, status=500)
    responses.post("https://down.example.org/hook", body=requests.ConnectionError("refused"))
    _subscribe(api, giftCreate=True)
    api.post("Webhook", {"payloadUrl": "https://down.example.org/hook", "secret": "s", "giftCreate": True})
    api.post(
        "Webhook",
        {"payloadUrl": "https://paused.example.org/", "secret": "s", "giftCreate": True, "active": False},
    )
    api.post(
        "Webhook", {"payloadUrl": "https://contacts-only.example.org/", "secret": "s", "contactUpdate": True}
    )
    contact = services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    services.sandbox_gift_create(
        organization=org, contact_id=contact.pk, amount=Decimal("5.00"), gift_date=dt.date(2026, 1, 1)
    )
    assert [c.request.url for c in responses.calls] == [HOOK_URL, "https://down.example.org/hook"]
    c = counters(org)
    assert (c["webhooks_sent"], c["webhooks_failed"]) == (0, 2)


@responses.activate
def test_ui_edit_and_merge_fire_contact_update(api, org):
    responses.post(HOOK_URL, status=200)
    keep = services.sandbox_contact_create(organization=org, body={"name": "Keep"})
    gone = services.sandbox_contact_create(organization=org, body={"name": "Gone"})
    _subscribe(api, contactUpdate=True)

    services.sandbox_contact_edit(organization=org, contact_id=keep.pk, changes={"name": "Kept"})
    services.sandbox_contacts_merge(organization=org, survivor_id=keep.pk, merged_id=gone.pk)

    events = [json.loads(c.request.body) for c in responses.calls]
    assert [(e["event"], e["contact"]["id"]) for e in events] == [
        ("ContactUpdate", keep.pk),
        ("ContactUpdate", gone.pk),
        ("ContactUpdate", keep.pk),
    ]
    assert events[0]["contact"]["name"] == "Kept"
    assert events[1]["contact"]["mergedIntoContactId"] == keep.pk


@responses.activate
def test_private_payload_url_is_refused_when_not_allowed(api, org, settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    api.post("Webhook", {"payloadUrl": "http://127.0.0.1:9/hook", "secret": "s", "contactCreate": True})
    services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    assert len(responses.calls) == 0
    assert counters(org)["webhooks_failed"] == 1


@responses.activate
def test_other_organisations_hooks_never_fire(api, other_api, org):
    responses.post(HOOK_URL, status=200)
    other_api.post("Webhook", {"payloadUrl": HOOK_URL, "secret": "s", "contactCreate": True})
    services.sandbox_contact_create(organization=org, body={"name": "Ada"})
    assert len(responses.calls) == 0
    assert other_api.get(f"Webhook/{SandboxWebhook.objects.get().pk}").status_code == 200
    assert api.get(f"Webhook/{SandboxWebhook.objects.get().pk}").status_code == 404
