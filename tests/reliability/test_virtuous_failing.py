"""Virtuous failing in every way the spec names, against the live sandbox: random 5xx, timeouts,
connection resets, 429 storms, a 401 on one tenant, and an outage longer than the retry budget.

Each scenario ends with the same proof, read from the sandbox's counters and records: every gift
is held exactly once (resends counted as duplicates, never a second record) and nothing is lost.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from integrations.sandbox import limits
from integrations.sandbox.models import SandboxGift, SandboxTransaction
from integrations.sandbox.services import (
    sandbox_batch_run,
    sandbox_faults_reset,
    sandbox_faults_set,
    sandbox_storm_start,
)
from integrations.services import connection_create
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.services import virtuous_subscription_create
from sync.inbound.drain import inbound_drain
from sync.models import Alert, Attempt, DeadLetter, Origin, OutboundItem
from sync.outbound.deadletters import dead_letter_replay
from sync.outbound.dispatch import outbound_dispatch
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.models import Tenant
from tenants.selectors import credential_secret
from tenants.services import (
    SYSTEM,
    credential_set,
    tenant_create,
    tenant_resume,
    tenant_update,
    tenant_virtuous_url_change,
)
from tests.e2e.conftest import point_tenant_at_sandbox
from tests.reliability.conftest import counters, drain_until_settled, sandbox_knows_donors
from tests.reliability.proxy import ResettingProxy
from tests.sync.conftest import gift_request

ITEMS = 20
BATCH = 5

pytestmark = pytest.mark.slow


def _queued(live_server, slug: str, *, base_url: str | None = None, **changes):
    tenant = tenant_create(slug=slug, name=f"{slug.title()} Rescue")
    org = point_tenant_at_sandbox(tenant, live_server.url)
    if base_url:
        token = credential_secret(tenant=tenant, platform="virtuous", purpose="api_token")
        tenant_virtuous_url_change(tenant=tenant, base_url=base_url, api_token=token, actor=SYSTEM)
    tenant_update(
        tenant=tenant, actor=SYSTEM, changes={"batch_size": BATCH, "retry_max_attempts": 30, **changes}
    )
    sandbox_knows_donors(org, ITEMS)
    outbound_enqueue_many(
        tenant=tenant, requests=[gift_request(n) for n in range(ITEMS)], origin=Origin.WEBHOOK
    )
    return tenant, org


def _short_timeouts(tenant, **kwargs) -> VirtuousClient:
    client = VirtuousClient.for_tenant(tenant, **kwargs)
    client.timeout = (2.0, 1.0)  # the sandbox holds timed-out answers for 2 s
    return client


def _assert_each_gift_once(tenant: Tenant, org) -> None:
    """Every item submitted; Virtuous holds one record per gift and creates one gift per id."""
    assert (
        list(OutboundItem.objects.filter(tenant=tenant).values_list("state", flat=True))
        == ["submitted"] * ITEMS
    )
    c = counters(org)
    held = SandboxTransaction.objects.filter(organization=org, kind="gift")
    assert held.count() == ITEMS
    assert c.transactions_received - c.duplicate_submissions == ITEMS
    sandbox_batch_run(organization=org)
    gifts = SandboxGift.objects.filter(organization=org)
    assert gifts.count() == ITEMS == len(set(gifts.values_list("transaction_id", flat=True)))


def test_random_500_502_503_and_timeouts_lose_nothing_and_double_nothing(
    live_server, transactional_db, monkeypatch
):
    # the sandbox rolls its faults in this process: the same faults every run
    monkeypatch.setattr(limits, "_random", random.Random(26))
    tenant, org = _queued(live_server, "flaky")
    sandbox_faults_set(
        organization=org, error_rate=0.4, error_statuses="500,502,503", timeout_rate=0.3, timeout_seconds=2
    )

    drain_until_settled(tenant, client_factory=_short_timeouts)

    c = counters(org)
    assert c.faults_injected > 0
    statuses = set(Attempt.objects.filter(tenant=tenant).values_list("status_code", flat=True))
    assert statuses & {500, 502, 503} and None in statuses  # injected errors and timeouts both seen
    assert c.duplicate_submissions > 0  # a timed-out batch had been stored: its resend was deduplicated
    assert not DeadLetter.objects.exists()
    _assert_each_gift_once(tenant, org)
    time.sleep(2.1)  # let the sandbox's last held (timed-out) answer finish inside the test


def test_connection_resets_before_and_after_virtuous_answered(live_server, transactional_db):
    parts = urlsplit(live_server.url)
    proxy = ResettingProxy((parts.hostname, parts.port), before=0.25, after=0.25)
    try:
        tenant, org = _queued(
            live_server, "resets", base_url=f"http://127.0.0.1:{proxy.port}/sandbox/virtuous"
        )
        drain_until_settled(tenant)
    finally:
        proxy.close()
    assert proxy.resets["before"] and proxy.resets["after"]
    assert counters(org).duplicate_submissions > 0  # answers lost after the work was done were resent
    assert Attempt.objects.filter(tenant=tenant, status_code__isnull=True).exists()
    _assert_each_gift_once(tenant, org)


def test_429_storm_honours_retry_after_without_spending_attempts_or_hammering(live_server, transactional_db):
    tenant, org = _queued(live_server, "storm")
    sandbox_storm_start(organization=org, seconds=3, retry_after=2)

    # during the storm: one call, answered 429; everything released until Retry-After, no attempt spent
    started = timezone.now()
    result = outbound_drain(tenant=tenant, max_budget_wait=0.0)
    assert result.stopped == "rate_limited" and result.submitted == 0
    for _ in range(5):  # more drains during the storm send nothing
        outbound_drain(tenant=tenant, max_budget_wait=0.0)
    assert counters(org).rate_limited_responses == 1
    items = OutboundItem.objects.filter(tenant=tenant)
    assert set(items.values_list("state", "attempts")) == {("pending", 0)}
    assert all(i.next_attempt_at >= started + timedelta(seconds=2) for i in items)

    # after it (and the margin the bucket keeps past Retry-After): one attempt per item
    time.sleep(3.2 + settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS)
    drain_until_settled(tenant, rounds=5)
    assert set(items.values_list("attempts", flat=True)) == {1}
    assert counters(org).rate_limited_responses == 1
    _assert_each_gift_once(tenant, org)


def test_a_401_pauses_only_that_tenant_and_the_others_carry_on(live_server, transactional_db, settings):
    settings.OUTBOUND_DRAIN_SLICE_SECONDS = 2
    broken, broken_org = _queued(live_server, "revoked")
    healthy, healthy_org = _queued(live_server, "healthy")
    credential_set(tenant=broken, platform="virtuous", purpose="api_token", secret="sbx_revoked_token_0000")

    outbound_dispatch(seconds=4, threads=2)

    broken.refresh_from_db()
    assert broken.status == Tenant.Status.PAUSED and "401" in broken.paused_reason
    assert set(OutboundItem.objects.filter(tenant=broken).values_list("state", "attempts")) == {
        ("pending", 0)
    }
    assert Alert.objects.filter(tenant=broken, kind="tenant_paused").count() == 1
    assert not Alert.objects.filter(tenant=healthy).exists()
    _assert_each_gift_once(healthy, healthy_org)
    assert counters(broken_org).requests_total == 0  # the bad token reached no organisation

    # the customer pastes a fresh token and resumes: the held items go through
    point_tenant_at_sandbox(broken, live_server.url)
    broken.refresh_from_db()
    credential_set(
        tenant=broken, platform="virtuous", purpose="api_token", secret=_token_for(broken_org, broken)
    )
    tenant_resume(tenant=broken)
    drain_until_settled(broken, rounds=5)
    _assert_each_gift_once(broken, broken_org)


def _token_for(org, tenant) -> str:
    from integrations.sandbox.services import sandbox_org_token_regenerate

    return sandbox_org_token_regenerate(organization=org)


def test_an_outage_longer_than_the_retry_budget_dead_letters_then_replay_confirms_all(
    live_server, transactional_db
):
    tenant, org = _queued(live_server, "outage", retry_max_attempts=3)
    connection_create(tenant=tenant, provider="stripe")  # gifts from "Stripe" are ours to confirm
    virtuous_subscription_create(tenant=tenant, base_url=live_server.url)
    sandbox_faults_set(organization=org, error_rate=1.0, error_statuses="503")

    drain_until_settled(tenant)

    assert set(OutboundItem.objects.filter(tenant=tenant).values_list("state", "attempts")) == {("dead", 3)}
    letters = DeadLetter.objects.filter(tenant=tenant, resolution="open")
    assert letters.count() == ITEMS and set(letters.values_list("status_code", flat=True)) == {503}
    assert counters(org).transactions_received == 0

    # Virtuous recovers; an operator replays every dead letter; the nightly batch confirms them
    sandbox_faults_reset(organization=org)
    for letter in letters:
        dead_letter_replay(dead_letter=letter, actor=SYSTEM, note="Virtuous outage over")
    drain_until_settled(tenant, rounds=5)
    sandbox_batch_run(organization=org)
    inbound_drain(seconds=0)
    assert set(OutboundItem.objects.filter(tenant=tenant).values_list("state", flat=True)) == {"confirmed"}
    assert not DeadLetter.objects.filter(tenant=tenant, resolution="open").exists()
    c = counters(org)
    assert (c.transactions_received, c.duplicate_submissions, c.gifts_created) == (ITEMS, 0, ITEMS)
