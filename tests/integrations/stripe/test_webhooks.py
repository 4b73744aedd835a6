import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.urls import reverse

from integrations.models import InboundEvent
from integrations.stripe import webhooks
from integrations.stripe.mapping import HANDLERS
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tenants.services import credential_set
from tests.integrations.conftest import FIXTURES, fixture_bytes

SECRET = "whsec_alpha_current_0001"
OLD_SECRET = "whsec_alpha_previous_0002"


@pytest.fixture
def connection(tenant, make_connection):
    c = make_connection(tenant, "stripe", secret=SECRET)
    c.project_code_map = {"winter-2026": "WINTER"}
    c.save()
    return c


def _post(
    client, connection, body: bytes, *, secret=SECRET, ts=None, header=None, content_type="application/json"
):
    ts = ts or int(time.time())
    headers = {} if header == "" else {"HTTP_STRIPE_SIGNATURE": header or webhooks.sign(body, secret, ts)}
    url = reverse("integrations:receive", args=[connection.webhook_token])
    return client.post(url, data=body, content_type=content_type, **headers)


def _independent_header(body: bytes, ts: int, *secrets: str) -> str:
    """Stripe's scheme computed by hand (not by the library): one v1 per secret, plus a v0."""
    signed = f"{ts}.".encode() + body
    parts = [f"t={ts}", "v0=" + "0" * 64]
    parts += [f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def test_valid_event_is_stored_raw_deduped_on_event_id_and_acknowledged(client, connection, other_tenant):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    response = _post(client, connection, body)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body
    assert (event.status, event.event_type, event.signature_valid) == (
        "pending",
        "payment_intent.succeeded",
        True,
    )
    assert event.dedupe_key == "evt_3QpI7nK2aXc0A1b21xUe0pSq"
    assert event.headers["Stripe-Signature"] == "[redacted]"
    assert event.tenant == connection.tenant and not InboundEvent.objects.filter(tenant=other_tenant).exists()
    assert not OutboundItem.objects.exists()  # nothing but capture happens in the request


def test_header_computed_independently_verifies_even_with_several_v1(client, connection):
    body = fixture_bytes("stripe", "charge.refunded.json")
    header = _independent_header(body, int(time.time()), "whsec_someone_else", SECRET)
    assert _post(client, connection, body, header=header).status_code == 200
    assert InboundEvent.objects.get().signature_valid is True


def test_rotation_a_pending_secret_beside_the_active_one_verifies(client, connection, tenant):
    credential_set(
        tenant=tenant,
        platform="stripe",
        purpose="webhook_secret",
        secret=OLD_SECRET,
        scope=connection.credential_scope,
        activate=False,
    )
    assert (
        _post(client, connection, fixture_bytes("stripe", "invoice.paid.json"), secret=OLD_SECRET).status_code
        == 200
    )
    body = fixture_bytes("stripe", "checkout.session.completed.json")
    assert _post(client, connection, body, secret=SECRET).status_code == 200
    assert InboundEvent.objects.filter(signature_valid=True).count() == 2


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"secret": "whsec_wrong"}, "does not match any configured secret"),
        ({"ts": int(time.time()) - 301}, "outside the 300 s tolerance"),
        ({"header": ""}, "missing Stripe-Signature header"),
        ({"header": "t=notanumber,v1=abc"}, "malformed Stripe-Signature header"),
        ({"header": f"t={int(time.time())},v0=abc"}, "no v1 signature"),
    ],
)
def test_bad_signatures_are_refused_recorded_and_change_nothing(client, connection, kwargs, reason):
    response = _post(client, connection, fixture_bytes("stripe", "payment_intent.succeeded.json"), **kwargs)
    assert response.status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "rejected" and event.signature_valid is False
    assert reason in event.status_reason
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()


def test_tolerance_is_a_connection_setting_clamped_to_the_safe_range(client, connection):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    connection.settings = {"tolerance_seconds": 600}
    connection.save()
    assert _post(client, connection, body, ts=int(time.time()) - 500).status_code == 200
    # an hour (stored before settings were validated) is a replay window: it is used as 900 s
    connection.settings = {"tolerance_seconds": 3600}
    connection.save()
    assert _post(client, connection, body, ts=int(time.time()) - 1800).status_code == 400
    assert "outside the 900 s tolerance" in InboundEvent.objects.order_by("-id").first().status_reason


def test_tampered_body_is_refused(client, connection):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    header = webhooks.sign(body, SECRET, int(time.time()))
    response = _post(client, connection, body.replace(b'"amount": 5000', b'"amount": 500000'), header=header)
    assert response.status_code == 400
    assert "does not match" in InboundEvent.objects.get().status_reason


def test_body_that_is_not_utf8_is_refused_not_crashed(client, connection):
    body = b'{"id": "evt_\xff"}'
    response = _post(client, connection, body, header=f"t={int(time.time())},v1=" + "a" * 64)
    assert response.status_code == 400
    assert "not UTF-8" in InboundEvent.objects.get().status_reason


def test_valid_signature_on_another_tenants_url_is_refused(client, connection, other_tenant, make_connection):
    other = make_connection(other_tenant, "stripe", secret="whsec_bravo_secret")
    response = _post(client, other, fixture_bytes("stripe", "payment_intent.succeeded.json"), secret=SECRET)
    assert response.status_code == 400
    event = InboundEvent.objects.get()
    assert event.tenant == other_tenant and event.status == "rejected"
    assert not InboundEvent.objects.filter(tenant=connection.tenant).exists()


def test_connection_without_a_secret_refuses_everything(client, tenant, make_connection):
    bare = make_connection(tenant, "stripe")
    response = _post(client, bare, fixture_bytes("stripe", "payment_intent.succeeded.json"))
    assert response.status_code == 400
    assert "no webhook secret" in InboundEvent.objects.get().status_reason


def test_same_event_twice_is_one_event_and_one_gift(client, connection):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    assert _post(client, connection, body).status_code == 200
    assert _post(client, connection, body).status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_unknown_event_type_is_acknowledged_and_ignored(client, connection):
    body = json.dumps(
        {"id": "evt_x1", "object": "event", "type": "customer.updated", "created": 1, "data": {"object": {}}}
    ).encode()
    assert _post(client, connection, body).status_code == 200
    assert InboundEvent.objects.get().status == "ignored"


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1", "type": "payment_intent.succeeded", ',
        b"[]",
        b'{"type": "payment_intent.succeeded", "data": {"object": {}}}',
        b'{"id": "evt_1", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": "pi_1"}}',
    ],
)
def test_malformed_events_are_kept_for_inspection(client, connection, body):
    assert _post(client, connection, body).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "malformed" and bytes(event.body) == body


def test_wrong_content_type_and_oversize_are_refused(client, connection, settings):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    assert (
        _post(client, connection, body, content_type="application/x-www-form-urlencoded").status_code == 415
    )
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    assert _post(client, connection, body).status_code == 413
    assert list(InboundEvent.objects.values_list("status", flat=True)) == ["rejected", "rejected"]


def test_unknown_webhook_url_is_404(client, connection):
    url = reverse("integrations:receive", args=[uuid.uuid4()])
    assert client.post(url, data=b"{}", content_type="application/json").status_code == 404


def test_every_handled_event_type_has_a_fixture_and_no_fixture_is_unhandled():
    names = {p.name.removesuffix(".json") for p in (FIXTURES / "stripe" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
    for name in names:
        assert json.loads(fixture_bytes("stripe", f"{name}.json"))["type"] == name
