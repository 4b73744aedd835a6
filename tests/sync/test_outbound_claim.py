"""The claim (sync/outbound/claim.py): on PostgreSQL one prepared statement, read back as the ORM would."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync.models import PRIORITY_BULK, OutboundItem
from sync.outbound.claim import outbound_claim
from tests.sync.conftest import enqueue_gifts

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement claim is PostgreSQL's (SKIP LOCKED)"
)


@needs_postgresql
@pytest.mark.postgres
def test_the_claim_is_one_prepared_statement_returning_what_the_orm_reads(tenant, other_tenant):
    # given: bulk work due before live work, an item not yet due, and an outsider's item
    bulk, live, later = enqueue_gifts(tenant, 3)
    OutboundItem.objects.filter(pk=bulk.pk).update(priority=PRIORITY_BULK)
    OutboundItem.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    (outsider,) = enqueue_gifts(other_tenant, 1)
    # when
    with CaptureQueriesContext(connection) as ctx:
        claimed = outbound_claim(tenant=tenant, worker="w1", limit=5)
    # then: live before bulk, nothing else, in one statement
    assert [i.pk for i in claimed] == [live.pk, bulk.pk]
    assert len(ctx.captured_queries) == 1
    for item in claimed:
        stored = OutboundItem.objects.get(pk=item.pk)
        assert (stored.state, stored.lease_owner) == ("in_flight", "w1")
        for field in OutboundItem._meta.concrete_fields:
            assert getattr(item, field.attname) == getattr(stored, field.attname), field.name
    assert OutboundItem.objects.get(pk=outsider.pk).state == "pending"
    assert OutboundItem.objects.get(pk=later.pk).state == "pending"
    with connection.cursor() as cursor:  # unless turned off (behind a pooler): prepared
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%SKIP LOCKED%%'")
        assert cursor.fetchone()[0] == int(settings.DATABASE_PREPARED_STATEMENTS)


def test_an_exhausted_item_is_dead_lettered_not_claimed(tenant):
    (item,) = enqueue_gifts(tenant, 1)
    OutboundItem.objects.filter(pk=item.pk).update(attempts=tenant.retry_max_attempts)
    assert outbound_claim(tenant=tenant, worker="w1", limit=5) == []
    assert OutboundItem.objects.get(pk=item.pk).state == "dead"
