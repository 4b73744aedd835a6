"""The tenant's dispatch lease as fixed statements: the claim and the release each one statement on
PostgreSQL, prepared, and doing what the ORM's statements did (those stay on SQLite, and the
behaviour tests in test_dispatch.py run against both)."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync.models import OutboundItem, TenantQueue
from sync.outbound.tenant_queue import (
    _release_params,
    _release_sql,
    tenant_load,
    tenant_queue_claim,
    tenant_queue_release,
)
from tenants.models import Tenant
from tenants.services import tenant_create, tenant_pause
from tests.sync.conftest import claim_concurrently, enqueue_gifts

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement claim and release are PostgreSQL's"
)


def _prepared(fragment: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{fragment}%"]
        )
        return cursor.fetchone()[0]


@postgres_only
def test_the_claim_is_one_prepared_statement_in_the_claims_order(tenant, other_tenant):
    third = tenant_create(slug="third", name="Third")
    for t in (tenant, other_tenant, third):
        enqueue_gifts(t, 1)
    now = timezone.now()
    backlog = now - timedelta(minutes=10)  # due for long: working off a backlog, not live
    TenantQueue.objects.filter(tenant=tenant).update(
        last_drain_at=now - timedelta(minutes=1), due_since=backlog
    )
    TenantQueue.objects.filter(tenant=other_tenant).update(
        last_drain_at=now - timedelta(minutes=5), due_since=backlog
    )
    TenantQueue.objects.filter(tenant=third).update(last_drain_at=now, due_since=now)  # live: first
    with CaptureQueriesContext(connection) as ctx:
        assert tenant_queue_claim(owner="d1", limit=10, lease_seconds=60) == [
            third.pk,
            other_tenant.pk,
            tenant.pk,
        ]
    assert len(ctx.captured_queries) == 1
    assert _prepared("SKIP LOCKED) AS picked") == int(settings.DATABASE_PREPARED_STATEMENTS)
    leases = dict(TenantQueue.objects.values_list("tenant_id", "lease_owner"))
    assert leases == {tenant.pk: "d1", other_tenant.pk: "d1", third.pk: "d1"}


@postgres_only
def test_the_claim_passes_over_paused_leased_and_not_yet_due_tenants(tenant, other_tenant):
    third, fourth = tenant_create(slug="third", name="Third"), tenant_create(slug="fourth", name="Fourth")
    for t in (tenant, other_tenant, third, fourth):
        enqueue_gifts(t, 1)
    tenant_pause(tenant=other_tenant, reason="401")
    TenantQueue.objects.filter(tenant=third).update(
        lease_owner="d0", lease_until=timezone.now() + timedelta(seconds=30)
    )
    TenantQueue.objects.filter(tenant=fourth).update(wake_at=timezone.now() + timedelta(minutes=1))
    assert tenant_queue_claim(owner="d1", limit=10, lease_seconds=60) == [tenant.pk]
    assert TenantQueue.objects.get(tenant=third).lease_owner == "d0"
    # an expired lease is anyone's
    TenantQueue.objects.filter(tenant=third).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert tenant_queue_claim(owner="d2", limit=10, lease_seconds=60) == [third.pk]


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_never_lease_one_tenant_twice():
    tenants = [tenant_create(slug=f"c{n}", name=f"C{n}") for n in range(40)]
    for t in tenants:
        enqueue_gifts(t, 1)
    leased = claim_concurrently(
        lambda owner: tenant_queue_claim(owner=owner, limit=3, lease_seconds=60), prefix="d"
    )
    every = [pk for mine in leased.values() for pk in mine]
    assert sorted(every) == sorted(t.pk for t in tenants)  # each tenant once, none lost
    owners = dict(TenantQueue.objects.values_list("tenant_id", "lease_owner"))
    for owner, mine in leased.items():
        assert all(owners[pk] == owner for pk in mine)  # each lease held by the one told it has it


def test_a_release_records_the_leases_drains(tenant, other_tenant):
    enqueue_gifts(tenant, 1)
    enqueue_gifts(other_tenant, 1)
    before = TenantQueue.objects.get(tenant=other_tenant)
    tenant_queue_claim(owner="d1", limit=10, lease_seconds=60)
    tenant_queue_release(tenant=tenant, owner="d1", submitted=0)
    queue = TenantQueue.objects.get(tenant=tenant)
    assert queue.last_drain_at is not None and queue.last_success_at is None
    tenant_queue_claim(owner="d1", limit=10, lease_seconds=60)
    tenant_queue_release(tenant=tenant, owner="d1", submitted=2)
    queue = TenantQueue.objects.get(tenant=tenant)
    assert queue.last_success_at is not None and queue.last_success_at >= queue.last_drain_at
    drained = queue.last_drain_at
    tenant_queue_release(tenant=tenant, owner="d1")  # no drain ran: nothing recorded
    assert TenantQueue.objects.get(tenant=tenant).last_drain_at == drained
    after = TenantQueue.objects.get(tenant=other_tenant)  # the outsider's row is its own
    assert (after.last_drain_at, after.last_success_at) == (before.last_drain_at, before.last_success_at)
    assert after.lease_owner == "d1"


def test_a_release_by_another_owner_moves_the_wake_time_but_not_the_lease(tenant):
    (item,) = enqueue_gifts(tenant, 1)
    tenant_queue_claim(owner="d1", limit=1, lease_seconds=60)
    later = timezone.now() + timedelta(minutes=2)
    OutboundItem.objects.filter(pk=item.pk).update(next_attempt_at=later)
    tenant_queue_release(tenant=tenant, owner="d2", submitted=1)
    queue = TenantQueue.objects.get(tenant=tenant)
    assert queue.wake_at == later
    assert queue.lease_owner == "d1" and queue.lease_until is not None and queue.due_since is not None


def test_not_before_wakes_no_tenant_with_nothing_to_do(tenant):
    enqueue_gifts(tenant, 1)
    tenant_queue_claim(owner="d1", limit=1, lease_seconds=60)
    OutboundItem.objects.update(state=OutboundItem.State.SUBMITTED)
    tenant_queue_release(tenant=tenant, owner="d1", not_before=timezone.now() + timedelta(seconds=40))
    queue = TenantQueue.objects.get(tenant=tenant)
    assert (queue.wake_at, queue.lease_owner, queue.due_since) == (None, "", None)


def test_an_item_in_flight_wakes_the_tenant_when_its_lease_would_expire(tenant):
    (item,) = enqueue_gifts(tenant, 1)
    expires = timezone.now() + timedelta(seconds=30)
    OutboundItem.objects.filter(pk=item.pk).update(
        state=OutboundItem.State.IN_FLIGHT, lease_expires_at=expires
    )
    tenant_queue_release(tenant=tenant, owner="d1")
    assert TenantQueue.objects.get(tenant=tenant).wake_at == expires


@postgres_only
def test_a_release_finds_its_wake_among_its_own_items_once(tenant, other_tenant):
    """The wake lookups go by the tenant's own index entries, each run once. With the partner
    drain's index taken in time order instead, every release passed over every other tenant's
    due items (122 ms a release beside 100 backlogged tenants), and the pulled-up subquery ran
    the lookups again for each use of its result."""
    enqueue_gifts(other_tenant, 30)  # due first, in the way of a scan in time order
    enqueue_gifts(tenant, 2)
    sql, params = _release_sql(), _release_params(tenant.pk, "d1", None, 1, timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_outbounditem")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test's few rows would be read whole
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    lookups = [line for line in plan.splitlines() if " on sync_outbounditem" in line]
    assert len(lookups) == 2, plan  # the due item, else the earliest lease: once each
    assert "outbound_wake_idx" in lookups[0] and "tenant_id = " in plan.split(lookups[0])[1], plan
    tenant_queue_release(tenant=tenant, owner="d1", submitted=1)
    assert TenantQueue.objects.get(tenant=tenant).wake_at == min(
        OutboundItem.objects.filter(tenant=tenant).values_list("next_attempt_at", flat=True)
    )


def _in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_item_enqueued_while_a_release_holds_the_queue_wakes_it_after(tenant):
    """A release locked the queue and read nothing due; an item commits and wakes the queue. The
    wake waits for the release and moves the wake time it wrote. Conditional on the row, the wake
    found the queue already due, took no lock, and the release then wrote "nothing due" over it."""
    (first,) = enqueue_gifts(tenant, 1)
    OutboundItem.objects.filter(pk=first.pk).update(state=OutboundItem.State.SUBMITTED)
    holding, go = threading.Event(), threading.Event()

    def release_that_read_nothing() -> None:
        with transaction.atomic():
            TenantQueue.objects.select_for_update().get(tenant=tenant)
            holding.set()
            go.wait(timeout=5)
            TenantQueue.objects.filter(tenant=tenant).update(wake_at=None)  # what its read found

    release = _in_thread(release_that_read_nothing)
    assert holding.wait(timeout=5)
    enqueue = _in_thread(lambda: enqueue_gifts(tenant, 1, start=2))
    enqueue.join(timeout=1)
    go.set()
    release.join(timeout=10)
    enqueue.join(timeout=10)
    queue = TenantQueue.objects.get(tenant=tenant)
    assert queue.wake_at is not None and queue.wake_at <= timezone.now()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_release_waits_for_an_enqueue_holding_the_queue_and_sees_its_item(tenant):
    """An event's writes are enqueued in one transaction whose wake locks the queue; a release
    meanwhile waits for it and then reads the item. In one statement its read came before the
    lock, and the wake time it wrote left the new item to the minute's repair."""
    (first,) = enqueue_gifts(tenant, 1)
    tenant_queue_claim(owner="d1", limit=1, lease_seconds=60)
    OutboundItem.objects.filter(pk=first.pk).update(state=OutboundItem.State.SUBMITTED)
    holding, go = threading.Event(), threading.Event()

    def enqueue_an_event() -> None:
        with transaction.atomic():
            enqueue_gifts(tenant, 1, start=2)
            holding.set()
            go.wait(timeout=5)

    enqueue = _in_thread(enqueue_an_event)
    assert holding.wait(timeout=5)
    release = _in_thread(lambda: tenant_queue_release(tenant=tenant, owner="d1", submitted=1))
    release.join(timeout=1)
    go.set()
    enqueue.join(timeout=10)
    release.join(timeout=10)
    assert not enqueue.is_alive() and not release.is_alive()
    queue = TenantQueue.objects.get(tenant=tenant)
    assert queue.lease_owner == "" and queue.wake_at is not None


def test_a_turns_tenant_is_read_as_the_orm_reads_it(tenant, other_tenant):
    loaded, stored = tenant_load(tenant.pk), Tenant.objects.get(pk=tenant.pk)
    for field in Tenant._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(stored, field.attname), field.name
    assert tenant_load(other_tenant.pk).slug == other_tenant.slug
    with pytest.raises(Tenant.DoesNotExist):
        tenant_load(max(tenant.pk, other_tenant.pk) + 1000)
