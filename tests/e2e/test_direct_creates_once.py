"""Direct creates against the sandbox over HTTP: unknown outcomes never double a refund or a schedule.

The sandbox applies the create, then answers late (a client timeout), with a 503, or never (a
reset connection); the next drain looks the record up and marks the item submitted with the
record it finds. A lookup that cannot decide sends the item to needs_review, never out again.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.sandbox.models import SandboxGift, SandboxRecurringGift
from integrations.sandbox.services import (
    sandbox_faults_reset,
    sandbox_faults_set,
)
from integrations.types import IDEMPOTENT, Operation
from sync.clients import virtuous_client
from sync.models import Attempt, OutboundItem
from sync.outbound.drain import outbound_drain
from sync.outbound.faults import fault_hook_install
from tenants.selectors import credential_secret
from tenants.services import SYSTEM, tenant_create, tenant_update, tenant_virtuous_url_change
from tests.e2e.conftest import (
    direct_create_enqueue,
    direct_create_records,
    point_tenant_at_sandbox,
    sandbox_donor_with_gift,
)
from tests.reliability.proxy import ResettingProxy

OPERATIONS = (Operation.REVERSING_TRANSACTION, Operation.RECURRING_GIFT_CREATE)


def quick_client(tenant, **kwargs):
    """The tenant's real client with a 1 s read timeout, so an injected 3 s answer times out."""
    client = virtuous_client(tenant, **kwargs)
    client.timeout = (2.0, 1.0)
    return client


@pytest.fixture
def world(live_server, transactional_db):
    """A tenant pointed at a sandbox org with one donor and one gift, and an outsider beside it."""
    tenant = tenant_create(slug="once", name="Once Shelter")
    tenant_update(tenant=tenant, actor=SYSTEM, changes={"retry_max_attempts": 50, "retry_base_seconds": 1})
    org = point_tenant_at_sandbox(tenant, live_server.url)
    outsider = tenant_create(slug="outsider", name="Outsider Trust")
    outsider_org = point_tenant_at_sandbox(outsider, live_server.url)
    donor, gift = sandbox_donor_with_gift(org)
    return tenant, org, donor, gift, outsider_org


def _drain_now(tenant, item: OutboundItem | None = None):
    OutboundItem.objects.filter(tenant=tenant, state="pending").update(next_attempt_at=timezone.now())
    return outbound_drain(tenant=tenant, client_factory=quick_client)


FAULTS = {
    "timeout after apply": {"timeout_rate": 1.0, "timeout_seconds": 3},
    "503 after apply": {"error_after_rate": 1.0, "error_statuses": "503"},
}


def test_every_operation_is_classified_idempotent_or_not():
    assert set(IDEMPOTENT) == set(Operation.values)
    assert {op for op, same in IDEMPOTENT.items() if not same} == set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", FAULTS)
def test_an_unknown_outcome_is_looked_up_not_resent(world, operation, fault):
    tenant, org, donor, gift, outsider_org = world
    item = direct_create_enqueue(tenant, operation, donor, gift)

    # given: the sandbox applies the create, then the caller never hears a 2xx
    sandbox_faults_set(organization=org, **FAULTS[fault])
    first = _drain_now(tenant)
    item.refresh_from_db()
    assert first.retried == 1 and item.state == "pending"
    assert item.write_sent_at is not None  # the send was recorded before the request
    created = direct_create_records(org, operation)
    assert len(created) == 1

    # when: Virtuous answers again and the item's next attempt runs
    sandbox_faults_reset(organization=org)
    _drain_now(tenant)

    # then: the lookup found the record: submitted with its id, nothing sent twice
    item.refresh_from_db()
    assert item.state == "submitted" and item.virtuous_id == str(created[0])
    assert item.write_evidence["outcome"] == "found"
    assert direct_create_records(org, operation) == created
    assert not SandboxGift.objects.filter(organization=outsider_org).exists()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_refused_create_is_not_an_unknown_outcome(world, operation):
    tenant, org, donor, gift, _ = world
    item = direct_create_enqueue(tenant, operation, donor, gift)
    sandbox_faults_set(organization=org, error_rate=1.0, error_statuses="400")
    _drain_now(tenant)
    item.refresh_from_db()
    assert item.state == "dead" and item.write_sent_at is None  # Virtuous said no: nothing created
    assert direct_create_records(org, operation) == []


@pytest.fixture
def resetting(world, live_server):
    """Route the tenant through a loopback proxy that resets POSTs (the creates) when told to."""
    tenant = world[0]
    parts = urlsplit(live_server.url)
    proxy = ResettingProxy((parts.hostname, parts.port), before=0.0, after=0.0, only=b"POST ")
    token = credential_secret(tenant=tenant, platform="virtuous", purpose="api_token")
    tenant_virtuous_url_change(
        tenant=tenant,
        base_url=f"http://127.0.0.1:{proxy.port}/sandbox/virtuous",
        api_token=token,
        actor=SYSTEM,
    )
    yield proxy
    proxy.close()


def _posts(tenant) -> list[int | None]:
    return list(
        Attempt.objects.filter(tenant=tenant, method="POST")
        .order_by("pk")
        .values_list("status_code", flat=True)
    )


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_reset_after_the_create_was_written_is_looked_up_not_resent(world, resetting, operation):
    tenant, org, donor, gift, outsider_org = world
    item = direct_create_enqueue(tenant, operation, donor, gift)

    # given: the create reached Virtuous and was applied; its answer became a TCP reset
    resetting.after = 1.0
    first = _drain_now(tenant)
    item.refresh_from_db()
    assert resetting.resets == {"after": 1} and resetting.forwarded == 1
    assert first.retried == 1 and item.state == "pending" and item.write_sent_at is not None
    created = direct_create_records(org, operation)
    assert len(created) == 1

    # when: the connection is healthy again and the item's next attempt runs
    resetting.after = 0.0
    _drain_now(tenant)

    # then: found by lookup, never sent a second time
    item.refresh_from_db()
    assert item.state == "submitted" and item.virtuous_id == str(created[0])
    assert item.write_evidence["outcome"] == "found"
    assert direct_create_records(org, operation) == created
    assert resetting.forwarded == 1 and _posts(tenant) == [None]
    assert direct_create_records(outsider_org, operation) == []


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_reset_before_the_create_reached_virtuous_is_sent_once(world, resetting, operation):
    tenant, org, donor, gift, _ = world
    item = direct_create_enqueue(tenant, operation, donor, gift)

    # given: the connection reset before the request reached Virtuous: nothing was created
    resetting.before = 1.0
    _drain_now(tenant)
    item.refresh_from_db()
    assert resetting.resets == {"before": 1} and resetting.forwarded == 0
    assert item.state == "pending" and item.write_sent_at is not None
    assert direct_create_records(org, operation) == []

    # when: the next attempt runs over a healthy connection
    resetting.before = 0.0
    _drain_now(tenant)

    # then: the lookup showed it absent, so it went out again, and exactly once
    item.refresh_from_db()
    assert item.state == "submitted" and resetting.forwarded == 1
    assert direct_create_records(org, operation) == [int(item.virtuous_id)]
    assert _posts(tenant) == [None, 200]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_direct_create_gets_through_a_trickling_budget(world, settings, operation):
    """An empty bucket refilling 1 token/s: the create's calls wait for the tokens they need together,
    rather than spending each new token on a first read and starting over (found by the property test)."""
    tenant, org, donor, gift, _ = world
    settings.VIRTUOUS_BUCKET_BURST_SECONDS = 4  # capacity 4: a refund's baseline (2), lookup (1) and create
    tenant_update(
        tenant=tenant, actor=SYSTEM, changes={"hourly_request_budget": 3600, "budget_headroom_percent": 0}
    )
    item = direct_create_enqueue(tenant, operation, donor, gift)
    sandbox_faults_set(organization=org, error_rate=1.0, error_statuses="503")
    _drain_now(tenant)  # a 503 before the work: the next attempt looks up, then sends
    sandbox_faults_reset(organization=org)
    budget = virtuous_client(tenant).budget
    while budget.try_acquire(1) == 0:  # the tenant's other work emptied the bucket
        pass
    OutboundItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())

    result = outbound_drain(tenant=tenant, client_factory=quick_client, max_budget_wait=10.0)

    item.refresh_from_db()
    assert result.submitted == 1 and item.state == "submitted"
    assert direct_create_records(org, operation) == [int(item.virtuous_id)]


class _Died(BaseException):
    """The worker stops dead at a fault point (in process: the drain unwinds without handling it)."""


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_create_that_never_landed_is_sent_again_once(world, operation):
    tenant, org, donor, gift, _ = world
    item = direct_create_enqueue(tenant, operation, donor, gift)

    def die(name: str) -> None:
        if name == "after_send_recorded":
            raise _Died(name)

    # given: the send was recorded, then the worker died before the request left
    fault_hook_install(die)
    try:
        with pytest.raises(_Died):
            _drain_now(tenant)
    finally:
        fault_hook_install(None)
    item.refresh_from_db()
    assert item.write_sent_at is not None and direct_create_records(org, operation) == []
    OutboundItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now())

    # when: the lease expired and the next drain reclaims the item
    _drain_now(tenant)

    # then: the lookup showed it absent, so it was sent once
    item.refresh_from_db()
    assert item.state == "submitted" and len(direct_create_records(org, operation)) == 1
    assert item.virtuous_id == str(direct_create_records(org, operation)[0])


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_undecidable_lookup_goes_to_review_never_out_again(world, operation):
    tenant, org, donor, gift, _ = world
    item = direct_create_enqueue(tenant, operation, donor, gift)
    sandbox_faults_set(organization=org, error_after_rate=1.0, error_statuses="503")
    _drain_now(tenant)
    # someone else made a matching record meanwhile (a person in the UI, or a double send)
    sandbox_faults_reset(organization=org)
    client = virtuous_client(tenant)
    item.refresh_from_db()
    if operation == Operation.REVERSING_TRANSACTION:
        client.gift_reversing_transaction(item.payload)
    else:
        client.recurring_gift_create(item.payload)
    before = direct_create_records(org, operation)
    assert len(before) == 2

    result = _drain_now(tenant)

    item.refresh_from_db()
    assert result.review == 1 and item.state == "needs_review"
    assert item.write_evidence["outcome"] == "review"
    assert sorted(item.write_evidence["matching_ids"]) == before
    assert direct_create_records(org, operation) == before  # not sent a third time
    _drain_now(tenant)
    assert direct_create_records(org, operation) == before


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=st.lists(
        st.tuples(
            st.sampled_from(OPERATIONS),
            st.lists(
                st.sampled_from(
                    ["ok", "timeout", "503", "503_before", "reset_after", "reset_before", "died"]
                ),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_faults_never_double_or_lose_a_direct_create(world, resetting, script):
    """Replays random sequences of faults per item; every item ends with exactly one record."""
    tenant, org, donor, gift, _ = world
    OutboundItem.objects.all().delete()
    SandboxGift.objects.filter(organization=org, gift_type="ReversingTransaction").delete()
    SandboxRecurringGift.objects.filter(organization=org).delete()
    items = []
    for n, (operation, faults) in enumerate(script):
        item = direct_create_enqueue(tenant, operation, donor, gift, n=n)
        for fault in faults:
            _one_attempt(tenant, org, resetting, item, fault)
        sandbox_faults_reset(organization=org)
        for _ in range(3):  # a clean run settles whatever the faults left
            _drain_now(tenant)
        items.append((operation, item))
    for _operation, item in items:
        item.refresh_from_db()
        assert item.state == "submitted", (item.state, item.last_error)
    for operation in OPERATIONS:
        expected = [str(i.virtuous_id) for op, i in items if op == operation]
        assert sorted(map(str, direct_create_records(org, operation))) == sorted(
            expected
        )  # none doubled, none lost


def _one_attempt(tenant, org, proxy: ResettingProxy, item: OutboundItem, fault: str) -> None:
    knobs = {
        "ok": {},
        "timeout": FAULTS["timeout after apply"],
        "503": FAULTS["503 after apply"],
        "503_before": {"error_rate": 1.0, "error_statuses": "503"},
        "reset_after": {},
        "reset_before": {},
        "died": {},
    }[fault]
    sandbox_faults_reset(organization=org)
    # a real TCP reset of the create, after Virtuous applied it or before it reached Virtuous
    proxy.after = 1.0 if fault == "reset_after" else 0.0
    proxy.before = 1.0 if fault == "reset_before" else 0.0
    if knobs:
        sandbox_faults_set(organization=org, **knobs)
    if fault == "died":
        # the worker held the lease and was never heard of again: the lease expires
        item.refresh_from_db()
        OutboundItem.objects.filter(pk=item.pk, state="pending").update(
            state="in_flight", lease_owner="dead-worker", lease_expires_at=timezone.now()
        )
    try:
        _drain_now(tenant)
    finally:
        proxy.after = proxy.before = 0.0
