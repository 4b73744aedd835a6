import time
from datetime import timedelta

import pytest
import responses
import stripe
from django.urls import reverse
from django.utils import timezone

from integrations.models import InboundEvent
from integrations.stripe import webhooks
from integrations.stripe.client import StripeSourceError
from sync.inbound.drain import inbound_drain
from sync.inbound.polling import checkpoint_load, connection_poll
from sync.models import OutboundItem, SyncCheckpoint
from tenants.services import credential_set
from tests.integrations.conftest import fixture_bytes, fixture_json
from tests.integrations.stripe.fake_stripe import FakeStripe, charge

SECRET = "whsec_alpha_current_0001"
API_KEY = "rk_test_alpha_read_only_0001"
PI = "pi_3QpI7nK2aXc0A1b21TqB9wZx"
NOW = int(time.time())


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake(rsps):
    return FakeStripe(rsps)


def _stripe_connection(tenant, make_connection, key: str, secret: str):
    c = make_connection(tenant, "stripe", secret=secret, capture_mode="hybrid")
    c.project_code_map = {"winter-2026": "WINTER"}
    c.settings = {"max_network_retries": 0}
    c.save()
    credential_set(
        tenant=tenant, platform="stripe", purpose="api_token", secret=key, scope=c.credential_scope
    )
    return c


@pytest.fixture
def connection(tenant, make_connection):
    return _stripe_connection(tenant, make_connection, API_KEY, SECRET)


def _poll(connection):
    connection.refresh_from_db()
    return connection_poll(connection=connection)


def _recent(name: str, created: int) -> dict:
    """A fixture event moved into Stripe's 30-day window."""
    event = fixture_json("stripe", name)
    event["created"] = created
    return event


def test_webhook_and_both_poll_resources_of_one_donation_make_one_gift(client, connection, fake):
    body = fixture_bytes("stripe", "payment_intent.succeeded.json")
    url = reverse("integrations:receive", args=[connection.webhook_token])
    signed = {"HTTP_STRIPE_SIGNATURE": webhooks.sign(body, SECRET, int(time.time()))}
    assert client.post(url, data=body, content_type="application/json", **signed).status_code == 200
    fake.add("events", fixture_json("stripe", "payment_intent.succeeded.json"))
    the_charge = fixture_json("stripe", "charge.refunded.json")["data"]["object"]
    the_charge.update(refunded=False, amount_refunded=0, refunds=None)
    fake.add("charges", the_charge)

    assert _poll(connection) == {"seen": 2, "new": 1}  # the event is a duplicate of the webhook's
    assert inbound_drain(seconds=0) == {"processed": 2}
    gifts = OutboundItem.objects.filter(operation="gift_transaction")
    assert list(gifts.values_list("idempotency_key", flat=True)) == [f"gift_transaction:Stripe:{PI}"]
    # The webhook's payment and the polled charge describe one payment: one donor write too.
    assert OutboundItem.objects.filter(operation="contact_transaction").count() == 1
    assert {c["auth"] for c in fake.calls} == {f"Bearer {API_KEY}"}
    assert stripe.api_key is None  # the library's global key is never set


def test_events_poll_asks_for_the_handled_types_and_a_30_day_window(connection, fake):
    fake.add("events", _recent("charge.refunded.json", NOW - 60))
    before = int(time.time())
    _poll(connection)
    after = int(time.time())
    first = next(c for c in fake.calls if c["resource"] == "events")
    asked = {v for k, v in first["query"].items() if k.startswith("types[")}
    assert "invoice.paid" in asked and "charge.refunded" in asked and len(asked) == 8
    # the window is 30 days back from the poll itself (not from when this module was imported)
    assert before - 30 * 86400 - 1 <= int(first["query"]["created[gte]"]) <= after - 30 * 86400 + 1
    ts, cursor = checkpoint_load(connection=connection, resource="events")
    assert cursor == "evt_3QpI7nK2aXc0A1b21aRf7YtQ" and int(ts.timestamp()) == NOW - 60


def test_interrupted_poll_resumes_from_its_checkpoint_without_re_enqueuing(connection, fake):
    fake.add("charges", charge(0, created=NOW - 10_000))
    assert _poll(connection)["new"] == 1
    for n in range(1, 251):
        fake.add("charges", charge(n, created=NOW - 5_000 + n))
    fake.calls.clear()
    fake.fail_on_call = 4  # events page, then charges pages of 100, 100, then the third fails
    with pytest.raises(StripeSourceError, match="HTTP 500"):
        _poll(connection)
    ts, cursor = checkpoint_load(connection=connection, resource="charges")
    assert cursor == "ch_000200" and int(ts.timestamp()) == NOW - 5_000 + 200
    assert InboundEvent.objects.count() == 201
    fake.fail_on_call = None
    fake.calls.clear()
    assert _poll(connection) == {"seen": 50, "new": 50}
    charge_calls = [c["query"] for c in fake.calls if c["resource"] == "charges"]
    assert charge_calls[0]["ending_before"] == "ch_000200"
    assert checkpoint_load(connection=connection, resource="charges")[1] == "ch_000250"
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 251
    connection.refresh_from_db()
    assert connection.consecutive_failures == 0


def test_first_run_emits_oldest_first(connection, fake):
    for n in range(5):
        fake.add("charges", charge(n, created=NOW - 1000 + n))
    _poll(connection)
    assert list(InboundEvent.objects.order_by("id").values_list("dedupe_key", flat=True)) == [
        f"charge:ch_{n:06d}:succeeded" for n in range(5)
    ]


def test_uncaptured_charges_are_passed_by_but_move_the_checkpoint(connection, fake):
    fake.add("charges", charge(1, created=NOW - 100, status="pending"))
    assert _poll(connection) == {"seen": 0, "new": 0}
    assert checkpoint_load(connection=connection, resource="charges")[1] == "ch_000001"


def test_an_aged_out_event_cursor_falls_back_to_the_window(connection, fake):
    SyncCheckpoint.objects.create(
        tenant=connection.tenant,
        scope=connection.credential_scope,
        resource_type="events",
        direction=SyncCheckpoint.Direction.OUTBOUND,
        last_processed_timestamp=timezone.now() - timedelta(days=40),
        last_processed_id="evt_gone_long_ago",
    )
    fake.add("events", _recent("invoice.paid.json", NOW - 30))
    _poll(connection)
    queries = [c["query"] for c in fake.calls if c["resource"] == "events"]
    assert queries[0]["ending_before"] == "evt_gone_long_ago" and "created[gte]" in queries[1]
    assert checkpoint_load(connection=connection, resource="events")[1] == "evt_1QpJ0cK2aXc0A1b2InvPd4Xy"


def test_a_rejected_key_is_a_clear_failure_that_counts_toward_the_breaker(connection, rsps):
    rsps.add(
        responses.GET,
        "https://api.stripe.com/v1/events",
        status=401,
        json={
            "error": {"type": "invalid_request_error", "message": "Invalid API Key provided: rk_test_***0001"}
        },
    )
    with pytest.raises(StripeSourceError, match="rejected the API key"):
        _poll(connection)
    connection.refresh_from_db()
    assert connection.consecutive_failures == 1 and "rejected the API key" in connection.last_error


def test_no_api_key_is_a_clear_failure(tenant, make_connection):
    bare = make_connection(tenant, "stripe", capture_mode="polling")
    with pytest.raises(ValueError, match="needs an API key"):
        connection_poll(connection=bare)


def test_each_connection_polls_with_its_own_key_and_stores_only_its_own_events(
    connection, other_tenant, make_connection, fake
):
    other = _stripe_connection(other_tenant, make_connection, "rk_test_bravo_0002", "whsec_bravo")
    fake.add("charges", charge(7, created=NOW - 100))
    _poll(connection)
    fake.calls.clear()
    _poll(other)
    assert {c["auth"] for c in fake.calls} == {"Bearer rk_test_bravo_0002"}
    assert InboundEvent.objects.filter(tenant=connection.tenant).count() == 1
    assert InboundEvent.objects.filter(tenant=other_tenant).count() == 1
    assert set(InboundEvent.objects.values_list("connection", flat=True)) == {connection.pk, other.pk}
