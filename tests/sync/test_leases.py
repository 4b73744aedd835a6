"""Short leases and their heartbeat (issue 14 §5): a live drain keeps its items, a dead one frees them."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from sync.models import Origin, OutboundItem, TenantQueue
from sync.outbound.claim import outbound_claim, outbound_reclaim_expired
from sync.outbound.drain import outbound_drain
from sync.outbound.enqueue import outbound_enqueue
from sync.outbound.faults import fault_hook_install
from sync.outbound.leases import LeaseHeartbeat, leases_renew
from sync.outbound.tenant_queue import tenant_queue_claim
from sync.outbound.transitions import items_done
from tenants.models import Tenant
from tests.sync.conftest import enqueue_gifts, gift_request


def test_default_leases_bring_a_dead_holders_work_back_within_a_minute(settings):
    assert settings.OUTBOUND_LEASE_SECONDS <= 30
    assert settings.OUTBOUND_HEARTBEAT_SECONDS <= settings.OUTBOUND_LEASE_SECONDS / 2
    assert settings.Q_CLUSTER["max_attempts"] == 1  # a killed dispatch task is not re-run by the broker


def test_renewal_extends_only_the_holders_leases(tenant, other_tenant):
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    outbound_enqueue(tenant=other_tenant, request=gift_request(2), origin=Origin.WEBHOOK)
    mine = outbound_claim(tenant=tenant, worker="w1", limit=10)
    theirs = outbound_claim(tenant=other_tenant, worker="w1", limit=10)
    TenantQueue.objects.get_or_create(tenant=tenant)
    tenant_queue_claim(owner="w1", limit=10, lease_seconds=1)
    soon = timezone.now() + timedelta(seconds=1)
    OutboundItem.objects.update(lease_expires_at=soon)

    assert leases_renew(tenant_id=tenant.pk, worker="w1")[0] == 1

    renewed = OutboundItem.objects.get(pk=mine[0].pk).lease_expires_at
    assert renewed > soon + timedelta(seconds=20)
    assert OutboundItem.objects.get(pk=theirs[0].pk).lease_expires_at == soon  # the outsider untouched
    assert leases_renew(tenant_id=tenant.pk, worker="someone-else") == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_live_drains_items_past_their_lease(tenant, settings):
    settings.OUTBOUND_LEASE_SECONDS = 1
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    with LeaseHeartbeat(tenant.pk, "w1", interval=0.2) as beat:
        outbound_claim(tenant=tenant, worker="w1", limit=10)
        deadline = time.monotonic() + 10
        while beat.beats < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbound_reclaim_expired(tenant=tenant) == 0  # still held: 1.6 s past a 1 s lease
    assert beat.beats >= 8


def test_a_stalled_holder_past_its_lease_cannot_record_a_late_outcome(tenant, settings):
    settings.OUTBOUND_LEASE_SECONDS = 30
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    held = outbound_claim(tenant=tenant, worker="stalled", limit=10)
    # its heartbeat stopped (frozen host): the lease runs out and another worker takes the item
    OutboundItem.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert outbound_reclaim_expired(tenant=tenant) == 1
    taken = outbound_claim(tenant=tenant, worker="fresh", limit=10)
    assert [i.pk for i in taken] == [i.pk for i in held]
    # the stalled worker wakes up: its state update is refused, and so is its renewal
    assert items_done(held, state=OutboundItem.State.SUBMITTED, worker="stalled") == 0
    assert leases_renew(tenant_id=tenant.pk, worker="stalled") == (0, 0)
    assert OutboundItem.objects.get().lease_owner == "fresh"


def test_a_sibling_drain_keeps_the_dispatchers_tenant_lease_alive(tenant):
    """Several drains of one tenant run under the dispatcher's tenant lease: a sibling still calling
    after the first drain ended renews it, so no other dispatcher claims the tenant meanwhile."""
    outbound_enqueue(tenant=tenant, request=gift_request(1), origin=Origin.WEBHOOK)
    TenantQueue.objects.get_or_create(tenant=tenant)
    tenant_queue_claim(owner="dispatch-a", limit=10, lease_seconds=1)
    outbound_claim(tenant=tenant, worker="dispatch-a-1", limit=10)
    soon = timezone.now() + timedelta(seconds=1)
    TenantQueue.objects.filter(tenant=tenant).update(lease_until=soon)

    assert leases_renew(tenant_id=tenant.pk, worker="dispatch-a-1") == (1, 0)  # its own items only
    assert leases_renew(tenant_id=tenant.pk, worker="dispatch-a-1", queue_owner="dispatch-a") == (1, 1)
    assert TenantQueue.objects.get(tenant=tenant).lease_until > soon + timedelta(seconds=20)


def test_a_dead_holders_items_expiring_during_a_drain_are_taken_by_that_drain(
    tenant, other_tenant, fake_virtuous, settings
):
    settings.OUTBOUND_UNBATCHED_CLAIM = 1  # one item per claim round
    Tenant.objects.filter(pk=tenant.pk).update(batching_enabled=False)
    tenant.refresh_from_db()
    live = [
        outbound_enqueue(tenant=tenant, request=gift_request(n), origin=Origin.WEBHOOK)[0] for n in (1, 2)
    ]
    orphan, _ = outbound_enqueue(tenant=tenant, request=gift_request(3), origin=Origin.WEBHOOK)
    outsider, _ = outbound_enqueue(tenant=other_tenant, request=gift_request(4), origin=Origin.WEBHOOK)
    later = timezone.now() + timedelta(seconds=30)
    OutboundItem.objects.filter(pk__in=[orphan.pk, outsider.pk]).update(
        state="in_flight", lease_owner="dead", lease_expires_at=later
    )

    def dead_lease_runs_out(name: str) -> None:
        # the dead holder's lease ends while this drain is already working the tenant
        if name == "after_claim":
            OutboundItem.objects.filter(lease_owner="dead").update(lease_expires_at=timezone.now())

    fault_hook_install(dead_lease_runs_out)
    try:
        result = outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    finally:
        fault_hook_install(None)

    assert result.submitted == 3  # the orphan came back in this drain, not a slice later
    states = dict(OutboundItem.objects.values_list("pk", "state"))
    assert [states[i.pk] for i in [*live, orphan]] == ["submitted"] * 3
    assert states[outsider.pk] == "in_flight"  # another tenant's items are its own drains' business


def test_a_drain_looks_for_expired_leases_once_a_heartbeat_not_once_a_claim(tenant, fake_virtuous, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.OUTBOUND_UNBATCHED_CLAIM = 1  # one item per claim round
    settings.OUTBOUND_HEARTBEAT_SECONDS = 3600
    Tenant.objects.filter(pk=tenant.pk).update(batching_enabled=False)
    tenant.refresh_from_db()
    for n in range(5):
        outbound_enqueue(tenant=tenant, request=gift_request(n), origin=Origin.WEBHOOK)
    with CaptureQueriesContext(connection) as ctx:
        result = outbound_drain(tenant=tenant, client_factory=fake_virtuous.factory)
    assert result.submitted == 5
    reclaims = [q for q in ctx.captured_queries if '"lease_expires_at" < ' in (q["sql"] or "")]
    assert len(reclaims) == 2  # when the drain starts, and before it calls its queue empty


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks held by another connection"
)
def test_renewal_skips_an_item_another_statement_holds_instead_of_waiting_for_it(tenant):
    """Waiting was half of a deadlock: the drain's 2xx statement takes its items in id order, the
    renewal took them in scan order."""
    enqueue_gifts(tenant, 2)
    first, second = outbound_claim(tenant=tenant, worker="w1", limit=10)
    soon = timezone.now() + timedelta(seconds=5)
    OutboundItem.objects.update(lease_expires_at=soon)
    locked, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                OutboundItem.objects.select_for_update().get(pk=first.pk)
                locked.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(5)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a renewal that waits fails the test
        assert leases_renew(tenant_id=tenant.pk, worker="w1")[0] == 1
    finally:
        done.set()
        holder.join()
        connection.close()
    assert OutboundItem.objects.get(pk=first.pk).lease_expires_at == soon  # skipped: next beat
    assert OutboundItem.objects.get(pk=second.pk).lease_expires_at > soon + timedelta(seconds=20)
