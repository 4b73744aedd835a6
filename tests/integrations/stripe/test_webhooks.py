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
from tests.integrations.conftest import FIXTURES, fixture_bytes

SECRET = "whsec_alpha_current_0001"
OLD_SECRET = "whsec_alpha_previous_0002"


@pytest.fixture
def case(webhook_case):
    return webhook_case("stripe", SECRET, project_code_map={"winter-2026": "WINTER"})


@pytest.fixture
def connection(case):
    return case.connection


def _post(case, body: bytes, *, connection=None, secret=SECRET, ts=None, header=None, content_type=None):
    ts = ts or int(time.time())
    headers = {} if header == "" else {"HTTP_STRIPE_SIGNATURE": header or webhooks.sign(body, secret, ts)}
    return case.post(body, connection=connection, headers=headers, content_type=content_type)


def _independent_header(body: bytes, ts: int, *secrets: str) -> str:
    """Stripe's scheme computed by hand (not by the library): one v1 per secret, plus a v0."""
    signed = f"{ts}.".encode() + body
    parts = [f"t={ts}", "v0=" + "0" * 64]
    parts += [f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def test_valid_event_is_stored_raw_deduped_on_event_id_and_acknowledged(case, connection, other_tenant):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    response = _post(case, body)
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


def test_header_computed_independently_verifies_even_with_several_v1(case):
    body = fixture_bytes("stripe", "charge.refunded.json")
    header = _independent_header(body, int(time.time()), "whsec_someone_else", SECRET)
    assert _post(case, body, header=header).status_code == 200
    assert InboundEvent.objects.get().signature_valid is True


def test_rotation_a_pending_secret_beside_the_active_one_verifies(case):
    case.add_pending_secret(OLD_SECRET)
    assert _post(case, fixture_bytes("stripe", "invoice.paid.json"), secret=OLD_SECRET).status_code == 200
    body = fixture_bytes("stripe", "checkout.session.completed.json")
    assert _post(case, body, secret=SECRET).status_code == 200
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
def test_bad_signatures_are_refused_recorded_and_change_nothing(case, kwargs, reason):
    case.assert_refused(
        _post(case, fixture_bytes("stripe", "payment_intent.succeeded.json"), **kwargs), reason
    )


def test_tolerance_is_a_connection_setting_clamped_to_the_safe_range(case, connection):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    connection.settings = {"tolerance_seconds": 600}
    connection.save()
    assert _post(case, body, ts=int(time.time()) - 500).status_code == 200
    # an hour (stored before settings were validated) is a replay window: it is used as 900 s
    connection.settings = {"tolerance_seconds": 3600}
    connection.save()
    assert _post(case, body, ts=int(time.time()) - 1800).status_code == 400
    assert "outside the 900 s tolerance" in InboundEvent.objects.order_by("-id").first().status_reason


def test_tampered_body_is_refused(case):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    header = webhooks.sign(body, SECRET, int(time.time()))
    response = _post(case, body.replace(b'"amount": 5000', b'"amount": 500000'), header=header)
    assert response.status_code == 400
    assert "does not match" in InboundEvent.objects.get().status_reason


def test_body_that_is_not_utf8_is_refused_not_crashed(case):
    body = b'{"id": "evt_\xff"}'
    response = _post(case, body, header=f"t={int(time.time())},v1=" + "a" * 64)
    assert response.status_code == 400
    assert "not UTF-8" in InboundEvent.objects.get().status_reason


def test_valid_signature_on_another_tenants_url_is_refused(case, connection):
    other = case.outsider("whsec_bravo_secret")
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    case.assert_outsider_refuses_our_signature(_post(case, body, connection=other, secret=SECRET))
    assert not InboundEvent.objects.filter(tenant=connection.tenant).exists()


def test_connection_without_a_secret_refuses_everything(case, tenant, make_connection):
    bare = make_connection(tenant, "stripe")
    response = _post(case, fixture_bytes("stripe", "payment_intent.succeeded.json"), connection=bare)
    assert response.status_code == 400
    assert "no webhook secret" in InboundEvent.objects.get().status_reason


def test_same_event_twice_is_one_event_and_one_gift(case):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    assert _post(case, body).status_code == 200
    assert _post(case, body).status_code == 200
    assert list(InboundEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "pending",
        "duplicate",
    ]
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 1


def test_unknown_event_type_is_acknowledged_and_ignored(case):
    body = json.dumps(
        {"id": "evt_x1", "object": "event", "type": "customer.updated", "created": 1, "data": {"object": {}}}
    ).encode()
    assert _post(case, body).status_code == 200
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
def test_malformed_events_are_kept_for_inspection(case, body):
    assert _post(case, body).status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "malformed" and bytes(event.body) == body


def test_wrong_content_type_and_oversize_are_refused(case, settings):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    assert _post(case, body, content_type="application/x-www-form-urlencoded").status_code == 415
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    assert _post(case, body).status_code == 413
    assert list(InboundEvent.objects.values_list("status", flat=True)) == ["rejected", "rejected"]


def test_unknown_webhook_url_is_404(client, case):
    url = reverse("integrations:receive", args=[uuid.uuid4()])
    assert client.post(url, data=b"{}", content_type="application/json").status_code == 404


def test_every_handled_event_type_has_a_fixture_and_no_fixture_is_unhandled():
    names = {p.name.removesuffix(".json") for p in (FIXTURES / "stripe" / "fixtures").glob("*.json")}
    assert set(HANDLERS) == names
    for name in names:
        assert json.loads(fixture_bytes("stripe", f"{name}.json"))["type"] == name
