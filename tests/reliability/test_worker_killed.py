"""A drain worker killed with SIGKILL mid-drain, at three points; a restarted worker finishes.

Each scenario proves, through the sandbox's own counters, that no gift is lost and none is
created twice: after the claim nothing was sent; during the HTTP call and after the 2xx the
batch reached Virtuous, so the restarted worker resends it with the same transaction ids and
Virtuous deduplicates it (counted as duplicate submissions, no second record). A refund or a
schedule, which Virtuous does not deduplicate, is looked up instead of resent.
"""

from __future__ import annotations

import logging
import signal
import time

import pytest

from integrations.sandbox.models import SandboxGift, SandboxRateWindow, SandboxTransaction
from integrations.sandbox.services import (
    Submission,
    sandbox_batch_run,
    sandbox_faults_set,
    sandbox_transactions_submit,
)
from integrations.types import Operation
from sync.models import Attempt, Origin, OutboundItem, TenantQueue
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.services import SYSTEM, tenant_create, tenant_update
from tests.e2e.conftest import (
    direct_create_enqueue,
    direct_create_records,
    point_tenant_at_sandbox,
    sandbox_donor_with_gift,
)
from tests.reliability.conftest import counters, kill9, manage_popen, needs_postgres, wait_for
from tests.sync.conftest import gift_request

logger = logging.getLogger(__name__)

ITEMS = 20
BATCH = 5
# Short leases so the restarted worker takes over within seconds, as it would after OUTBOUND_LEASE_SECONDS.
# One call in flight, so "the batch the killed worker held" is exactly one batch.
ONE_IN_FLIGHT = {"OUTBOUND_TENANT_IN_FLIGHT": "1"}
FAST_LEASES = {
    "OUTBOUND_LEASE_SECONDS": "2",
    "OUTBOUND_DRAIN_SLICE_SECONDS": "2",
    **ONE_IN_FLIGHT,
}
DRAIN = ("outbound_drain", "--seconds", "60", "--threads", "2", "--until-empty")

pytestmark = [pytest.mark.postgres, pytest.mark.slow, needs_postgres]


@pytest.fixture
def queued(live_server, transactional_db):
    """A tenant with 20 gifts queued (batches of 5) and a sandbox org that knows their donors."""
    tenant = tenant_create(slug="killed", name="Killed Worker Shelter")
    org = point_tenant_at_sandbox(tenant, live_server.url)
    tenant_update(tenant=tenant, actor=SYSTEM, changes={"batch_size": BATCH, "batching_enabled": True})
    requests = [gift_request(n) for n in range(ITEMS)]
    donors = [
        Submission(
            "Stripe", f"cus_{n}", {"referenceSource": "Stripe", "referenceId": f"cus_{n}", "name": f"D {n}"}
        )
        for n in range(ITEMS)
    ]
    sandbox_transactions_submit(organization=org, kind="contact", submissions=donors)
    outbound_enqueue_many(tenant=tenant, requests=requests, origin=Origin.WEBHOOK)
    return tenant, org


def _in_flight() -> int:
    return OutboundItem.objects.filter(state=OutboundItem.State.IN_FLIGHT).count()


def _reached(log, point: str) -> bool:
    return f"fault point {point} reached".encode() in log.read_bytes()


@pytest.mark.parametrize("point", ["after_claim", "during_http", "after_2xx"])
def test_a_worker_killed_mid_drain_loses_nothing_and_submits_nothing_twice(queued, tmp_path, point):
    tenant, org = queued
    log = tmp_path / "killed.log"

    # given: a drain stopped dead at the fault point
    if point == "during_http":
        # the request is on the wire (the sandbox counted the hit) but no answer has come back yet
        sandbox_faults_set(organization=org, added_latency_ms=4000)
        worker = manage_popen(*DRAIN, log=log, **FAST_LEASES)
        wait_for(
            lambda: SandboxRateWindow.objects.filter(organization=org, hits__gte=1).exists(),
            timeout=30,
            what="the batch request to reach the sandbox",
        )
    else:
        worker = manage_popen(*DRAIN, log=log, GIFTLINE_FAULT_POINT=point, **FAST_LEASES)
        wait_for(lambda: _reached(log, point), timeout=30, what=f"the worker to reach {point}")
    assert _in_flight() == BATCH
    kill9(worker)
    if point == "during_http":
        sandbox_faults_set(organization=org, added_latency_ms=0)
        # the sandbox finishes the request the dead worker sent
        wait_for(
            lambda: counters(org).transactions_received == BATCH, timeout=15, what="the orphaned request"
        )
    resent = 0 if point == "after_claim" else BATCH
    assert counters(org).transactions_received == resent  # the killed worker sent at most its batch
    assert _in_flight() == BATCH  # and never recorded the outcome

    # when: a new worker starts after the leases expire
    restarted = manage_popen(*DRAIN, log=tmp_path / "restarted.log", **FAST_LEASES)
    assert restarted.wait(timeout=90) == 0, (tmp_path / "restarted.log").read_text()[-3000:]

    # then: every item submitted, the killed batch once more, with one lost attempt counted
    states = list(OutboundItem.objects.values_list("state", flat=True))
    assert states == ["submitted"] * ITEMS
    assert OutboundItem.objects.filter(attempts=2).count() == BATCH
    c = counters(org)
    assert c.transactions_received == ITEMS + resent
    assert c.duplicate_submissions == resent  # Virtuous saw the resend as a resend...
    assert c.writes_total == ITEMS // BATCH + (1 if resent else 0)
    held = SandboxTransaction.objects.filter(organization=org, kind="gift")
    assert held.count() == ITEMS  # ...and holds one record per gift
    assert held.filter(submit_count=2).count() == resent
    sandbox_batch_run(organization=org)
    gifts = SandboxGift.objects.filter(organization=org)
    assert gifts.count() == ITEMS
    assert len(set(gifts.values_list("transaction_id", flat=True))) == ITEMS
    counters_after = counters(org)
    assert counters_after.gifts_created == ITEMS


@pytest.fixture
def direct_create(live_server, transactional_db):
    """A tenant whose sandbox org holds a donor and a gift to refund, and an outsider beside it."""
    tenant = tenant_create(slug="killed-direct", name="Killed Direct Shelter")
    org = point_tenant_at_sandbox(tenant, live_server.url)
    outsider = tenant_create(slug="outsider", name="Outsider Trust")
    outsider_org = point_tenant_at_sandbox(outsider, live_server.url)
    donor, gift = sandbox_donor_with_gift(org)
    sandbox_donor_with_gift(outsider_org)
    return tenant, org, donor, gift, outsider_org


@pytest.mark.parametrize("operation", [Operation.REVERSING_TRANSACTION, Operation.RECURRING_GIFT_CREATE])
def test_a_worker_killed_after_a_direct_creates_2xx_is_looked_up_not_resent(
    direct_create, tmp_path, operation
):
    tenant, org, donor, gift, outsider_org = direct_create
    item = direct_create_enqueue(tenant, operation, donor, gift)
    log = tmp_path / "killed.log"

    # given: Virtuous created the record and answered 2xx; the worker dies before recording it
    worker = manage_popen(*DRAIN, log=log, GIFTLINE_FAULT_POINT="after_2xx", **FAST_LEASES)
    wait_for(lambda: _reached(log, "after_2xx"), timeout=30, what="the worker to reach after_2xx")
    kill9(worker)
    created = direct_create_records(org, operation)
    assert len(created) == 1
    item.refresh_from_db()
    assert item.state == "in_flight" and item.write_sent_at is not None and not item.virtuous_id

    # when: a new worker takes the item after its lease expires
    restarted = manage_popen(*DRAIN, log=tmp_path / "restarted.log", **FAST_LEASES)
    assert restarted.wait(timeout=90) == 0, (tmp_path / "restarted.log").read_text()[-3000:]

    # then: the lookup found the record; the create went out once, and only for this tenant
    item.refresh_from_db()
    assert item.state == "submitted" and item.virtuous_id == str(created[0])
    assert item.write_evidence["outcome"] == "found" and item.write_evidence["found_id"] == str(created[0])
    assert item.attempts == 2  # the killed attempt counted when its lease was reclaimed
    assert direct_create_records(org, operation) == created
    posts = Attempt.objects.filter(tenant=tenant, method="POST")
    assert posts.count() == 1 and posts.get().status_code == 200
    assert direct_create_records(outsider_org, operation) == []


# With the default leases (30 s, renewed every 10 s by the holder's heartbeat), a dead holder's work
# must be taken again within this long of its death: issue 14's acceptance criterion, not a benchmark.
RECOVERY_SECONDS = 60
DISPATCH = ("outbound_drain", "--seconds", "110", "--threads", "2", "--until-empty")


def _taken_again(item_ids: list[int], dead_owner: str) -> bool:
    """Every killed item claimed by another holder (or already done), and the tenant with it."""
    items = OutboundItem.objects.filter(pk__in=item_ids)
    mine = items.filter(state=OutboundItem.State.IN_FLIGHT, lease_owner=dead_owner)
    back = items.exclude(state=OutboundItem.State.PENDING).exclude(pk__in=mine)
    return back.count() == len(item_ids)


@pytest.mark.parametrize("point", ["after_claim", "after_2xx"])
@pytest.mark.parametrize("killed", ["one worker", "the whole cluster"])
def test_a_dead_holders_items_and_tenant_come_back_within_a_minute(queued, tmp_path, point, killed):
    """Default leases: from the SIGKILL to the killed items' next claim by a live dispatcher."""
    tenant, org = queued
    log = tmp_path / "victim.log"

    # given: a dispatcher holding the tenant and a batch, stopped dead at the fault point, and a peer
    victim = manage_popen(*DISPATCH, log=log, GIFTLINE_FAULT_POINT=point, **ONE_IN_FLIGHT)
    wait_for(lambda: _reached(log, point), timeout=60, what=f"the victim to reach {point}")
    held = OutboundItem.objects.filter(state=OutboundItem.State.IN_FLIGHT)
    item_ids = list(held.values_list("pk", flat=True))
    dead_owner = held.values_list("lease_owner", flat=True).first()  # the drain, named under its dispatcher
    dead_dispatcher = TenantQueue.objects.get(tenant=tenant).lease_owner
    assert len(item_ids) == BATCH and dead_owner.startswith(f"{dead_dispatcher}-")
    peer = manage_popen(*DISPATCH, log=tmp_path / "peer.log", **ONE_IN_FLIGHT)

    # when: the victim dies (with its peer, for the whole cluster; a fresh dispatcher then starts)
    kill9(victim)
    died = time.monotonic()
    if killed == "the whole cluster":
        kill9(peer)
        peer = manage_popen(*DISPATCH, log=tmp_path / "restarted.log", **ONE_IN_FLIGHT)
    wait_for(
        lambda: _taken_again(item_ids, dead_owner),
        timeout=RECOVERY_SECONDS + 15,
        what="the killed items to be claimed again",
        interval=0.1,
    )
    recovered = time.monotonic() - died
    logger.info("%s killed %s: items taken again %.1f s after the SIGKILL", killed, point, recovered)

    # then: within a minute of the death, and every gift once
    assert recovered <= RECOVERY_SECONDS, f"taken again {recovered:.1f} s after the SIGKILL"
    assert peer.wait(timeout=90) == 0, (tmp_path / "peer.log").read_text()[-3000:]
    assert list(OutboundItem.objects.values_list("state", flat=True)) == ["submitted"] * ITEMS
    assert TenantQueue.objects.get(tenant=tenant).lease_owner != dead_dispatcher
    resent = 0 if point == "after_claim" else BATCH
    c = counters(org)
    assert c.transactions_received == ITEMS + resent and c.duplicate_submissions == resent
    assert SandboxTransaction.objects.filter(organization=org, kind="gift").count() == ITEMS


@pytest.mark.parametrize("operation", [Operation.REVERSING_TRANSACTION, Operation.RECURRING_GIFT_CREATE])
def test_a_stalled_holder_past_its_lease_cannot_record_its_late_outcome(direct_create, tmp_path, operation):
    """A live worker frozen (SIGSTOP: its heartbeat too) after the 2xx, past its lease, then resumed."""
    tenant, org, donor, gift, _ = direct_create
    item = direct_create_enqueue(tenant, operation, donor, gift)
    log, release = tmp_path / "stalled.log", tmp_path / "release"
    stalled = manage_popen(
        *DRAIN, log=log, GIFTLINE_FAULT_POINT="after_2xx", GIFTLINE_FAULT_RELEASE=str(release), **FAST_LEASES
    )
    try:
        # given: Virtuous created the record; the holder freezes before recording it
        wait_for(lambda: _reached(log, "after_2xx"), timeout=30, what="the worker to reach after_2xx")
        stalled.send_signal(signal.SIGSTOP)
        created = direct_create_records(org, operation)
        assert len(created) == 1

        # when: its lease runs out, another worker takes the item, then the frozen one resumes
        peer = manage_popen(*DRAIN, log=tmp_path / "peer.log", **FAST_LEASES)
        assert peer.wait(timeout=90) == 0, (tmp_path / "peer.log").read_text()[-3000:]
        item.refresh_from_db()
        assert item.state == "submitted" and item.write_evidence["outcome"] == "found"
        release.touch()
        stalled.send_signal(signal.SIGCONT)
        assert stalled.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if stalled.poll() is None:
            stalled.kill()
            stalled.wait(timeout=10)

    # then: its late update was refused: the peer's outcome stands, nothing was sent twice
    assert "fault point after_2xx released" in log.read_text() and "submitted=0" in log.read_text()
    item.refresh_from_db()
    assert item.state == "submitted" and item.virtuous_id == str(created[0])
    assert item.attempts == 2  # the reclaim and the peer's outcome; the stalled update spent none
    assert direct_create_records(org, operation) == created
    assert Attempt.objects.filter(tenant=tenant, method="POST").count() == 1
