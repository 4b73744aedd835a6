"""Bad webhook input: every kind gets a clear error, is recorded, and changes nothing else.

Donorbox (signed JSON) stands for the signed providers here; each provider's own signature
scheme has its own tests beside it. The generic refusals (no signature, wrong content type,
too big) run against every provider.
"""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse

from integrations.donorbox import webhooks
from integrations.models import InboundEvent
from integrations.registry import provider_get, provider_keys
from integrations.services import connection_create
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from tenants.services import credential_set
from tests.integrations.conftest import fixture_bytes

SECRET_A = "dbx_tenant_a_signing_secret"
SECRET_B = "dbx_tenant_b_signing_secret"
BODY = fixture_bytes("donorbox", "donation.created.v1.json")


def _connection(tenant, provider: str, secret: str):
    mode = provider_get(provider).capture_modes[-1]
    connection = connection_create(
        tenant=tenant, provider=provider, capture_mode=mode, default_project_code="GEN"
    )
    platform = provider_get(provider).credential_platform
    credential_set(
        tenant=tenant,
        platform=platform,
        purpose="webhook_secret",
        secret=secret,
        scope=connection.credential_scope,
    )
    return connection


@pytest.fixture
def hooks(tenant, other_tenant):
    return _connection(tenant, "donorbox", SECRET_A), _connection(other_tenant, "donorbox", SECRET_B)


def _post(client, connection, body: bytes, *, signature: str | None, content_type="application/json"):
    headers = {"HTTP_DONORBOX_SIGNATURE": signature} if signature is not None else {}
    url = reverse("integrations:receive", args=[connection.webhook_token])
    return client.post(url, data=body, content_type=content_type, **headers)


def _signed(body: bytes, secret: str = SECRET_A, *, age: int = 0) -> str:
    return webhooks.sign(body, secret, int(time.time()) - age)


def _donation(**changes) -> bytes:
    donation = json.loads(BODY)
    donation[0].update(changes)
    return json.dumps(donation).encode()


CASES = {
    # name: (body, signature factory, content type, status, recorded status, words in the reason)
    "missing signature": (BODY, lambda b: None, "application/json", 400, "rejected", "missing"),
    "bad signature": (
        BODY,
        lambda b: f"{int(time.time())},{'0' * 64}",
        "application/json",
        400,
        "rejected",
        "Signature",
    ),
    "garbage signature": (
        BODY,
        lambda b: "not-a-signature",
        "application/json",
        400,
        "rejected",
        "Signature",
    ),
    "stale signature": (
        BODY,
        lambda b: _signed(b, age=3600),
        "application/json",
        400,
        "rejected",
        "tolerance",
    ),
    "another tenant's secret": (
        BODY,
        lambda b: _signed(b, SECRET_B),
        "application/json",
        400,
        "rejected",
        "Signature",
    ),
    "malformed JSON": (b'{"id": 1, "amount": ', _signed, "application/json", 400, "malformed", "JSON"),
    "form body": (
        b"id=1&amount=5",
        _signed,
        "application/x-www-form-urlencoded",
        415,
        "rejected",
        "Content type",
    ),
    "wrong content type": (BODY, _signed, "text/plain", 415, "rejected", "Content type"),
    "no content type": (BODY, _signed, "", 415, "rejected", "Content type"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_deliveries_get_a_clear_error_are_recorded_and_change_nothing(client, hooks, other_tenant, name):
    body, sign, content_type, status, recorded, words = CASES[name]
    mine, theirs = hooks

    response = _post(client, mine, body, signature=sign(body), content_type=content_type)

    assert response.status_code == status
    assert words.lower() in response.json()["detail"].lower()
    event = InboundEvent.objects.get()
    assert (event.connection, event.status) == (mine, recorded)
    assert words.lower() in event.status_reason.lower()
    assert inbound_drain(seconds=0) == {}
    assert not OutboundItem.objects.exists()


def test_a_valid_signature_posted_to_another_tenants_url_is_refused_there(
    client, hooks, tenant, other_tenant
):
    mine, theirs = hooks
    response = _post(client, theirs, BODY, signature=_signed(BODY, SECRET_A))
    assert response.status_code == 400
    event = InboundEvent.objects.get()
    assert (event.tenant, event.status, event.signature_valid) == (other_tenant, "rejected", False)
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()
    assert not InboundEvent.objects.filter(tenant=tenant).exists()


def test_an_unknown_webhook_url_is_404_and_records_nothing(client, hooks):
    import uuid

    response = client.post(
        reverse("integrations:receive", args=[uuid.uuid4()]), data=BODY, content_type="application/json"
    )
    assert response.status_code == 404 and "unknown" in response.json()["error"]
    assert not InboundEvent.objects.exists()


def test_a_body_over_the_limit_is_413_and_recorded_without_its_body(client, hooks, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    mine, _ = hooks
    body = _donation(comment="x" * 5000)
    response = _post(client, mine, body, signature=_signed(body))
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    event = InboundEvent.objects.get()
    assert event.status == "rejected" and bytes(event.body) == b"" and event.body_size == len(body)
    assert not OutboundItem.objects.exists()


def test_an_unknown_event_type_is_acknowledged_recorded_and_ignored(client, hooks):
    mine, _ = hooks
    body = json.dumps([{"action": "teleport", "id": 5}]).encode()
    response = _post(client, mine, body, signature=_signed(body))
    assert response.status_code in (200, 400)
    event = InboundEvent.objects.get()
    assert event.status in ("ignored", "malformed") and event.status_reason
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()


@pytest.mark.parametrize(
    "changes,status,reason",
    [
        ({"amount": "-5.00"}, "needs_review", "positive"),
        ({"amount": "0"}, "needs_review", "positive"),
        ({"amount": "10.005"}, "needs_review", "amount"),
        ({"amount": "ten dollars"}, "malformed", "amount"),
        ({"amount": None}, "needs_review", "amount"),
        ({"currency": "ZZZ"}, None, None),
        ({"donation_date": "0001-01-01T00:00:00Z"}, None, None),
        ({"donation_date": "9999-12-31T23:59:59Z"}, None, None),
        ({"donation_date": "not a date"}, "malformed_at_capture", "not a date"),
        ({"comment": "名前 🎁 \u202e" + "x" * 20000}, None, None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_odd_values_are_mapped_or_refused_whole_never_half_written(client, hooks, changes, status, reason):
    mine, _ = hooks
    body = _donation(**changes)
    captured = _post(client, mine, body, signature=_signed(body))
    if status == "malformed_at_capture":  # refused at the door, but kept with the reason
        assert captured.status_code == 400 and reason in captured.json()["detail"].lower()
        assert InboundEvent.objects.get().status == "malformed" and not OutboundItem.objects.exists()
        return
    assert captured.status_code == 200

    inbound_drain(seconds=0)

    event = InboundEvent.objects.get()
    assert event.attempts == 1  # decided at once, never retried into "failed"
    items = OutboundItem.objects.all()
    if status:
        assert event.status == status and reason in event.status_reason.lower()
        assert not items.exists()  # nothing half-enqueued: no contact without its gift
    else:
        assert event.status in ("processed", "needs_review", "malformed"), event.status_reason
        if event.status == "processed":
            assert {i.operation for i in items} == {"contact_transaction", "gift_transaction"}
        else:
            assert not items.exists() and event.status_reason


@pytest.mark.parametrize("key", [k for k in provider_keys() if k != "virtuous"])
def test_every_provider_refuses_unsigned_mistyped_and_oversized_bodies(client, tenant, key, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 4096
    connection = _connection(tenant, key, f"{key}-secret-value")
    url = reverse("integrations:receive", args=[connection.webhook_token])
    accepted = provider_get(key).content_types[0] or "application/json"
    for body, content_type, expected in (
        (b'{"type": "x", "id": 1}', accepted, (400, 401, 403)),
        (b"{}", "text/html", (415,)),
        (b"{" + b" " * 5000 + b"}", accepted, (413,)),
    ):
        response = client.post(url, data=body, content_type=content_type)
        assert response.status_code in expected, (key, content_type, response.status_code)
    assert InboundEvent.objects.filter(connection=connection, status="rejected").count() == 3
    inbound_drain(seconds=0)
    assert not OutboundItem.objects.exists()
