"""Stripe → the Virtuous sandbox, end to end over HTTP: signed events posted to the webhook URL
become gifts, a refund becomes a reversing gift once its gift exists, and nothing is doubled."""

import json
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.common.http import HttpSession, http_session
from integrations.models import InboundEvent
from integrations.sandbox.models import SandboxCounters, SandboxGift
from integrations.sandbox.services import sandbox_batch_run, sandbox_org_create
from integrations.stripe import webhooks
from sync.inbound.drain import inbound_drain
from sync.models import OutboundItem
from sync.outbound.drain import outbound_drain
from tenants.services import credential_set
from tests.integrations.conftest import fixture_json

SECRET = "whsec_alpha_end_to_end_0001"
PI = "pi_3QpI7nK2aXc0A1b21TqB9wZx"
SUB_PI = "pi_3QpJ0bK2aXc0A1b20Sub1Pay"


@pytest.fixture
def no_keep_alive(monkeypatch):
    """Every call drops its connection afterwards, so the live server's request threads (and the
    database connections they hold) end with each request instead of outliving the test database."""
    original = HttpSession.request

    def request(self, method, url, *args, **kwargs):
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Connection": "close"}
        try:
            return original(self, method, url, *args, **kwargs)
        finally:
            self.close()

    monkeypatch.setattr(HttpSession, "request", request)


def _subscription_payment_intent() -> dict:
    """The payment_intent.succeeded Stripe sends beside invoice.paid for the same payment."""
    event = fixture_json("stripe", "payment_intent.succeeded.json")
    event["id"] = "evt_3QpJ0bK2aXc0A1b20PiSub01"
    event["data"]["object"].update(
        id=SUB_PI,
        amount=2000,
        amount_received=2000,
        customer="cus_SbT2bC3dE4fG5h",
        receipt_email="grace@example.org",
        description="Subscription creation",
    )
    return event


@pytest.mark.slow
def test_signed_stripe_events_become_sandbox_gifts_and_refunds_reverse_them(
    transactional_db, live_server, no_keep_alive, tenant, other_tenant, make_connection
):
    org, token = sandbox_org_create(name="Alpha Food Bank")
    tenant.virtuous_base_url = f"{live_server.url}/sandbox/virtuous"
    tenant.save()
    credential_set(tenant=tenant, platform="virtuous", purpose="api_token", secret=token)
    connection = make_connection(tenant, "stripe", secret=SECRET)
    connection.project_code_map = {"winter-2026": "WINTER"}
    connection.save()

    invoice = fixture_json("stripe", "invoice.paid.json")
    invoice["data"]["object"].update(customer="cus_SbT2bC3dE4fG5h", customer_email="grace@example.org")
    invoice["data"]["object"]["customer_name"] = "Grace Hopper"
    events = [
        fixture_json("stripe", "payment_intent.succeeded.json"),
        fixture_json("stripe", "charge.refunded.json"),  # the refund arrives before the gift exists
        _subscription_payment_intent(),
        invoice,  # the same payment again, as the subscription's invoice
    ]
    session = http_session()
    url = f"{live_server.url}/hooks/{connection.webhook_token}/"
    for event in events:
        body = json.dumps(event).encode()
        header = webhooks.sign(body, SECRET, int(time.time()))
        response = session.post(
            url, data=body, headers={"Content-Type": "application/json", "Stripe-Signature": header}
        )
        assert response.status_code == 200, response.text

    assert inbound_drain(seconds=0) == {"processed": 4}
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 2

    first = outbound_drain(tenant=tenant)
    assert (first.submitted, first.dead) == (4, 0)
    waiting = OutboundItem.objects.get(operation="reversing_transaction")
    assert waiting.state == "pending" and "not in Virtuous yet" in waiting.last_error  # deferred
    sandbox_batch_run(organization=org)
    # The deferral's wait (OUTBOUND_DEFER_SECONDS) has passed.
    OutboundItem.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    second = outbound_drain(tenant=tenant)
    assert second.submitted == 1 and second.dead == 0
    sandbox_batch_run(organization=org)

    gift = SandboxGift.objects.get(organization=org, transaction_source="Stripe", transaction_id=PI)
    assert (gift.amount, gift.gift_type, gift.currency) == (Decimal("50.00"), "Credit", "USD")
    assert gift.designations[0]["projectCode"] == "WINTER"
    reversal = SandboxGift.objects.get(organization=org, reversed_gift=gift)
    assert reversal.amount == Decimal("-50.00") and reversal.gift_type == "ReversingTransaction"
    subscription_gift = SandboxGift.objects.get(organization=org, transaction_id=SUB_PI)
    assert subscription_gift.amount == Decimal("20.00")
    assert SandboxGift.objects.filter(organization=org).count() == 3
    counters = SandboxCounters.objects.get(organization=org)
    assert counters.duplicate_submissions == 0
    assert not OutboundItem.objects.exclude(state="submitted").exists()
    assert not InboundEvent.objects.filter(tenant=other_tenant).exists()
