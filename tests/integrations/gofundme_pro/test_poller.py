import base64
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.urls import reverse
from svix.webhooks import Webhook

from integrations.gofundme_pro.client import BASE_URL, TOKEN_URL, GoFundMeProError
from integrations.models import InboundEvent
from sync.inbound.drain import inbound_drain
from sync.inbound.polling import connection_poll
from sync.models import OutboundItem, SyncCheckpoint
from tenants import selectors
from tenants.models import Credential
from tenants.services import credential_set
from tests.integrations.conftest import fixture_json

SECRET = "whsec_" + base64.b64encode(b"giftline-gfm-current-key-01").decode()
TRANSACTIONS = f"{BASE_URL}/organizations/7001/transactions"
PLANS = f"{BASE_URL}/organizations/7001/recurring-donation-plans"
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def connection(tenant, make_connection):
    c = make_connection(
        tenant,
        "gofundme_pro",
        secret=SECRET,
        capture_mode="hybrid",
        settings={"client_id": "gfm-client-1", "organization_id": "7001"},
    )
    c.project_code_map = {"40122": "P2P-RUN"}
    c.save()
    credential_set(
        tenant=tenant,
        platform="gofundme_pro",
        purpose="oauth_client_secret",
        secret="gfm-client-secret-abc",
        scope=c.credential_scope,
    )
    return c


def transaction_row(n: int, **overrides) -> dict:
    stamp = (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    row = {
        "id": 500000 + n,
        "status": "success",
        "donation_gross_amount": "10.00",
        "fees_amount": "0.59",
        "currency_code": "USD",
        "purchased_at": stamp,
        "updated_at": stamp,
        "supporter_id": 9000 + n,
        "campaign_id": 40122,
        "billing_first_name": "Donor",
        "billing_last_name": f"Number {n}",
        "payment_method": "CC",
    }
    return {**row, **overrides}


def page(rows: list[dict], current: int = 1, last: int = 1) -> dict:
    return {"current_page": current, "last_page": last, "per_page": 100, "total": len(rows), "data": rows}


def _token(rsps, value="tok-1"):
    rsps.add(
        responses.POST,
        TOKEN_URL,
        json={"access_token": value, "expires_in": 3600, "token_type": "bearer"},
    )


def _filter(call) -> str:
    return parse_qs(urlsplit(call.request.url).query).get("filter", [""])[0]


@responses.activate
def test_poll_emits_transactions_and_plans_and_caches_the_token(connection, tenant):
    _token(responses)
    responses.add(responses.GET, TRANSACTIONS, json=page([transaction_row(1), transaction_row(2)]))
    plan = fixture_json("gofundme_pro", "recurring_donation_plan.created.json")["data"]
    responses.add(responses.GET, PLANS, json=page([plan]))
    assert connection_poll(connection=connection) == {"seen": 3, "new": 3}
    token_call = responses.calls[0].request
    assert token_call.url == TOKEN_URL and "client_secret=gfm-client-secret-abc" in token_call.body
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-1"
    query = parse_qs(urlsplit(responses.calls[1].request.url).query)
    assert (
        query["sort"] == ["updated_at:asc"]
        and query["per_page"] == ["100"]
        and query["with"] == ["supporter"]
    )
    cached = Credential.objects.get(purpose="oauth_access_token", state="active")
    assert cached.scope == connection.credential_scope and cached.expires_at > datetime.now(UTC)
    assert (
        selectors.credential_secret(
            tenant=tenant,
            platform="gofundme_pro",
            purpose="oauth_access_token",
            scope=connection.credential_scope,
        )
        == "tok-1"
    )
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 2
    assert OutboundItem.objects.filter(operation="recurring_gift_create").count() == 1

    responses.calls.reset()
    connection.refresh_from_db()
    connection_poll(connection=connection)
    assert [c.request.method for c in responses.calls] == ["GET", "GET"]  # no second token request
    assert _filter(responses.calls[0]) == "updated_at>=2026-11-01T12:00:02.000Z"


@responses.activate
def test_expired_or_revoked_token_is_renewed(connection, tenant):
    credential_set(
        tenant=tenant,
        platform="gofundme_pro",
        purpose="oauth_access_token",
        secret="tok-revoked",
        scope=connection.credential_scope,
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
    )
    responses.add(responses.GET, TRANSACTIONS, status=401)
    _token(responses, "tok-2")
    responses.add(responses.GET, TRANSACTIONS, json=page([transaction_row(1)]))
    responses.add(responses.GET, PLANS, json=page([]))
    assert connection_poll(connection=connection)["new"] == 1
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok-revoked"
    assert responses.calls[2].request.headers["Authorization"] == "Bearer tok-2"


@responses.activate
def test_interrupted_poll_resumes_from_its_checkpoint_without_re_enqueuing(connection):
    rows = [transaction_row(n) for n in range(1, 151)]
    _token(responses)
    responses.add(responses.GET, TRANSACTIONS, json=page(rows[:100], current=1, last=2))
    responses.add(responses.GET, TRANSACTIONS, status=500)
    with pytest.raises(GoFundMeProError):
        connection_poll(connection=connection)
    checkpoint = SyncCheckpoint.objects.get(resource_type="transactions")
    assert checkpoint.last_processed_id == "500100"
    assert checkpoint.last_processed_timestamp == START + timedelta(seconds=100)
    assert InboundEvent.objects.count() == 100
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 100

    responses.reset()
    responses.add(responses.GET, TRANSACTIONS, json=page(rows[99:]))  # from the checkpoint, inclusive
    responses.add(responses.GET, PLANS, json=page([]))
    connection.refresh_from_db()
    assert connection_poll(connection=connection) == {"seen": 51, "new": 50}
    assert _filter(responses.calls[0]) == "updated_at>=2026-11-01T12:01:40.000Z"
    inbound_drain(seconds=0)
    assert OutboundItem.objects.filter(operation="gift_transaction").count() == 150
    assert InboundEvent.objects.count() == 150


@responses.activate
def test_a_donation_seen_by_webhook_and_poll_is_one_queue_item(client, connection):
    body = json.dumps({"type": "transaction.created", "data": transaction_row(7)}).encode()
    moment = datetime.fromtimestamp(int(time.time()), tz=UTC)
    headers = {
        "HTTP_SVIX_ID": "msg_same_donation",
        "HTTP_SVIX_TIMESTAMP": str(int(moment.timestamp())),
        "HTTP_SVIX_SIGNATURE": Webhook(SECRET).sign("msg_same_donation", moment, body.decode()),
    }
    url = reverse("integrations:receive", args=[connection.webhook_token])
    assert client.post(url, data=body, content_type="application/json", **headers).status_code == 200
    _token(responses)
    responses.add(responses.GET, TRANSACTIONS, json=page([transaction_row(7)]))
    responses.add(responses.GET, PLANS, json=page([]))
    connection_poll(connection=connection)
    assert InboundEvent.objects.count() == 2
    inbound_drain(seconds=0)
    gifts = OutboundItem.objects.filter(operation="gift_transaction")
    assert [g.external_id for g in gifts] == ["500007"]
    assert OutboundItem.objects.filter(operation="contact_transaction").count() == 1


def test_poll_without_settings_or_secret_fails_clearly(tenant, make_connection, connection):
    bare = make_connection(tenant, "gofundme_pro", capture_mode="polling", name="bare")
    with pytest.raises(ValueError, match="client_id and organization_id"):
        connection_poll(connection=bare)
    no_secret = make_connection(
        tenant, "gofundme_pro", capture_mode="polling", settings={"client_id": "x", "organization_id": "1"}
    )
    with pytest.raises(ValueError, match="oauth_client_secret"):
        connection_poll(connection=no_secret)


def test_another_tenants_token_is_never_used(connection, other_tenant, make_connection):
    other = make_connection(other_tenant, "gofundme_pro", capture_mode="polling", settings={"client_id": "b"})
    credential_set(
        tenant=other_tenant,
        platform="gofundme_pro",
        purpose="oauth_access_token",
        secret="tok-bravo",
        scope=other.credential_scope,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    with responses.RequestsMock() as rsps:
        _token(rsps, "tok-alpha")
        rsps.add(responses.GET, TRANSACTIONS, json=page([]))
        rsps.add(responses.GET, PLANS, json=page([]))
        connection_poll(connection=connection)
        assert rsps.calls[1].request.headers["Authorization"] == "Bearer tok-alpha"
