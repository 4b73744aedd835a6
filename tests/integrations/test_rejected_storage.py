"""Issue 14 §3: rejected deliveries keep a hash and a prefix, not the body; a flood of them is capped
per connection and minute but still counted; an oversized request is recorded with an empty body."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import InboundEvent, RejectedDeliveryCount
from integrations.services import rejected_delivery_count
from integrations.stripe import webhooks
from tests.integrations.conftest import fixture_bytes

SECRET = "whsec_alpha_current_0001"
BODY = fixture_bytes("stripe", "payment_intent.succeeded.json")


@pytest.fixture
def mine(tenant, make_connection):
    return make_connection(tenant, "stripe", secret=SECRET)


@pytest.fixture
def theirs(other_tenant, make_connection):
    return make_connection(other_tenant, "stripe", secret="whsec_bravo_0001")


def _post(client, connection, body=BODY, *, signature="", content_type="application/json", **extra):
    url = reverse("integrations:receive", args=[connection.webhook_token])
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return client.post(url, data=body, content_type=content_type, **headers, **extra)


def _forged(n: int = 0) -> str:
    return f"t={int(time.time())},v1={n:064x}"


def test_a_bad_signature_keeps_metadata_hash_and_prefix_not_the_body(client, mine, settings):
    settings.REJECTED_BODY_PREFIX_BYTES = 64
    response = _post(client, mine, signature=_forged(), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 400
    event = InboundEvent.objects.get()
    assert event.status == "rejected" and event.status_reason.startswith("Signature check failed")
    assert bytes(event.body) == BODY[:64]
    assert event.body_sha256 == hashlib.sha256(BODY).hexdigest() and event.body_size == len(BODY)
    assert event.remote_addr == "203.0.113.9" and event.headers["Stripe-Signature"] == "[redacted]"


def test_a_wrong_content_type_keeps_only_the_prefix(client, mine, settings):
    settings.REJECTED_BODY_PREFIX_BYTES = 10
    signature = webhooks.sign(BODY, SECRET, int(time.time()))
    assert _post(client, mine, signature=signature, content_type="text/plain").status_code == 415
    event = InboundEvent.objects.get()
    assert (bytes(event.body), event.body_size) == (BODY[:10], len(BODY))


def test_an_oversized_request_is_recorded_empty_with_its_reason_not_a_filler(client, mine, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    big = b"{" + b" " * 5000 + b"}"
    response = _post(client, mine, big, signature=webhooks.sign(big, SECRET, int(time.time())))
    assert response.status_code == 413
    event = InboundEvent.objects.get()
    assert bytes(event.body) == b"" and event.body_sha256 == ""
    assert event.body_size == len(big)
    assert event.status_reason == f"Body of {len(big)} bytes is over the 100-byte limit"


def test_a_content_length_that_is_not_a_number_is_no_500(client, mine):
    response = _post(client, mine, signature=_forged(), CONTENT_LENGTH="abc")
    assert response.status_code in (400, 415)
    assert InboundEvent.objects.get().status == "rejected"


def test_an_accepted_delivery_is_kept_whole_with_its_hash(client, mine):
    assert _post(client, mine, signature=webhooks.sign(BODY, SECRET, int(time.time()))).status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == BODY and event.body_sha256 == hashlib.sha256(BODY).hexdigest()


def test_a_flood_from_one_address_is_capped_per_connection_and_minute_but_counted(
    client, mine, theirs, settings
):
    settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE = 3
    minute = timezone.now().replace(second=5, microsecond=0)
    with mock.patch("integrations.services.timezone.now", return_value=minute):
        statuses = {_post(client, mine, signature=_forged(n)).status_code for n in range(10)}
        statuses |= {_post(client, theirs, signature=_forged(n)).status_code for n in range(2)}
    assert statuses == {400}  # every one is answered the same way
    assert InboundEvent.objects.filter(connection=mine).count() == 3
    count = RejectedDeliveryCount.objects.get(connection=mine)
    assert (count.received, count.stored, count.not_stored) == (10, 3, 7)
    assert count.last_reason.startswith("Signature check failed") and count.tenant_id == mine.tenant_id
    # the outsider's connection has its own allowance and counter
    assert InboundEvent.objects.filter(connection=theirs).count() == 2
    assert RejectedDeliveryCount.objects.get(connection=theirs).received == 2
    # the next minute stores again
    with mock.patch("integrations.services.timezone.now", return_value=minute + timedelta(minutes=1)):
        response = _post(client, mine, signature=_forged(99))
    assert response.status_code == 400 and response.json()["id"]
    assert InboundEvent.objects.filter(connection=mine).count() == 4


def test_a_delivery_over_the_cap_answers_without_an_event_id(client, mine, settings):
    settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE = 0
    response = _post(client, mine, signature=_forged())
    assert response.status_code == 400
    assert response.json() == {
        "status": "rejected",
        "id": None,
        "detail": "Signature check failed: signature does not match any configured secret",
    }
    assert not InboundEvent.objects.exists()
    assert RejectedDeliveryCount.objects.get().received == 1


def test_valid_deliveries_are_never_capped(client, mine, settings):
    settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE = 0
    for n in range(3):
        body = BODY.replace(b"evt_3QpI7nK2aXc0A1b21xUe0pSq", f"evt_{n}".encode())
        assert (
            _post(client, mine, body, signature=webhooks.sign(body, SECRET, int(time.time()))).status_code
            == 200
        )
    assert InboundEvent.objects.filter(status="pending").count() == 3


def test_the_counter_claims_slots_by_conditional_update(mine, settings):
    settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE = 2
    now = timezone.now()
    verdicts = [
        rejected_delivery_count(connection=mine, reason="r", remote_addr=None, now=now) for _ in range(4)
    ]
    assert verdicts == [True, True, False, False]


def test_the_connection_admin_shows_the_rejected_counts(client, superuser, mine, settings):
    settings.REJECTED_STORED_PER_CONNECTION_PER_MINUTE = 1
    for n in range(3):
        _post(client, mine, signature=_forged(n))
    client.force_login(superuser)
    page = client.get(reverse("admin:integrations_connection_change", args=[mine.pk]))
    assert b"3 rejected, 1 recorded as events, 2 only counted (over the cap)" in page.content
    listing = client.get(reverse("admin:integrations_rejecteddeliverycount_changelist"))
    assert listing.status_code == 200 and b"Signature check failed" in listing.content
