"""Status classes, the budget around every call, and what one tenant's trouble does to another."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests
import responses
from django.conf import settings

from integrations.common.ratelimit import DatabaseBackend, TenantBudget
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.models import Alert
from tenants.models import AuditEvent, Tenant
from tests.conftest import OTHER_VIRTUOUS_TOKEN, VIRTUOUS_TOKEN
from tests.integrations.virtuous.conftest import BASE, TOKEN

MARGIN = settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS

ORG = f"{BASE}/api/Organization/Current"
GIFT_URL = f"{BASE}/api/v2/Gift/Transaction"
PROD_ORG = "https://api.virtuoussoftware.com/api/Organization/Current"


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (400, ErrorClass.PERMANENT, False),
        (403, ErrorClass.PERMANENT, False),
        (404, ErrorClass.NOT_FOUND, False),
        (409, ErrorClass.CONFLICT, False),
        (422, ErrorClass.PERMANENT, False),
        (500, ErrorClass.TRANSIENT, True),
        (502, ErrorClass.TRANSIENT, True),
        (503, ErrorClass.TRANSIENT, True),
        (504, ErrorClass.TRANSIENT, True),
    ],
)
@responses.activate
def test_status_classes(client, calls, status, error_class, retryable):
    # given
    responses.post(GIFT_URL, status=status, json={"error": {"code": "X", "message": "nope"}})
    # when
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    # then
    assert caught.value.error_class == error_class
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable
    assert caught.value.message == "X: nope"
    assert len(responses.calls) == 1  # the client never retries on its own
    assert [(c.status_code, c.error_class) for c in calls] == [(status, error_class.value)]


@responses.activate
def test_validation_error_keeps_details(client):
    # given
    details = [
        {"field": "designations[0].amountDesignated", "code": "SUM_MISMATCH", "message": "Must equal amount"},
        {"field": "giftDate", "code": "REQUIRED", "message": "Required"},
    ]
    responses.post(
        GIFT_URL,
        status=422,
        json={"error": {"code": "VALIDATION_ERROR", "message": "Invalid gift", "details": details}},
        headers={"X-Request-Id": "vr-422"},
    )
    # when
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    # then
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert caught.value.details == details
    assert caught.value.request_id == "vr-422"
    assert caught.value.message == "VALIDATION_ERROR: Invalid gift"


@responses.activate
def test_400_with_aspnet_model_state_becomes_details(client):
    responses.post(
        GIFT_URL,
        status=400,
        json={"message": "The request is invalid.", "modelState": {"gift.amount": ["Amount is required."]}},
    )
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    assert caught.value.message == "The request is invalid."
    assert caught.value.details == [{"field": "gift.amount", "message": "Amount is required."}]


@responses.activate
def test_plain_text_error_body_is_tolerated(client):
    responses.get(ORG, status=503, body="Service Unavailable", content_type="text/plain")
    with pytest.raises(VirtuousError) as caught:
        client.organization_current()
    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.message == "Service Unavailable"
    assert caught.value.details == []


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout("slow"), requests.exceptions.ConnectTimeout("slow")],
    ids=["read-timeout", "connect-timeout"],
)
@responses.activate
def test_timeout_is_transient_without_status(client, calls, failure):
    responses.post(GIFT_URL, body=failure)
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.status_code is None
    assert "timed out" in caught.value.message
    assert [(c.status_code, c.error_class) for c in calls] == [(None, "transient")]


@responses.activate
def test_connection_error_is_transient_without_status(client, calls):
    responses.post(GIFT_URL, body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.status_code is None
    assert calls[0].status_code is None


@responses.activate
def test_timeouts_are_passed_to_the_session(budget):
    responses.get(ORG, json={})
    client = VirtuousClient(
        base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha", timeout=(2.0, 9.0)
    )
    client.organization_current()
    assert responses.calls[0].request.req_kwargs["timeout"] == (2.0, 9.0)


@responses.activate
def test_429_pauses_the_bucket_until_retry_after_and_nothing_more_is_sent(client, budget):
    # given
    responses.post(
        GIFT_URL,
        status=429,
        json={"error": {"code": "RATE_LIMITED", "message": "Slow down"}},
        headers={"Retry-After": "30"},
    )
    # when
    with pytest.raises(VirtuousError) as caught:
        client.gift_transaction({"transactionId": "pi_1"})
    # then
    assert caught.value.error_class == ErrorClass.RATE_LIMITED
    assert caught.value.retry_after == 30.0
    assert caught.value.retryable is True
    assert 28.0 + MARGIN < budget.paused_for() <= 30.0 + MARGIN
    with pytest.raises(BudgetExhausted) as waiting:
        client.gift_transaction({"transactionId": "pi_2"})
    assert 28.0 + MARGIN < waiting.value.retry_in <= 30.0 + MARGIN
    assert len(responses.calls) == 1


@responses.activate
def test_429_without_retry_after_pauses_sixty_seconds(client, budget):
    responses.get(ORG, status=429, body="Too Many Requests")
    with pytest.raises(VirtuousError) as caught:
        client.organization_current()
    assert caught.value.retry_after == 60.0
    assert 58.0 + MARGIN < budget.paused_for() <= 60.0 + MARGIN


@responses.activate
def test_rate_headers_resync_the_bucket_on_success_and_on_error(client, budget, calls):
    # given: the bucket is full (100 tokens) but Virtuous says only 3 remain this hour
    reset = int(time.time()) + 900
    responses.get(ORG, json={}, headers={"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(reset)})
    responses.get(ORG, status=500, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    # when
    started = time.monotonic()
    client.organization_current()
    # then: at most the 3 remaining, plus what the bucket refilled since (6,000/h) on a slow machine
    refill_since = (time.monotonic() - started) * 6000 / 3600
    assert budget.snapshot()["tokens"] <= 3 + refill_since + 1e-6
    assert budget.paused_for() == 0.0
    assert (calls[0].rate_remaining, calls[0].rate_reset) == (3, float(reset))
    # when: nothing remains
    with pytest.raises(VirtuousError):
        client.organization_current()
    # then: paused until the reset, and the next call is not sent
    assert 895 + MARGIN < budget.paused_for() <= 900 + MARGIN
    with pytest.raises(BudgetExhausted):
        client.organization_current()
    assert len(responses.calls) == 2


@responses.activate
def test_reset_given_as_a_delay_is_read_as_seconds_from_now(client, budget):
    responses.get(ORG, json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "120"})
    client.organization_current()
    assert 118 + MARGIN < budget.paused_for() <= 120 + MARGIN


def test_no_token_no_request(db, clock):
    # given: a bucket holding one token, already spent
    budget = TenantBudget("one-token", 3600, burst_seconds=1, backend=DatabaseBackend(), clock=clock)
    assert budget.try_acquire() == 0.0
    client = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    # when / then
    with responses.RequestsMock() as mock, pytest.raises(BudgetExhausted) as waiting:
        client.organization_current()
    assert len(mock.calls) == 0
    assert waiting.value.retry_in == pytest.approx(1.0)


@responses.activate
def test_bulk_client_leaves_the_reserve_for_live_gifts(db, clock):
    # given: capacity 10 with a 20% reserve, no refill while the test runs
    budget = TenantBudget(
        "reserve", 36000, reserve_fraction=0.2, burst_seconds=1, backend=DatabaseBackend(), clock=clock
    )
    bulk = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha", keep_reserve=True)
    live = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    responses.post(GIFT_URL, body="")
    # when
    for _ in range(8):
        bulk.gift_transaction({"transactionId": "bulk"})
    # then
    with pytest.raises(BudgetExhausted):
        bulk.gift_transaction({"transactionId": "bulk-9"})
    live.gift_transaction({"transactionId": "live-1"})
    live.gift_transaction({"transactionId": "live-2"})
    with pytest.raises(BudgetExhausted):
        live.gift_transaction({"transactionId": "live-3"})
    assert len(responses.calls) == 10


@responses.activate
def test_amounts_are_sent_as_exact_numbers_and_read_as_decimal(client):
    # given
    responses.post(GIFT_URL, body="")
    responses.get(
        f"{BASE}/api/Gift/Giftline/pi_1",
        body='{"id": 501, "amount": 1234567.89, "exchangeRate": 0.1, "isPrivate": "false"}',
        content_type="application/json",
    )
    # when
    client.gift_transaction(
        {"amount": Decimal("1234567.89"), "fee": Decimal("0.10"), "tiny": Decimal("1E-7")}
    )
    gift = client.gift_get_by_transaction("Giftline", "pi_1")
    # then
    assert responses.calls[0].request.body == b'{"amount": 1234567.89, "fee": 0.10, "tiny": 0.0000001}'
    assert gift["amount"] == Decimal("1234567.89") and type(gift["amount"]) is Decimal
    assert gift["exchangeRate"] == Decimal("0.1") and type(gift["exchangeRate"]) is Decimal


def test_a_float_amount_is_refused_before_anything_is_sent_or_spent(db, clock):
    budget = TenantBudget("floats", 3600, burst_seconds=1, backend=DatabaseBackend(), clock=clock)
    client = VirtuousClient(base_url=BASE, token=TOKEN, budget=budget, tenant_label="alpha")
    with responses.RequestsMock() as mock, pytest.raises(TypeError, match="Decimal"):
        client.gift_transaction({"amount": 25.1})
    assert len(mock.calls) == 0
    assert budget.snapshot()["tokens"] == 1.0


@responses.activate
def test_401_pauses_only_that_tenant_and_is_not_retried(tenant, other_tenant):
    # given
    responses.get(
        PROD_ORG,
        status=401,
        body="Authorization has been denied for this request.",
        match=[responses.matchers.header_matcher({"Authorization": f"Bearer {VIRTUOUS_TOKEN}"})],
    )
    responses.get(
        PROD_ORG,
        json={"name": "Bravo"},
        match=[responses.matchers.header_matcher({"Authorization": f"Bearer {OTHER_VIRTUOUS_TOKEN}"})],
    )
    alpha = VirtuousClient.for_tenant(tenant)
    bravo = VirtuousClient.for_tenant(other_tenant)
    # when
    with pytest.raises(VirtuousError) as caught:
        alpha.organization_current()
    # then
    assert caught.value.error_class == ErrorClass.NEEDS_ATTENTION
    assert caught.value.retryable is False
    assert caught.value.message == "Authorization has been denied for this request."
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.PAUSED
    # the one 401 policy (sync.clients, installed for every tenant client): pause and alert
    assert tenant.paused_reason == (
        "Virtuous needs attention (HTTP 401): Authorization has been denied for this request."
    )
    assert Alert.objects.filter(tenant=tenant, kind="tenant_paused").count() == 1
    assert other_tenant.status == Tenant.Status.ACTIVE
    assert AuditEvent.objects.filter(action="tenant.paused").count() == 1
    assert AuditEvent.objects.get(action="tenant.paused").tenant == tenant
    assert bravo.organization_current() == {"name": "Bravo"}
    assert len(responses.calls) == 2


@responses.activate
def test_429_pauses_only_that_tenants_bucket(tenant, other_tenant):
    responses.get(PROD_ORG, status=429, headers={"Retry-After": "45"})
    alpha = VirtuousClient.for_tenant(tenant)
    bravo = VirtuousClient.for_tenant(other_tenant)
    with pytest.raises(VirtuousError):
        alpha.organization_current()
    assert 43 + MARGIN < alpha.budget.paused_for() <= 45 + MARGIN
    assert bravo.budget.paused_for() == 0.0
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE  # a 429 pauses the bucket, not the tenant


def test_for_tenant_builds_the_budget_from_the_tenant(tenant):
    tenant.hourly_request_budget = 3600
    tenant.budget_headroom_percent = 0
    tenant.bulk_reserve_percent = 25
    client = VirtuousClient.for_tenant(tenant, keep_reserve=True)
    assert client.budget.key == str(tenant.public_id)
    assert client.budget.per_hour == 3600
    assert client.budget.capacity == 60.0
    assert client.budget.reserve_fraction == 0.25
    assert client.keep_reserve is True
    assert client.base_url == "https://api.virtuoussoftware.com"


def test_for_tenant_without_a_token_needs_attention_and_sends_nothing(db):
    bare = Tenant.objects.create(slug="bare", name="No Token Yet")
    with responses.RequestsMock() as mock, pytest.raises(VirtuousError) as caught:
        VirtuousClient.for_tenant(bare)
    assert caught.value.error_class == ErrorClass.NEEDS_ATTENTION
    assert len(mock.calls) == 0


def test_tenant_supplied_private_url_is_refused_before_sending(tenant, settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    # Even a host an operator put on the allow-list is refused when it is a private address.
    settings.VIRTUOUS_ALLOWED_HOSTS = [*settings.VIRTUOUS_ALLOWED_HOSTS, "10.1.2.3"]
    tenant.virtuous_base_url = "https://10.1.2.3"
    client = VirtuousClient.for_tenant(tenant)
    with responses.RequestsMock() as mock, pytest.raises(VirtuousError) as caught:
        client.organization_current()
    assert caught.value.error_class == ErrorClass.NEEDS_ATTENTION
    assert len(mock.calls) == 0


def test_only_a_batching_tenant_spreads_its_calls(tenant, other_tenant, settings):
    # given: the outsider sends one item a call, where waiting to spread its calls gains nothing
    settings.VIRTUOUS_WINDOW_SPREAD_SECONDS = 5.0
    Tenant.objects.filter(pk=other_tenant.pk).update(batching_enabled=False)
    other_tenant.refresh_from_db()
    # then
    assert VirtuousClient.for_tenant(tenant).budget.shape.spread == 5.0
    assert VirtuousClient.for_tenant(other_tenant).budget.shape.spread == 0.0
